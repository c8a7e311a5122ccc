"""validate: a Great Expectations suite against a warehouse table or a Dataset artifact."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components._images import image


@dsl.component(base_image=image("validate"), install_kfp_package=False)
def validate(
    suite: str,
    dataset: Input[Dataset],
    warehouse: str,
    table: str,
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Validate data with the Great Expectations suite ``suite`` (great_expectations/ in the project).

    Reads: the warehouse table ``table`` when it is set (``dataset`` then only orders this step after
    the step that wrote the table), else the Parquet file of ``dataset``.
    Writes: ``report`` (the validation rendered as one HTML page) and ``metrics`` (evaluated,
    successful, unsuccessful, success_percent).
    Fails when any expectation fails, naming each failed expectation, its column and sample
    unexpected values.
    """
    from pathlib import Path

    from tagifai.config import get_settings
    from tagifai.validation import validate_dataframe, validate_parquet
    from tagifai.warehouse import read_table

    if table:
        settings = get_settings(warehouse=warehouse)
        result = validate_dataframe(read_table(settings.warehouse, table), suite, data_name=table)
    else:
        result = validate_parquet(dataset.path, suite, data_name=dataset.metadata.get("table", dataset.uri))
    Path(report.path).write_text(result.html, encoding="utf-8")
    for name, value in result.to_metrics().items():
        metrics.log_metric(name, value)
    result.raise_for_failures()
