"""sense: the sensor of the continual loop (is there enough new data to retrain?) and its watermark."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("sense"), install_kfp_package=False)
def sense(
    projects_source: str,
    warehouse: str,
    min_new_rows: int,
    max_age_days: float,
    decision: Output[Artifact],
) -> bool:
    """Read the ``id`` and ``created_on`` of ``projects_source`` and the watermark in ``warehouse`` (empty:
    the environment's TAGIFAI_WAREHOUSE) and decide (tagifai.sensor): ``retrain`` when at least
    ``min_new_rows`` rows are newer than the watermark, or some are and the watermark is ``max_age_days``
    old, or there is no watermark yet. Returns ``retrain``; writes ``decision`` (JSON, and the same fields
    as metadata: ``retrain``, ``new_rows``, ``drift_check_needed`` and the deterministic ``run_key`` of the
    data). One plain output: kfp.local 2.17 cannot resolve a NamedTuple field in a ``dsl.If`` condition.
    Writes nothing to the warehouse. Fails when the source cannot be read or lacks ``id``/``created_on``.
    """
    import json
    from pathlib import Path

    from tagifai.config import get_settings
    from tagifai.sensor import sense as decide

    settings = get_settings(warehouse=warehouse)
    result = decide(projects_source, settings.warehouse, min_new_rows, max_age_days)
    data = result.to_dict()
    Path(decision.path).parent.mkdir(parents=True, exist_ok=True)
    Path(decision.path).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    decision.metadata.update({k: v for k, v in data.items() if k != "previous" and v is not None})
    return result.retrain


@dsl.component(base_image=default_image("sense"), install_kfp_package=False)
def advance_watermark(projects_source: str, warehouse: str, decision: Input[Artifact]) -> bool:
    """Advance the watermark in ``warehouse`` to the data of ``decision`` (the sense task's), after the run
    it triggered succeeded.

    Re-senses ``projects_source`` first: when it no longer gives ``run_key`` (rows arrived or changed since
    the decision), the run did not process all of it, so the watermark stays (the output is False and the
    next sense counts those rows again). Idempotent: advancing twice to the same key writes once.
    Fails only when the source or the warehouse cannot be read or written.
    """
    from tagifai.config import get_settings
    from tagifai.sensor import advance_for

    run_key = decision.metadata["run_key"]
    settings = get_settings(warehouse=warehouse)
    advanced, now = advance_for(projects_source, settings.warehouse, run_key)
    if advanced:
        print(f"watermark advanced to {run_key} (created_on <= {now.last_created_on}, {now.rows} rows)")
    else:
        print(f"watermark NOT advanced: the source now gives {now.run_key}, not {run_key} (it changed)")
    return advanced
