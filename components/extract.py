"""extract: a curated warehouse table into a Parquet Dataset artifact."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("extract"), install_kfp_package=False)
def extract(warehouse: str, table: str, dataset: Output[Dataset]):
    """Read ``table`` (default schema ``main``) from ``warehouse`` into ``dataset`` (Parquet, sorted by id).

    Writes metadata ``table``, ``rows``, ``columns``, ``content_hash`` (sha256 of the values, order
    independent) and ``created_on_min``/``created_on_max``. Fails when the warehouse or table is missing.
    """
    from tagifai.config import get_settings
    from tagifai.extract import extract_table

    settings = get_settings(warehouse=warehouse)
    dataset.metadata.update(extract_table(settings.warehouse, table, dataset.path))
