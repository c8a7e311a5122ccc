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
    {#- DuckDB's one-argument trim removes spaces only, and its trim with characters is slow on long text
        (about 7 s for a million descriptions of ~120 characters): trim only the values that start or end with
        one of the characters. The same result for every value: a value that neither starts nor ends with one
        of them is what trim returns for it. -#}
    {%- set value = 'cast(' ~ expression ~ ' as ' ~ dbt.type_string() ~ ')' -%}
    {%- set blanks = ["' '", 'chr(9)', 'chr(10)', 'chr(13)'] -%}
    nullif(
        case
            when {% for c in blanks %}starts_with({{ value }}, {{ c }}) or ends_with({{ value }}, {{ c }}){% if not loop.last %} or {% endif %}{% endfor %}
            then trim({{ value }}, {{ blanks | join(' || ') }})
            else {{ value }}
        end,
        ''
    )
{%- endmacro %}
