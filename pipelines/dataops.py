"""dataops: fingerprint and sync projects and tags -> validate each -> transform -> validate labeled_projects.

One chain: no two tasks that open the warehouse run at the same time (DuckDB has one writer).
Artifacts carry the lineage: each validation reads the table its upstream Dataset names, transform takes
both sync Datasets, and its ``labeled_projects`` Dataset is what extract (``mlops.tasks``) reads.
"""

from typing import NamedTuple

from kfp import dsl

from components.sync import fingerprint, sync
from components.transform import transform
from components.validate import validate_table
from pipelines import forward
from pipelines.notice import notified
from pipelines.platform import TaskPlan


class DataOps(NamedTuple):
    curated: object  # transform's labeled_projects Dataset (the channel)
    last: object  # the last task: validate-labeled-projects


def tasks(
    plan: TaskPlan,
    *,
    projects_source: str,
    tags_source: str,
    warehouse: str,
    state_dir: str,
    dbt_target: str,
    after=None,
) -> DataOps:
    """Add the dataops tasks to the pipeline being defined; their curated Dataset and last task. ``after``: a
    task the first warehouse task (sync-projects) waits for (the run lease)."""

    # Caching (docs/deploy.md, "Caching"): a fingerprint task (never cached) reads each source's bytes, and
    # sync is keyed on it. Unchanged bytes reuse the load, and so every step whose inputs are the reused
    # artifacts (the validations, transform, then extract ... train); changed bytes recompute what depends
    # on them only.
    def load(source, table):
        seen = fingerprint(source=source)
        seen.set_display_name(f"fingerprint-{table}")
        loaded = sync(
            source=source, table=table, warehouse=warehouse, state_dir=state_dir, source_fingerprint=seen.output
        )
        loaded.set_display_name(f"sync-{table}")
        plan.configure(seen, loaded)
        return seen, loaded

    # One warehouse task at a time: every task here but the fingerprints opens the warehouse, and DuckDB (the
    # embedded default, one file on the cluster's volume) lets one process write it, and none read it
    # meanwhile. So those tasks form a chain and no two of them ever overlap; on BigQuery the chain costs
    # only the parallelism of the two syncs and of the two validations (a few seconds).
    # tests/delivery/test_warehouse_order.py checks every compiled pipeline for it.
    _, sync_projects = load(projects_source, "projects")
    if after is not None:
        sync_projects.after(after)
    _, sync_tags = load(tags_source, "tags")
    sync_tags.after(sync_projects)

    validate_projects = validate_table(suite="projects", warehouse=warehouse, upstream=sync_projects.outputs["dataset"])
    validate_projects.set_display_name("validate-projects")
    validate_projects.after(sync_tags)
    validate_tags = validate_table(suite="tags", warehouse=warehouse, upstream=sync_tags.outputs["dataset"])
    validate_tags.set_display_name("validate-tags")
    validate_tags.after(validate_projects)

    build = transform(
        warehouse=warehouse,
        state_dir=state_dir,
        target=dbt_target,
        projects=sync_projects.outputs["dataset"],
        tags=sync_tags.outputs["dataset"],
    )
    build.set_display_name("transform")
    build.after(validate_tags)

    validate_labeled = validate_table(
        suite="labeled_projects", warehouse=warehouse, upstream=build.outputs["labeled_projects"]
    )
    validate_labeled.set_display_name("validate-labeled-projects")

    # resources, retries, caching and (Kubeflow) Kubernetes settings from pipelines/platform.yaml
    plan.configure(validate_projects, validate_tags, build, validate_labeled)
    return DataOps(build.outputs["labeled_projects"], validate_labeled)


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
        with notified(plan, "dataops", **forward(notified, locals())) as hold:
            tasks(plan, **forward(tasks, locals(), after=hold))

    return dataops
