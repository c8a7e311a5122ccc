{#- Trim whitespace (spaces, tabs, newlines) from both ends and turn empty strings into NULL,
    so that not_null tests also catch blank values. -#}
{% macro clean_text(expression) -%}
    {{ return(adapter.dispatch('clean_text', 'tagifai')(expression)) }}
{%- endmacro %}

{% macro default__clean_text(expression) -%}
    {#- BigQuery's TRIM removes all leading and trailing whitespace. -#}
    nullif(trim(cast({{ expression }} as {{ dbt.type_string() }})), '')
{%- endmacro %}

{% macro duckdb__clean_text(expression) -%}
    {#- DuckDB's one-argument trim removes spaces only. -#}
    nullif(trim(cast({{ expression }} as {{ dbt.type_string() }}), ' ' || chr(9) || chr(10) || chr(13)), '')
{%- endmacro %}
