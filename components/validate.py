"""validate: a Great Expectations suite against a warehouse table or a Dataset artifact.

Two components on one image: ``validate_table`` (DataOps: the table as it is in the warehouse) and
``validate_dataset`` (MLOps: the exact Parquet file the next steps will read).
"""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("validate"), install_kfp_package=False)
def validate_table(
    suite: str,
    warehouse: str,
    upstream: Input[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Validate the warehouse table that ``upstream`` names with the Great Expectations suite ``suite``
    (great_expectations/ in the project). ``upstream`` is the Dataset of the step that wrote the table
    (sync, transform): its metadata ``warehouse_table`` (``schema.table``) is the table read, so the
    lineage (this validation of that load) and what is validated are one thing. Its file is not read:
    the table is (it holds every batch merged so far).
    Writes: ``report`` (the validation rendered as one HTML page) and ``metrics`` (evaluated,
    successful, unsuccessful, success_percent).
    Fails when any expectation fails, naming each failed expectation, its column and sample
    unexpected values. Empty ``warehouse`` means this step's TAGIFAI_WAREHOUSE. On BigQuery the
    expectations run as SQL in BigQuery (GX's BigQuery datasource); on DuckDB as SQL in the warehouse
    file with GX's semantics, without importing GX (``TAGIFAI_VALIDATION_ENGINE=gx``: GX on a pandas
    batch).
    """
    from pathlib import Path

    from tagifai.artifacts import keep_values
    from tagifai.config import get_settings
    from tagifai.validation import validate_table as validate_warehouse_table

    table = upstream.metadata.get("warehouse_table")
    if not table:
        raise ValueError(f"upstream Dataset {upstream.uri} names no warehouse_table in its metadata: nothing to read")
    settings = get_settings(warehouse=warehouse)
    result = validate_warehouse_table(settings.warehouse, table, suite)
    Path(report.path).write_text(result.html, encoding="utf-8")
    for name, value in result.to_metrics().items():
        metrics.log_metric(name, value)
    keep_values(metrics)  # a file at every output: kfp.local's cache can reuse this step
    result.raise_for_failures()


@dsl.component(base_image=default_image("validate"), install_kfp_package=False)
def validate_dataset(
    suite: str,
    dataset: Input[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Validate the Parquet file of ``dataset`` with the Great Expectations suite ``suite`` (as SQL in
    DuckDB over the file's rows, or GX with ``TAGIFAI_VALIDATION_ENGINE=gx``).
    Writes ``report`` (HTML) and ``metrics`` like ``validate_table``; fails the same way.
    """
    from pathlib import Path

    from tagifai.artifacts import keep_values
    from tagifai.validation import validate_parquet

    result = validate_parquet(dataset.path, suite, data_name=dataset.metadata.get("table") or dataset.uri)
    Path(report.path).write_text(result.html, encoding="utf-8")
    for name, value in result.to_metrics().items():
        metrics.log_metric(name, value)
    keep_values(metrics)  # a file at every output: kfp.local's cache can reuse this step
    result.raise_for_failures()
