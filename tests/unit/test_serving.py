"""tagifai.serving: the compiled (scikit-learn-free) serving form gives the model's own probabilities and tags, and
the serving copy falls back to the pickle when the compiled form is unsupported, broken or stale."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tagifai.data import OTHER, STOPWORDS, clean_texts, prepare
from tagifai.model import TagifaiModel, TrainArgs, apply_threshold
from tagifai.predict import SERVING_INFO, load_serving_copy, predict, serving_dir, write_serving_copy
from tagifai.serving import (
    OTHER as SERVING_OTHER,
)
from tagifai.serving import (
    CompiledModel,
    Unsupported,
    check_compiled,
    compile_model,
    compiled_bytes,
    predict_records,
)
from tagifai.serving import (
    apply_threshold as labels,
)

ROOT = Path(__file__).resolve().parents[2]
NAME = "tagifai-serving-test"

#: Inputs the real data does not have: empty parts, unicode, very long, unknown words, URLs and stop words only,
#: odd whitespace, missing cells.
EDGE_ROWS = [
    ("", ""),
    ("", "Only a description of transformers"),
    ("Only a title: object detection", ""),
    ("Ünïcödé façade — 画像認識 🚀 naïve ﬁne-tuning", "Ça marche? Ελληνικά κείμενα, ПРИВЕТ мир"),
    ("qzxvb unknownword zzzzyyyy", "blorf glarb 1234567 x y z"),
    ("  spaces\t\tand\nnewlines  ", " \u00a0 \u2003 "),
    ("URL https://github.com/a/b and www.example.com/x", "don't won't it's the a an of"),
    ("MLOps pipelines " * 400, "Kubernetes deployment monitoring drift " * 300),
    (None, float("nan")),
    ("GPT-2 & BERT: NLP!!!", "C++/CUDA kernels for 3D point-clouds (PointNet++)"),
]


@pytest.fixture(scope="module")
def data(_labeled_projects):
    df = prepare(_labeled_projects.copy())
    edge = pd.DataFrame(EDGE_ROWS, columns=["title", "description"])
    inputs = pd.concat([df[["title", "description"]], edge], ignore_index=True)
    return {"X": df[["title", "description"]], "y": df["label"], "inputs": inputs}


def fit(data, **changes) -> TagifaiModel:
    args = TrainArgs(**{"embedding": "none", **changes})
    return TagifaiModel(args).fit(data["X"], data["y"])


def compiled_of(model) -> CompiledModel:
    """Through the file's bytes, as it is served."""
    return CompiledModel.from_bytes(compiled_bytes(model))


def assert_same_predictions(model, compiled, inputs, threshold: float = 0.5) -> float:
    expected = model.predict_proba(inputs)
    got = compiled.predict_proba(inputs)
    assert got.shape == expected.shape
    diff = float(np.abs(got - expected).max())
    assert np.allclose(got, expected, rtol=0, atol=1e-9), diff
    assert compiled.classes_ == model.classes_
    for t in (model.threshold, threshold):
        assert compiled.predict(inputs, threshold=t).tolist() == model.predict(inputs, threshold=t).tolist()
    return diff


# --------------------------------------------------------------------------- text cleaning


def test_cleaning_is_tagifai_datas(data):
    from tagifai.data import raw_text

    raw = raw_text(data["inputs"]).tolist()
    raw += ["Don't stop-words!", "it's-it's", "http://x.y/z?q=1#f end", "A\u0130\u212a K", "ß straße STRASSE", "x" * 10]
    compiled = compiled_of(fit(data, analyzer="word", ngram_max=1))
    assert compiled.clean(raw) == list(clean_texts(raw))
    assert SERVING_OTHER == OTHER
    assert compiled.meta["cleaning"]["stopwords"] == list(STOPWORDS)


# --------------------------------------------------------------------------- probabilities, family by family

CONFIGS = {
    "svc-charwb+word": dict(model="linear_svc"),
    "svc-charwb": dict(model="linear_svc", word_ngram_max=0),
    "svc-char1-3+word2": dict(model="linear_svc", analyzer="char", ngram_min=1, ngram_max=3, word_ngram_max=2),
    "svc-word1-2": dict(model="linear_svc", analyzer="word", ngram_max=2),
    "svc-plain-tf": dict(model="linear_svc", sublinear_tf=False, min_df=2, max_features=3000, class_weight=None),
    "logreg-charwb+word": dict(model="logreg"),
    "logreg-word1-3": dict(model="logreg", analyzer="word", ngram_max=3),
    "sgd-log": dict(model="sgd", loss="log_loss"),
    "sgd-modified-huber": dict(model="sgd", loss="modified_huber", analyzer="char_wb", word_ngram_max=2),
    "sgd-hinge-calibrated": dict(model="sgd", loss="hinge"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_compiled_probabilities_are_the_models(data, name):
    model = fit(data, **CONFIGS[name])
    compiled = compiled_of(model)
    diff = assert_same_predictions(model, compiled, data["inputs"])
    assert diff < 1e-12, diff
    # raw strings in, as the model takes them too
    raw = ["Transfer learning with transformers", "", "ViT for images 🚀"]
    np.testing.assert_allclose(compiled.predict_proba(raw), model.predict_proba(raw), rtol=0, atol=1e-12)
    check_compiled(compiled, model)  # the self-check of write_serving_copy agrees


@pytest.mark.parametrize("family", ["linear_svc", "logreg", "sgd-log", "sgd-modified-huber"])
def test_two_classes(data, family):
    y = np.where(data["y"] == "natural-language-processing", "nlp", "rest")
    changes = {"linear_svc": dict(model="linear_svc"), "logreg": dict(model="logreg")}.get(family) or dict(
        model="sgd", loss="log_loss" if family == "sgd-log" else "modified_huber"
    )
    model = TagifaiModel(TrainArgs(embedding="none", **changes)).fit(data["X"], y)
    diff = assert_same_predictions(model, compiled_of(model), data["inputs"])
    assert diff < 1e-12, diff


def test_default_model_with_the_embedding(trained_default, data):
    model = trained_default.model
    assert model.args.embedding == "minilm" and model.args.model == "linear_svc"
    compiled = compiled_of(model)
    diff = assert_same_predictions(model, compiled, data["inputs"])
    assert diff < 1e-12, diff
    frame = data["inputs"].iloc[:50]
    pd.testing.assert_frame_equal(predict(compiled, frame), predict(model, frame), check_exact=False, atol=1e-12)


def test_logreg_with_a_weighted_embedding(data):
    model = fit(data, model="logreg", embedding="minilm", embedding_weight=2.0, word_ngram_max=0)
    diff = assert_same_predictions(model, compiled_of(model), data["inputs"])
    assert diff < 1e-12, diff


def test_text_column_and_labels(data):
    model = fit(data, model="logreg", analyzer="word")
    compiled = compiled_of(model)
    frame = data["inputs"].iloc[:20].copy()
    frame["text"] = ["custom cleaned text"] * 10 + [None] * 10
    np.testing.assert_allclose(compiled.predict_proba(frame), model.predict_proba(frame), rtol=0, atol=1e-12)
    only_text = frame[["text"]]
    np.testing.assert_allclose(compiled.predict_proba(only_text), model.predict_proba(only_text), rtol=0, atol=1e-12)
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    for t in (0.0, 0.5, 0.7):
        assert labels(proba, ["a", "b"], t).tolist() == apply_threshold(proba, ["a", "b"], t).tolist()
    assert compiled.predict_proba(frame.iloc[0:0]).shape == (0, len(model.classes_))


def test_predict_records_are_predicts_records(trained_default):
    model = trained_default.model
    compiled = compiled_of(model)
    for title, description in [("Transfer learning with transformers", "Using transformers for NLP"), ("", "")]:
        frame = pd.DataFrame([{"title": title, "description": description}])
        old = predict(model, frame).to_dict(orient="records")
        new = predict_records(compiled, title, description)
        assert [list(r) for r in new] == [list(r) for r in old]
        assert new[0]["predicted_tag"] == old[0]["predicted_tag"]
        np.testing.assert_allclose(list(new[0].values())[1:], list(old[0].values())[1:], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- what is not compiled


def test_unsupported_models_say_why(data):
    nb = fit(data, model="complement_nb")
    with pytest.raises(Unsupported, match="ComplementNB"):
        compile_model(nb)
    with pytest.raises(Unsupported, match="not a TagifaiModel"):
        compile_model(object())
    old = fit(data, model="logreg", analyzer="word")
    old.classifier_ = None  # as a model pickled by an earlier version
    with pytest.raises(Unsupported, match="earlier version"):
        compile_model(old)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from tagifai.model import to_inputs

    iso = fit(data, model="logreg", analyzer="word")
    iso.classifier_ = CalibratedClassifierCV(LinearSVC(), method="isotonic", cv=3).fit(
        iso._matrix(*to_inputs(data["X"])), data["y"]
    )
    with pytest.raises(Unsupported, match="isotonic"):
        compile_model(iso)


# --------------------------------------------------------------------------- the serving copy


def make_store(folder: Path, version: int = 1, run_id: str = "run1", source: str = "models:/m-1") -> str:
    """The two tables registry_alias reads, as MLflow's SQLite store has them (no MLflow needed)."""
    db = folder / "mlflow.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS registered_model_aliases (name TEXT, alias TEXT, version INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS model_versions (name TEXT, version INTEGER, run_id TEXT, source TEXT)")
    conn.execute("DELETE FROM registered_model_aliases")
    conn.execute("INSERT INTO registered_model_aliases VALUES (?, 'champion', ?)", (NAME, version))
    conn.execute("DELETE FROM model_versions WHERE name = ? AND version = ?", (NAME, version))
    conn.execute("INSERT INTO model_versions VALUES (?, ?, ?, ?)", (NAME, version, run_id, source))
    conn.commit()
    conn.close()
    return f"sqlite:///{db}"


def export(tmp_path: Path, model, version: int = 1) -> tuple[str, Path]:
    uri = make_store(tmp_path, version, run_id=f"run{version}", source=f"models:/m-{version}")
    pickled = tmp_path / f"model{version}.pkl"
    pickled.write_bytes(pickle.dumps(model))
    write_serving_copy(pickled, uri, NAME, version, run_id=f"run{version}", source=f"models:/m-{version}")
    return uri, serving_dir(uri, NAME)


@pytest.fixture(scope="module")
def small_model(data):
    return fit(data, model="linear_svc")


def test_serving_copy_has_the_compiled_form(tmp_path, small_model):
    uri, folder = export(tmp_path, small_model)
    info = json.loads((folder / SERVING_INFO).read_text())
    entry = info["compiled"]
    assert entry["file"].endswith(".npz") and (folder / entry["file"]).stat().st_size == entry["bytes"]
    lookup = load_serving_copy(uri, NAME, compiled=True)
    assert lookup.used and lookup.compiled and lookup.compiled_reason == "used" and not lookup.warning
    assert isinstance(lookup.model, CompiledModel)
    plain = load_serving_copy(uri, NAME)  # callers that did not ask get the pickle, as before
    assert plain.used and isinstance(plain.model, TagifaiModel) and not plain.compiled
    frame = pd.DataFrame(EDGE_ROWS, columns=["title", "description"])
    np.testing.assert_allclose(lookup.model.predict_proba(frame), plain.model.predict_proba(frame), rtol=0, atol=1e-12)
    # a new version replaces both files
    uri, folder = export(tmp_path, small_model, version=2)
    assert sorted(p.name for p in folder.glob("model-v*")) == [
        json.loads((folder / SERVING_INFO).read_text())["compiled"]["file"],
        json.loads((folder / SERVING_INFO).read_text())["file"],
    ]


def test_unsupported_model_falls_back_to_the_pickle(tmp_path, data):
    uri, folder = export(tmp_path, fit(data, model="complement_nb"))
    info = json.loads((folder / SERVING_INFO).read_text())
    assert info["compiled"] is None and "ComplementNB" in info["compiled_reason"]
    assert not list(folder.glob("*.npz"))
    lookup = load_serving_copy(uri, NAME, compiled=True)
    assert lookup.used and not lookup.compiled and isinstance(lookup.model, TagifaiModel) and not lookup.warning
    assert (
        lookup.compiled_reason.startswith("no compiled form (unsupported") and "ComplementNB" in lookup.compiled_reason
    )


def test_copy_written_before_the_compiled_form_uses_the_pickle(tmp_path, small_model):
    uri, folder = export(tmp_path, small_model)
    info = json.loads((folder / SERVING_INFO).read_text())
    del info["compiled"]
    (folder / SERVING_INFO).write_text(json.dumps(info))
    lookup = load_serving_copy(uri, NAME, compiled=True)
    assert lookup.used and not lookup.compiled and lookup.compiled_reason.startswith("no compiled form")


def test_corrupted_compiled_form_falls_back_with_a_warning(tmp_path, data, small_model):
    uri, folder = export(tmp_path, small_model)
    info = json.loads((folder / SERVING_INFO).read_text())
    # a loadable compiled file of another model: only the hash tells it apart
    (folder / info["compiled"]["file"]).write_bytes(compiled_bytes(fit(data, model="logreg", analyzer="word")))
    lookup = load_serving_copy(uri, NAME, compiled=True)
    assert lookup.used and not lookup.compiled and isinstance(lookup.model, TagifaiModel)
    assert lookup.compiled_reason == "compiled form corrupted" and "sha256" in lookup.warning
    (folder / info["compiled"]["file"]).unlink()
    lookup = load_serving_copy(uri, NAME, compiled=True)
    assert lookup.used and not lookup.compiled and lookup.compiled_reason == "compiled file missing" and lookup.warning


def test_stale_or_corrupted_pickle_is_not_served_compiled_either(tmp_path, small_model):
    uri, folder = export(tmp_path, small_model)
    make_store(tmp_path, version=2, run_id="run2", source="models:/m-2")  # the alias moved behind its back
    lookup = load_serving_copy(uri, NAME, compiled=True)
    assert not lookup.used and lookup.reason.startswith("stale") and not lookup.warning
    uri, folder = export(tmp_path, small_model, version=2)
    assert load_serving_copy(uri, NAME, compiled=True).compiled
    info = json.loads((folder / SERVING_INFO).read_text())
    (folder / info["file"]).write_bytes(b"not the pickle")
    lookup = load_serving_copy(uri, NAME, compiled=True)
    assert not lookup.used and lookup.reason == "corrupted" and "sha256" in lookup.warning


# --------------------------------------------------------------------------- no scikit-learn, SciPy, pandas


def cli(home: Path, uri: str) -> subprocess.CompletedProcess:
    argv = ["predict", "--home", str(home), "--mlflow-tracking-uri", uri]
    argv += ["--title", "Transfer learning with transformers", "--description", "Using transformers for NLP"]
    code = (
        "import sys\n"
        "from tagifai_cli.main import main\n"
        f"code = main({argv!r})\n"
        "print('HEAVY', sorted(m for m in ('sklearn', 'scipy', 'pandas', 'mlflow') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGIFAI_", "MLFLOW_"))}
    env["TAGIFAI_MODEL_NAME"] = NAME
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_cli_single_prediction_imports_no_sklearn_scipy_pandas(tmp_path, trained_default):
    """The default model (with the embedding), new (compiled) against old (pickle) in fresh interpreters: the same
    printed records, and the compiled one imported neither scikit-learn, SciPy nor pandas."""
    uri, folder = export(tmp_path, trained_default.model)
    new = cli(tmp_path, uri)
    new_out, _, new_heavy = new.stdout.rpartition("HEAVY ")
    assert new_heavy.strip() == "[]", new.stderr
    assert not new.stderr.strip(), new.stderr
    info = json.loads((folder / SERVING_INFO).read_text())
    info.pop("compiled")  # as a copy written before the compiled form: the pickle path of before
    (folder / SERVING_INFO).write_text(json.dumps(info))
    old = cli(tmp_path, uri)
    old_out, _, old_heavy = old.stdout.rpartition("HEAVY ")
    assert "sklearn" in old_heavy and "pandas" in old_heavy and "mlflow" not in old_heavy
    new_records, old_records = json.loads(new_out), json.loads(old_out)
    assert [list(r) for r in new_records] == [list(r) for r in old_records]
    assert new_records[0]["predicted_tag"] == old_records[0]["predicted_tag"]
    np.testing.assert_allclose(list(new_records[0].values())[1:], list(old_records[0].values())[1:], rtol=0, atol=1e-12)
    # the same layout as before: two-space indented records
    assert new_out.startswith('[\n  {\n    "predicted_tag": ')
