{#- Convert an integer amount of cents into a dollar amount with `precision` decimals. -#}
{% macro cents_to_dollars(column_name, precision=2) -%}
    cast(round({{ column_name }} / 100.0, {{ precision }}) as decimal(18, {{ precision }}))
{%- endmacro %}
