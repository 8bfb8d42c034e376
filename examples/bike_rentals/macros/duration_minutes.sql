{#- Whole minutes between two timestamps; null while the second one is null. -#}
{% macro duration_minutes(start_column, end_column) -%}
    date_diff('minute', {{ start_column }}, {{ end_column }})
{%- endmacro %}
