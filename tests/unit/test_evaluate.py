"""tagifai.evaluate: metrics, slices, confusion matrix, behavioral tests, the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tagifai.evaluate import (
    BEHAVIORAL_TESTS,
    SLICES,
    BehavioralTestError,
    check_behavioral_tests,
    confusion_matrix,
    evaluate_model,
    get_metrics,
    report_markdown,
    run_behavioral_tests,
)
from tagifai.train import TrainArgs, train


def test_get_metrics_on_hand_made_labels():
    y_true = ["a", "a", "b", "b"]
    y_pred = ["a", "b", "b", "b"]
    m = get_metrics(y_true, y_pred, classes=["a", "b"])
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "num_samples": 2})
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "num_samples": 2})
    assert m["overall"]["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["overall"]["precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["overall"]["num_samples"] == 4
    assert m["slices"] == {}
    json.dumps(m)


def test_slices_use_registered_functions():
    assert {"nlp_cnn", "short_text"} <= set(SLICES)
    df = pd.DataFrame(
        {
            "text": [
                "cnn text classification sentences",  # nlp + cnn, short
                "cnn image classification model trained imagenet many images today",  # cv + cnn, long
                "transformers language models words sentences tokens attention heads",  # nlp, long
                "graph nets",  # other, short
            ]
        }
    )
    y_true = ["natural-language-processing", "computer-vision", "natural-language-processing", "other"]
    y_pred = ["natural-language-processing", "computer-vision", "computer-vision", "computer-vision"]
    m = get_metrics(y_true, y_pred, ["computer-vision", "natural-language-processing", "other"], df=df)
    assert m["slices"]["nlp_cnn"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "num_samples": 1}
    assert m["slices"]["short_text"]["num_samples"] == 2
    assert m["slices"]["short_text"]["f1"] == pytest.approx(0.5)  # micro: 1 of 2 right
    empty = get_metrics(
        y_true[1:], y_pred[1:], ["computer-vision", "natural-language-processing", "other"], df=df.iloc[1:]
    )
    assert empty["slices"]["nlp_cnn"] == {"precision": None, "recall": None, "f1": None, "num_samples": 0}
    with pytest.raises(ValueError, match="rows"):
        get_metrics(y_true, y_pred, ["other"], df=df.iloc[:2])


def test_slices_from_title_and_description():
    df = pd.DataFrame({"title": ["Text CNN"], "description": ["Convolutions for sentences."]})
    m = get_metrics(["natural-language-processing"], ["other"], ["natural-language-processing", "other"], df=df)
    assert m["slices"]["nlp_cnn"]["num_samples"] == 1 and m["slices"]["nlp_cnn"]["f1"] == 0.0


def test_confusion_matrix_order_and_counts():
    cm = confusion_matrix(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert cm == {"classes": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 1, 0], [1, 0, 0]]}


def test_behavioral_tests_report_and_raise_on_failures():
    def predict_fn(texts):
        return ["computer-vision" if "image" in t else "natural-language-processing" for t in texts]

    results = run_behavioral_tests(predict_fn)
    assert len(results) == len(BEHAVIORAL_TESTS) == 8
    assert {r["kind"] for r in results} == {"invariance", "directional", "minimum_functionality"}
    failed = {r["name"] for r in results if not r["passed"]}
    assert failed == {"mft_mlops", "mft_other"}
    with pytest.raises(BehavioralTestError, match="mft_mlops.*mft_other") as info:
        check_behavioral_tests(results)
    assert [f["name"] for f in info.value.failures] == ["mft_mlops", "mft_other"]
    check_behavioral_tests([r for r in results if r["passed"]])  # no error


def test_default_model_passes_all_behavioral_tests(trained_default):
    results = run_behavioral_tests(trained_default.model)
    check_behavioral_tests(results)
    assert all(r["passed"] for r in results)


@pytest.mark.parametrize("seed", [0, 1])
def test_default_model_passes_behavioral_tests_on_other_seeds(labeled_df, seed):
    result = train(labeled_df, TrainArgs(seed=seed))
    check_behavioral_tests(run_behavioral_tests(lambda texts: result.model.predict(texts)))


def test_evaluate_model_and_report(trained_default):
    test = trained_default.splits.test
    metrics = evaluate_model(trained_default.model, test)
    assert metrics["overall"]["f1"] == pytest.approx(trained_default.metrics["test"]["f1"])
    assert set(metrics["per_class"]) == set(trained_default.classes)
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == len(test)
    assert metrics["slices"]["short_text"]["num_samples"] > 0
    # Raw rows (tag, not label) are prepared with the model's own label settings.
    raw = evaluate_model(trained_default.model, test[["id", "title", "description", "tag"]])
    assert raw["overall"]["num_samples"] == len(test)
    behavioral = run_behavioral_tests(trained_default.model)
    behavioral[0] = {**behavioral[0], "passed": False, "predicted": "mlops"}
    md = report_markdown(metrics, behavioral)
    for heading in (
        "# Evaluation report",
        "## Overall",
        "## Per class",
        "## Slices",
        "## Confusion matrix",
        "## Behavioral tests: 7/8 passed",
    ):
        assert heading in md
    assert "**FAIL**" in md and "| **mlops** |" in md
    json.dumps(metrics)


def test_evaluate_csv_frame_maps_unknown_tags_to_other(trained_default):
    df = pd.DataFrame(
        {
            "title": ["Image segmentation with U-Net", "Policy gradients for Atari"],
            "description": ["Segment cells in microscopy images.", "Reinforcement learning agents."],
            "tag": ["computer-vision", "reinforcement-learning"],
        }
    )
    from tagifai.evaluate import evaluate_csv_frame

    m = evaluate_csv_frame(trained_default.model, df)
    assert m["overall"]["num_samples"] == 2
    assert m["per_class"]["other"]["num_samples"] == 1  # reinforcement-learning counts as "other"
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == 2
