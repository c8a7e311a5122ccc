"""transform: dbt build of dbt_transforms/ (staging models, labeled_projects, their tests)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("transform"), install_kfp_package=False)
def transform(
    warehouse: str,
    state_dir: str,
    target: str,
    projects: Input[Dataset],
    tags: Input[Dataset],
    report: Output[Markdown],
    metrics: Output[Metrics],
    labeled_projects: Output[Dataset],
):
    """Run ``dbt build`` on the project's dbt_transforms/ with dbt's programmatic runner.

    Reads: the raw tables ``projects`` and ``tags``; ``projects`` and ``tags`` are the sync steps' Datasets
    of the batches loaded into them (the lineage of what this build saw, and the key of KFP's cache: the
    same batches reuse this build). Writes: the staging views and the table
    ``labeled_projects`` in the warehouse; ``report`` (dbt's results as Markdown), ``metrics`` (counts
    of models and tests by status) and ``labeled_projects`` (the built table as Parquet, with row
    count, content hash, created_on range and ``warehouse_table`` in its metadata: what the validation
    and extract read).
    ``target``: the dbt target; empty means the warehouse's own (``local`` for DuckDB, ``prod`` for BigQuery).
    Fails when a model or a test fails, naming each and dbt's message.
    """
    from pathlib import Path

    from tagifai.artifacts import keep_values
    from tagifai.config import get_settings
    from tagifai.extract import extract_table
    from tagifai.transform import run_dbt

    settings = get_settings(warehouse=warehouse, home=state_dir)
    result = run_dbt("build", warehouse_uri=settings.warehouse, target=target or None, state_dir=settings.home / "dbt")
    Path(report.path).write_text(result.to_markdown(), encoding="utf-8")
    for name, value in result.counts().items():
        metrics.log_metric(name, value)
    keep_values(metrics)  # a file at every output: kfp.local's cache can reuse this step
    result.raise_for_failures()
    labeled_projects.metadata.update(extract_table(settings.warehouse, "labeled_projects", labeled_projects.path))
    labeled_projects.metadata["warehouse_table"] = "labeled_projects"  # schema main
    labeled_projects.metadata["sources"] = {
        name: {k: batch.metadata.get(k) for k in ("source", "fingerprint", "rows_after")}
        for name, batch in (("projects", projects), ("tags", tags))
    }
