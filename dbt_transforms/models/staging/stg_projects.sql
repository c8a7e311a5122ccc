-- Projects, typed and trimmed; dlt's bookkeeping columns dropped.
select
    cast(id as {{ dbt.type_bigint() }}) as id,
    cast(created_on as {{ dbt.type_timestamp() }}) as created_on,
    {{ clean_text('title') }} as title,
    {{ clean_text('description') }} as description
from {{ source('raw', 'projects') }}
