-- One row per project with its tag: the table that extract reads for training.
select
    projects.id,
    projects.created_on,
    projects.title,
    projects.description,
    tags.tag
from {{ ref('stg_projects') }} as projects
left join {{ ref('stg_tags') }} as tags
    on projects.id = tags.id
