"""transform: dbt build of dbt_transforms/ (staging models, labeled_projects, their tests)."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("transform"), install_kfp_package=False)
def transform(
    warehouse: str,
    state_dir: str,
    target: str,
    report: Output[Markdown],
    metrics: Output[Metrics],
    labeled_projects: Output[Dataset],
):
    """Run ``dbt build`` on the project's dbt_transforms/ with dbt's programmatic runner.

    Reads: the raw tables ``projects`` and ``tags``. Writes: the staging views and the table
    ``labeled_projects`` in the warehouse; ``report`` (dbt's results as Markdown), ``metrics`` (counts
    of models and tests by status) and ``labeled_projects`` (the built table as Parquet, with row
    count, content hash and created_on range in its metadata).
    ``target``: the dbt target; empty means the warehouse's own (``local`` for DuckDB, ``prod`` for BigQuery).
    Fails when a model or a test fails, naming each and dbt's message.
    """
    from pathlib import Path

    from tagifai.config import get_settings
    from tagifai.extract import extract_table
    from tagifai.transform import run_dbt

    settings = get_settings(warehouse=warehouse, home=state_dir)
    result = run_dbt("build", warehouse_uri=settings.warehouse, target=target or None, state_dir=settings.home / "dbt")
    Path(report.path).write_text(result.to_markdown(), encoding="utf-8")
    for name, value in result.counts().items():
        metrics.log_metric(name, value)
    result.raise_for_failures()
    labeled_projects.metadata.update(extract_table(settings.warehouse, "labeled_projects", labeled_projects.path))
