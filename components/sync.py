"""sync: the fingerprint of a source, then the source loaded into a raw warehouse table.

Two components on one image: ``fingerprint`` (never cached: it looks at the source as it is now) and
``sync`` (cached on that fingerprint, so a run on unchanged bytes reuses the load and every step after it).
"""

from kfp import dsl
from kfp.dsl import Dataset, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("sync"), install_kfp_package=False)
def fingerprint(source: str) -> str:
    """``sha256:<hex>`` of the bytes of ``source`` (a local path, http(s)://, gs://). Reads no rows; fails
    only when the source cannot be read (a message naming it)."""
    from tagifai.sources import fingerprint as fingerprint_source

    return fingerprint_source(source)


@dsl.component(base_image=default_image("sync"), install_kfp_package=False)
def sync(
    source: str,
    table: str,
    warehouse: str,
    state_dir: str,
    dataset: Output[Dataset],
    source_fingerprint: str = "",
):
    """Load ``source`` into the raw table ``table`` of ``warehouse``, merging on ``id``.

    Reads: a CSV, JSON or Parquet file (local path, http(s)://, gs://).
    Writes: ``raw.<table>`` in the warehouse (idempotent merge on ``id``, atomic), and ``dataset``: the
    conformed batch as Parquet, with metadata ``table``, ``warehouse_table`` (``raw.<table>``: what the
    validation reads), ``rows_read``, ``rows_before``, ``rows_after``, ``fingerprint``.
    ``source_fingerprint``: the ``fingerprint`` task's output. It keys KFP's cache (the same bytes reuse
    this load); a source whose bytes changed since is an error. Empty: not checked.
    Empty ``warehouse``/``state_dir`` mean "from this step's environment" (TAGIFAI_* settings).
    Fails when the source cannot be read or does not match the table's schema (a message naming the
    file, the column and the rows); the warehouse is then left untouched.
    """
    from tagifai.config import get_settings
    from tagifai.sync import sync as sync_source

    settings = get_settings(warehouse=warehouse, home=state_dir)
    result = sync_source(
        source, table, settings.warehouse, settings.home, snapshot=dataset.path, expected_fingerprint=source_fingerprint
    )
    dataset.metadata.update({**result.to_dict(), "warehouse_table": f"raw.{table}"})
