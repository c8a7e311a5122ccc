"""evaluate: the registered model on held-out data, behavioral tests, champion promotion."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("evaluate"), install_kfp_package=False)
def evaluate(
    model_uri: str,
    test_data: Input[Dataset],
    mlflow_tracking_uri: str,
    model_name: str,
    state_dir: str,
    report: Output[Markdown],
    metrics: Output[Metrics],
):
    """Load ``model_uri`` from the MLflow registry, score it on ``test_data``, run the behavioral tests
    (invariance, directional, minimum functionality) and compare it with ``<model_name>@champion`` on
    the same rows; the alias moves to this version when it is not worse and every behavioral test
    passed.
    Writes: ``report`` (Markdown: overall, per class, slices, confusion matrix, behavioral tests,
    champion decision) and ``metrics`` (test precision/recall/f1, behavioral pass counts, promoted).
    Fails when a behavioral test fails, naming each failed case.
    """
    from pathlib import Path

    import pandas as pd

    from tagifai.config import get_settings
    from tagifai.evaluate import check_behavioral_tests
    from tagifai.workflows import evaluate_and_promote

    s = get_settings(home=state_dir, mlflow_tracking_uri=mlflow_tracking_uri, model_name=model_name)
    out = evaluate_and_promote(model_uri, pd.read_parquet(test_data.path), s.model_name, s.mlflow_tracking_uri)
    Path(report.path).write_text(out.report, encoding="utf-8")
    for name in ("precision", "recall", "f1"):
        metrics.log_metric(name, out.metrics["overall"][name])
    metrics.log_metric("behavioral_passed", sum(r["passed"] for r in out.behavioral))
    metrics.log_metric("behavioral_total", len(out.behavioral))
    metrics.log_metric("promoted", int(out.promoted))
    check_behavioral_tests(out.behavioral)
