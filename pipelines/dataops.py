"""dataops: sync projects, sync tags -> validate each -> transform (dbt build) -> validate labeled_projects.

One chain: no two tasks that open the warehouse run at the same time (DuckDB has one writer).
"""

from kfp import dsl

from components.sync import sync
from components.transform import transform
from components.validate import validate_table
from pipelines.platform import TaskPlan


def build(plan: TaskPlan):
    """The dataops pipeline with ``plan``'s images and platform settings on every task."""

    @dsl.pipeline(
        name="dataops", description="Sync, validate and transform the Made With ML sources into labeled_projects."
    )
    def dataops(
        projects_source: str,
        tags_source: str,
        warehouse: str = "",
        state_dir: str = "",
        dbt_target: str = "",
    ):
        """Empty ``warehouse``/``state_dir`` mean: each step uses its environment's TAGIFAI_* settings; empty
        ``dbt_target``: the warehouse's own target (``local`` for DuckDB, ``prod`` for BigQuery)."""
        # One warehouse task at a time: every task here opens the warehouse, and DuckDB (the embedded default,
        # one file on the cluster's volume) lets one process write it, and none read it meanwhile. So the
        # tasks form a chain and no two of them ever overlap; on BigQuery the chain costs only the
        # parallelism of the two syncs and of the two validations (a few seconds).
        # tests/delivery/test_warehouse_order.py checks every compiled pipeline for it.
        sync_projects = sync(source=projects_source, table="projects", warehouse=warehouse, state_dir=state_dir)
        sync_projects.set_display_name("sync-projects")
        sync_tags = sync(source=tags_source, table="tags", warehouse=warehouse, state_dir=state_dir)
        sync_tags.set_display_name("sync-tags")
        sync_tags.after(sync_projects)

        validate_projects = validate_table(
            suite="projects", warehouse=warehouse, table="raw.projects", upstream=sync_projects.outputs["dataset"]
        )
        validate_projects.set_display_name("validate-projects")
        validate_projects.after(sync_tags)
        validate_tags = validate_table(
            suite="tags", warehouse=warehouse, table="raw.tags", upstream=sync_tags.outputs["dataset"]
        )
        validate_tags.set_display_name("validate-tags")
        validate_tags.after(validate_projects)

        build = transform(warehouse=warehouse, state_dir=state_dir, target=dbt_target)
        build.set_display_name("transform")
        build.after(validate_tags)

        validate_labeled = validate_table(
            suite="labeled_projects",
            warehouse=warehouse,
            table="main.labeled_projects",
            upstream=build.outputs["labeled_projects"],
        )
        validate_labeled.set_display_name("validate-labeled-projects")

        # resources, retries, caching and (Kubeflow) Kubernetes settings from pipelines/platform.yaml
        plan.configure(sync_projects, sync_tags, validate_projects, validate_tags, build, validate_labeled)

    return dataops
