"""extract: a curated warehouse table into a Parquet Dataset artifact, composed for training."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("extract"), install_kfp_package=False)
def extract(
    warehouse: str,
    table: str,
    dataset: Output[Dataset],
    training_data: str = "",
    window_days: float = 0.0,
    replay_share: float = -1.0,
    replay_min_per_class: int = -1,
    seed: int = 42,
    curated: Optional[Input[Dataset]] = None,  # noqa: UP045 - KFP reads Optional[...] as an optional input
):
    """Read ``table`` (default schema ``main``), or the table that ``curated`` names, from ``warehouse`` into
    ``dataset`` (Parquet, sorted by id),
    composed by ``training_data``: ``full`` (all rows) or ``window`` (the rows of the last ``window_days``
    days plus a replay sample of older rows, ``replay_share`` of the window's rows stratified by tag, at
    least ``replay_min_per_class`` per tag, drawn with ``seed``). An empty ``training_data``, a zero
    ``window_days`` or a negative ``replay_share``/``replay_min_per_class`` means the settings' value
    (``TAGIFAI_TRAINING_DATA``, ...; defaults full, 90, 0.3, 10).

    ``curated``: the Dataset of the step that built the table (transform's ``labeled_projects``), when the
    pipeline has one: its metadata ``warehouse_table`` is the table read (``table`` is then ignored) and its
    ``content_hash`` must still be the table's (else it fails: another run wrote the table meanwhile). So the
    model traces back through this Dataset to the source batches, and KFP's cache reuses this step when
    the curated table is unchanged. Without it (the mlops pipeline on its own): ``table`` as it is now.

    Writes metadata ``table``, ``rows``, ``columns``, ``content_hash`` (sha256 of the values, order
    independent), ``created_on_min``/``created_on_max`` (of the rows written) and ``composition`` (policy,
    window, replay and rows per class and per month). Fails when the warehouse or table is missing, a
    policy value is invalid, or the window is empty.
    """
    from tagifai.compose import CompositionPolicy
    from tagifai.config import get_settings
    from tagifai.extract import extract_table

    settings = get_settings(warehouse=warehouse)
    policy = CompositionPolicy.from_settings(
        settings,
        training_data=training_data or None,
        window_days=window_days if window_days > 0 else None,
        replay_share=replay_share if replay_share >= 0 else None,
        replay_min_per_class=replay_min_per_class if replay_min_per_class >= 0 else None,
    )
    expected = ""
    if curated is not None:
        table = curated.metadata.get("warehouse_table") or table
        expected = curated.metadata.get("content_hash", "")
    meta = extract_table(settings.warehouse, table, dataset.path, policy, seed, expected_hash=expected)
    dataset.metadata.update(meta)
