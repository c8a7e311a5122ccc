"""tagifai.predict: output columns, probabilities, threshold, input validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tagifai.data import DataError
from tagifai.predict import predict


def test_predict_columns_and_probabilities(trained_default):
    model = trained_default.model
    test = trained_default.splits.test[["id", "title", "description"]]
    out = predict(model, test)
    prob_cols = [f"prob_{c}" for c in model.classes_]
    assert list(out.columns) == ["id", "predicted_tag", *prob_cols]
    assert out.index.equals(test.index) and out["id"].tolist() == test["id"].tolist()
    np.testing.assert_allclose(out[prob_cols].sum(axis=1), 1.0, atol=1e-6)
    assert set(out["predicted_tag"]) <= set(model.classes_) | {"other"}
    assert out["predicted_tag"].tolist() == model.predict(test).tolist()
    # Below the threshold the tag is "other"; above it, the arg-max class.
    top = out[prob_cols].max(axis=1)
    argmax = out[prob_cols].idxmax(axis=1).str.removeprefix("prob_")
    expected = np.where(top < model.threshold, "other", argmax)
    assert out["predicted_tag"].tolist() == expected.tolist()
    assert (predict(model, test, threshold=1.01)["predicted_tag"] == "other").all()


def test_predict_without_id_and_empty(trained_default):
    df = pd.DataFrame(
        {"title": ["Image segmentation with U-Net"], "description": ["Segment cells in microscopy images."]}
    )
    out = predict(trained_default.model, df)
    assert "id" not in out.columns and out.loc[0, "predicted_tag"] == "computer-vision"
    empty = predict(trained_default.model, df.iloc[0:0])
    assert len(empty) == 0 and "predicted_tag" in empty.columns


def test_predict_missing_column_is_named(trained_default):
    with pytest.raises(DataError, match="'description'"):
        predict(trained_default.model, pd.DataFrame({"title": ["x"]}))
    with pytest.raises(DataError, match="'title'"):
        predict(trained_default.model, pd.DataFrame({"description": ["x"]}))


def test_default_model_probabilities_are_scikit_learns(trained_default):
    """The default model (TF-IDF + MiniLM, calibrated linear SVM): predict's probabilities are the classifier's own
    predict_proba of the model's features, bit for bit (tagifai.model.calibrated_linear_proba computes them)."""
    from tagifai.model import calibrated_linear_proba, to_inputs

    model = trained_default.model
    test = trained_default.splits.test[["id", "title", "description"]]
    matrix = model._matrix(*to_inputs(test[["title", "description"]]))
    expected = model.classifier_.predict_proba(matrix)
    assert np.array_equal(calibrated_linear_proba(model.classifier_, matrix), expected)
    out = predict(model, test)
    assert np.array_equal(out[[f"prob_{c}" for c in model.classes_]].to_numpy(), expected)
