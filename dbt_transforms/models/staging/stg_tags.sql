-- Tags, typed and trimmed; dlt's bookkeeping columns dropped.
select
    cast(id as {{ dbt.type_bigint() }}) as id,
    {{ clean_text('tag') }} as tag
from {{ source('raw', 'tags') }}
