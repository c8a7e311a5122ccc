"""tagifai.model: the arguments, the served model, its inputs, pickles (old and new import paths), and
that prediction never imports the training code."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from tagifai.data import DataError, prepare
from tagifai.model import TagifaiModel, TrainArgs, apply_threshold, build_classifier, build_features, to_inputs

CLASSES = ["computer-vision", "natural-language-processing", "other"]


def test_train_args_json_round_trip_and_validation():
    args = TrainArgs(analyzer="word", ngram_max=2, class_weight=None, loss="log_loss", seed=3)
    restored = TrainArgs.from_dict(json.loads(json.dumps(asdict(args))))
    assert restored == args
    assert TrainArgs.from_dict(args.to_dict()).replace(alpha=1e-3).alpha == 1e-3
    with pytest.raises(ValueError, match="unknown TrainArgs field.*bogus"):
        TrainArgs.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="TrainArgs.analyzer='chars'"):
        TrainArgs(analyzer="chars")
    with pytest.raises(ValueError, match="TrainArgs.loss"):
        TrainArgs(loss="squared")
    with pytest.raises(ValueError, match="needs val_size > 0"):
        TrainArgs(val_size=0, threshold_strategy="val_grid")
    TrainArgs(val_size=0, threshold_strategy="fixed", threshold=0.5)  # fine without validation


def test_apply_threshold_returns_other_below_threshold():
    proba = np.array([[0.90, 0.05, 0.05], [0.40, 0.35, 0.25], [0.10, 0.60, 0.30]])
    assert apply_threshold(proba, CLASSES, 0.0).tolist() == [
        "computer-vision",
        "computer-vision",
        "natural-language-processing",
    ]
    assert apply_threshold(proba, CLASSES, 0.5).tolist() == ["computer-vision", "other", "natural-language-processing"]
    assert apply_threshold(proba, CLASSES, 0.95).tolist() == ["other"] * 3
    assert apply_threshold(proba, CLASSES, 0.60).tolist()[2] == "natural-language-processing"  # equal is kept
    with pytest.raises(ValueError, match="does not match"):
        apply_threshold(proba, CLASSES[:2], 0.5)


def test_model_inputs_and_errors(labeled_df):
    df = prepare(labeled_df).sample(200, random_state=0)
    model = TagifaiModel(TrainArgs(analyzer="word", ngram_max=1, threshold_strategy="none"))
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(df)
    model.fit(df, df["label"])
    raw = (df["title"] + " " + df["description"]).tolist()
    np.testing.assert_allclose(model.predict_proba(df[["title", "description"]]), model.predict_proba(raw))
    assert model.predict_proba(raw).shape == (200, len(model.classes_))
    np.testing.assert_allclose(model.predict_proba(raw).sum(axis=1), 1.0)
    # A prepared frame without title/description: the cleaned text feeds both feature kinds.
    assert model.predict_proba(df[["text"]]).shape == (200, len(model.classes_))
    with pytest.raises(DataError, match="'description'"):
        model.predict(df[["title"]])
    clone = pickle.loads(pickle.dumps(model))
    assert clone.predict(raw).tolist() == model.predict(raw).tolist()
    tfidf_only = TagifaiModel(TrainArgs(analyzer="word", ngram_max=1, embedding="none")).fit(df, df["label"])
    np.testing.assert_allclose(tfidf_only.predict_proba(df[["text"]]), tfidf_only.predict_proba(raw))


def test_model_inputs_split_into_cleaned_and_raw_text():
    frame = pd.DataFrame({"title": ["Vision Transformers"], "description": [None], "text": ["vision transformers"]})
    assert to_inputs(frame) == (["vision transformers"], ["Vision Transformers"])
    assert to_inputs(frame[["text"]]) == (["vision transformers"], ["vision transformers"])
    assert to_inputs(["The BEST models, https://x.io"]) == (["best models"], ["The BEST models, https://x.io"])
    assert to_inputs("One string") == (["one string"], ["One string"])
    with pytest.raises(DataError, match="expected a DataFrame or strings"):
        to_inputs(42)


def test_embedding_adds_384_columns_and_is_shared_within_a_model(labeled_df):
    df = prepare(labeled_df).sample(120, random_state=2)
    with_embedding = TagifaiModel(TrainArgs(analyzer="word", ngram_max=1)).fit(df, df["label"])
    without = TagifaiModel(TrainArgs(analyzer="word", ngram_max=1, embedding="none")).fit(df, df["label"])
    assert with_embedding.classifier_.n_features_in_ == without.classifier_.n_features_in_ + 384
    assert without.embedder is None and with_embedding.embedder is not None
    with pytest.raises(ValueError, match="complement_nb"):
        TrainArgs(model="complement_nb")  # its features must be non-negative
    with pytest.raises(ValueError, match="TrainArgs.embedding="):
        TrainArgs(embedding="bert")
    with pytest.raises(ValueError, match="embedding_weight"):
        TrainArgs(embedding_weight=0)


@pytest.mark.parametrize(
    "changes",
    [
        {"model": "sgd", "loss": "log_loss"},
        {"model": "sgd", "loss": "hinge"},
        {"model": "logreg", "C": 10.0},
        {"model": "linear_svc"},
        {"model": "complement_nb", "embedding": "none"},
        {
            "model": "sgd",
            "embedding": "none",
            "analyzer": "char",
            "word_ngram_max": 0,
            "sublinear_tf": False,
            "class_weight": None,
        },
        {"model": "linear_svc", "embedding_weight": 2.0},
    ],
)
def test_every_model_family_gives_probabilities(labeled_df, changes):
    df = prepare(labeled_df).sample(300, random_state=1)
    model = TagifaiModel(TrainArgs(**changes)).fit(df, df["label"])
    proba = model.predict_proba(df.head(20))
    assert proba.shape == (20, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (model.predict(df.head(20), threshold=1.01) == "other").all()


def test_models_pickled_before_the_embedding_still_predict(labeled_df):
    """A champion registered by an earlier version (TF-IDF pipeline_, TrainArgs without the embedding
    fields) loads and predicts as before."""
    from sklearn.pipeline import Pipeline

    df = prepare(labeled_df).sample(200, random_state=3)
    args = TrainArgs(model="sgd", analyzer="word", ngram_max=1, embedding="none")
    pipeline = Pipeline([("features", build_features(args)), ("clf", build_classifier(args))])
    pipeline.fit(df["text"], df["label"])
    old_args = TrainArgs.from_dict(args.to_dict())
    del old_args.__dict__["embedding"], old_args.__dict__["embedding_weight"]
    old = TagifaiModel.__new__(TagifaiModel)
    old.__dict__.update(
        args=old_args, threshold=0.3, other="other", pipeline_=pipeline, classes_=[str(c) for c in pipeline.classes_]
    )
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.args.embedding == "none" and "unfitted" not in repr(loaded)
    np.testing.assert_allclose(loaded.predict_proba(df.head(5)), pipeline.predict_proba(df["text"].head(5)))
    assert len(loaded.predict(["Object detection in images"])) == 1


def test_models_pickled_under_tagifai_train_still_load(labeled_df):
    """Registered models were pickled (cloudpickle, by MLflow's sklearn flavor) when TagifaiModel and
    TrainArgs lived in tagifai.train; tagifai.train re-exports them, so those pickles still load."""
    import cloudpickle

    import tagifai.train

    assert tagifai.train.TagifaiModel is TagifaiModel and tagifai.train.TrainArgs is TrainArgs
    df = prepare(labeled_df).sample(150, random_state=4)
    model = TagifaiModel(TrainArgs(analyzer="word", ngram_max=1), threshold=0.4).fit(df, df["label"])
    new = cloudpickle.dumps(model)
    assert b"tagifai.model" in new and b"tagifai.train" not in new  # by reference, under the new path
    old = new.replace(b"tagifai.model", b"tagifai.train")  # the same length: still a valid pickle
    loaded = pickle.loads(old)
    assert type(loaded) is TagifaiModel and type(loaded.args) is TrainArgs and loaded.threshold == 0.4
    np.testing.assert_allclose(loaded.predict_proba(df.head(10)), model.predict_proba(df.head(10)), atol=1e-6)
    assert loaded.predict(df.head(10)).tolist() == model.predict(df.head(10)).tolist()


def test_prediction_does_not_import_the_training_code(tmp_path, labeled_df):
    """tagifai.predict imports tagifai.model only: neither importing it nor predicting with an unpickled
    model imports tagifai.train (or optuna)."""
    df = prepare(labeled_df).sample(100, random_state=5)
    model = TagifaiModel(TrainArgs(analyzer="word", ngram_max=1, embedding="none")).fit(df, df["label"])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    code = f"""
import pickle, sys
import pandas as pd
import tagifai.predict
loaded_at_import = [m for m in ("tagifai.train", "tagifai.optimize", "sklearn", "optuna") if m in sys.modules]
model = pickle.loads(open({str(path)!r}, "rb").read())
out = tagifai.predict.predict(model, pd.DataFrame({{"title": ["YOLO"], "description": ["Object detection."]}}))
assert len(out) == 1, out
print(loaded_at_import, [m for m in ("tagifai.train", "tagifai.optimize", "optuna") if m in sys.modules])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []"


@pytest.mark.parametrize(
    "changes",
    [
        {"embedding": "none"},  # the default classifier: CalibratedClassifierCV(LinearSVC, sigmoid, cv=3)
        {"embedding": "none", "model": "sgd", "loss": "hinge"},  # CalibratedClassifierCV(SGDClassifier)
        {"embedding": "none", "model": "logreg"},  # not calibrated: scikit-learn's own call
    ],
)
def test_calibrated_probabilities_are_scikit_learns_bit_for_bit(labeled_df, changes):
    """TagifaiModel.predict_proba computes a sigmoid-calibrated linear classifier's probabilities itself
    (tagifai.model.calibrated_linear_proba, without scikit-learn's per-fold input checks): the same floats."""
    from tagifai.model import calibrated_linear_proba

    df = prepare(labeled_df)
    model = TagifaiModel(TrainArgs(threshold_strategy="none", **changes)).fit(df.iloc[:600], df["label"].iloc[:600])
    new = df.iloc[600:]
    matrix = model._matrix(*to_inputs(new[["title", "description"]]))
    expected = model.classifier_.predict_proba(matrix)
    fast = calibrated_linear_proba(model.classifier_, matrix)
    if changes.get("model") == "logreg":
        assert fast is None
    else:
        assert fast is not None and np.array_equal(fast, expected)
        assert np.array_equal(calibrated_linear_proba(model.classifier_, matrix[:1]), expected[:1])
        bad = matrix.copy()
        bad.data[0] = np.nan
        assert calibrated_linear_proba(model.classifier_, bad) is None  # scikit-learn reports it
        assert calibrated_linear_proba(model.classifier_, matrix.toarray()) is None  # only CSR input
    assert np.array_equal(model.predict_proba(new[["title", "description"]]), expected)


def test_predict_reads_title_and_description_whatever_other_columns(labeled_df):
    from tagifai.predict import predict

    df = prepare(labeled_df)
    model = TagifaiModel(TrainArgs(embedding="none", threshold_strategy="none")).fit(df, df["label"])
    new = df.iloc[:80].copy()
    plain = predict(model, new[["id", "title", "description"]])
    wide = new.drop(columns=["text"]).assign(extra=1)
    pd.testing.assert_frame_equal(predict(model, wide), plain)
    changed = new.assign(text="something else entirely")  # a "text" column is never read by predict()
    pd.testing.assert_frame_equal(predict(model, changed), plain)
    pd.testing.assert_frame_equal(predict(model, wide.head(3)), plain.head(3))
