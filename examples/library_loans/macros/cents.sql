{% macro cents_to_units(col, scale=2) -%}
round({{ col }} / 100.0, {{ scale }})
{%- endmacro %}
