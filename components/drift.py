"""drift: the new rows of labeled_projects against the champion's training data (tagifai.drift, Evidently)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Metrics, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("drift"), install_kfp_package=False)
def drift(
    warehouse: str,
    mlflow_tracking_uri: str,
    model_name: str,
    state_dir: str,
    retrain_on: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    result: Output[Artifact],
) -> bool:
    """Compare the rows of ``labeled_projects`` newer than the champion's training watermark with the rows it
    was trained on: the label mix (chi-square or Jensen-Shannon), the champion's predictions and mean
    confidence, text length (KS), the out-of-vocabulary rate and a text domain classifier (ROC AUC), with
    the TAGIFAI_DRIFT_* thresholds. Writes ``report`` (Evidently's HTML, self-contained: it renders
    offline), ``metrics`` (every statistic, ``drifted`` 0/1) and ``result`` (JSON; metadata ``drifted``,
    ``reasons``, ``skipped``). Returns whether to retrain: always with ``retrain_on`` ``new-data`` (empty:
    the TAGIFAI_RETRAIN_ON setting), only on drift with ``drift``. No champion yet means nothing to drift
    from: not drifted, and retrain. Fails only when the table or the registry cannot be read.
    """
    import json
    from pathlib import Path

    from tagifai.config import get_settings
    from tagifai.drift import DriftThresholds, drift_against_champion

    s = get_settings(
        home=state_dir, warehouse=warehouse, mlflow_tracking_uri=mlflow_tracking_uri, model_name=model_name
    )
    Path(result.path).parent.mkdir(parents=True, exist_ok=True)
    out = drift_against_champion(
        s.warehouse, s.model_name, s.mlflow_tracking_uri, DriftThresholds.from_settings(s), html_path=report.path
    )
    data = out.to_dict()
    Path(result.path).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    for name, value in out.metrics().items():
        metrics.log_metric(name, value)
    policy = retrain_on or s.retrain_on
    retrain = policy == "new-data" or out.drifted or out.champion_version is None
    result.metadata.update(
        {"drifted": out.drifted, "reasons": out.reasons, "skipped": out.skipped or "", "retrain": retrain}
    )
    print(("DRIFT: " + "; ".join(out.reasons)) if out.drifted else f"no drift ({out.skipped or 'every check passed'})")
    return retrain
