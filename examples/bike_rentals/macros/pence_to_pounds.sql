{#- Convert an integer amount of pence into pounds with `precision` decimals. -#}
{% macro pence_to_pounds(column_name, precision=2) -%}
    cast(round({{ column_name }} / 100.0, {{ precision }}) as decimal(18, {{ precision }}))
{%- endmacro %}
