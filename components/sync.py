"""sync: extract one source and load it into a raw warehouse table."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("sync"), install_kfp_package=False)
def sync(source: str, table: str, warehouse: str, state_dir: str, dataset: Output[Dataset]):
    """Load ``source`` into the raw table ``table`` of ``warehouse``, merging on ``id``.

    Reads: a CSV, JSON or Parquet file (local path, http(s)://, gs://).
    Writes: ``raw.<table>`` in the warehouse (idempotent merge on ``id``, atomic), and ``dataset``: the
    conformed batch as Parquet, with metadata ``table``, ``rows_read``, ``rows_before``, ``rows_after``.
    Empty ``warehouse``/``state_dir`` mean "from this step's environment" (TAGIFAI_* settings).
    Fails when the source cannot be read or does not match the table's schema (a message naming the
    file, the column and the rows); the warehouse is then left untouched.
    """
    from tagifai.config import get_settings
    from tagifai.sync import sync as sync_source

    settings = get_settings(warehouse=warehouse, home=state_dir)
    result = sync_source(source, table, settings.warehouse, settings.home, snapshot=dataset.path)
    dataset.metadata.update(result.to_dict())
