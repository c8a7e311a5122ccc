"""evaluate: the registered model on held-out data, behavioral tests, the champion gate (promote, wait, reject)."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("evaluate"), install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    mlflow_tracking_uri: str,
    model_name: str,
    state_dir: str,
    approval: str,
    report: Output[Markdown],
    metrics: Output[Metrics],
    plots: Output[HTML],
    promotion_margin: float = -1.0,
):
    """The human gate. ``model`` is train's Model artifact: its files are what is scored, and its metadata
    ``model_uri`` (``models:/<name>/<version>``) names the new version. That version gets the alias
    ``challenger``, is scored on
    ``test_data`` with the behavioral tests (invariance, directional, minimum functionality), and
    ``<model_name>@champion`` is scored on the same rows. Outcome: ``rejected`` (a behavioral test
    failed, or its f1 does not beat the champion's by ``promotion_margin``; negative: the
    TAGIFAI_PROMOTION_MARGIN setting), else ``promoted`` (``approval`` auto: the champion alias
    moves to it) or ``pending-approval`` (``approval`` manual: it waits for ``tagifai models approve``).
    Every alias move is recorded in the registry's alias log (tagifai.registry).
    Writes: ``report`` (Markdown: overall, per class, slices, confusion matrix, behavioral tests, the
    decision and its reason; metadata ``outcome``) and ``metrics`` (test precision/recall/f1,
    behavioral pass counts, ``promoted`` 0/1, ``outcome`` 0 rejected / 1 pending-approval / 2 promoted)
    and ``plots`` (HTML the KFP and Vertex UIs show: the decision, the challenger's confusion matrix and
    per-class precision/recall/f1 on ``test_data``; a picture that cannot be drawn is a note).
    A rejected challenger is an outcome, not a failure: the step fails only when the model cannot be
    loaded or scored.
    """
    from pathlib import Path

    import pandas as pd

    from tagifai.artifacts import keep_values
    from tagifai.config import get_settings
    from tagifai.figures import evaluation_page
    from tagifai.workflows import evaluate_and_promote

    s = get_settings(home=state_dir, mlflow_tracking_uri=mlflow_tracking_uri, model_name=model_name)
    model_uri = model.metadata.get("model_uri")
    if not model_uri:
        raise ValueError(f"Model artifact {model.uri} names no model_uri (models:/<name>/<version>) in its metadata")
    out = evaluate_and_promote(
        model_uri,
        pd.read_parquet(test_data.path),
        s.model_name,
        s.mlflow_tracking_uri,
        approval=approval or "auto",
        margin=promotion_margin if promotion_margin >= 0 else s.promotion_margin,
        model_path=model.path,
    )
    Path(report.path).write_text(out.report, encoding="utf-8")
    report.metadata["outcome"] = out.outcome
    report.metadata["reason"] = out.reason
    Path(plots.path).write_text(evaluation_page(out.metrics, out.outcome, out.reason, model_uri), encoding="utf-8")
    for name in ("precision", "recall", "f1"):
        metrics.log_metric(name, out.metrics["overall"][name])
    metrics.log_metric("behavioral_passed", sum(r["passed"] for r in out.behavioral))
    metrics.log_metric("behavioral_total", len(out.behavioral))
    metrics.log_metric("promoted", int(out.promoted))
    metrics.log_metric("outcome", out.outcome_code)
    keep_values(metrics)  # a file at every output: kfp.local's cache can reuse this step
