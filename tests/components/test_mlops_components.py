"""optimize -> train -> evaluate component functions with real artifacts, a real Optuna SQLite study
and a real MLflow SQLite store in a temp dir."""

import json
from pathlib import Path

import pandas as pd
import pytest
from _artifacts import make_artifact
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

from components.evaluate import evaluate
from components.optimize import optimize, optimize_worker
from components.train import train

_artifact = make_artifact


def _model_artifact(tmp_path, model, model_uri: str):
    """A Model artifact as train writes it: the MLflow model directory, its metadata naming the version."""
    import mlflow.sklearn

    art = _artifact(Model, tmp_path, f"model-{model_uri.rsplit('/', 1)[-1]}")
    mlflow.sklearn.save_model(model, art.path, serialization_format="cloudpickle")
    art.metadata["model_uri"] = model_uri
    return art


@pytest.fixture(scope="module")
def chain(tmp_path_factory, _labeled_projects):
    tmp = tmp_path_factory.mktemp("mlops")
    store = {
        "state_dir": str(tmp),
        "mlflow_tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "optuna_storage": f"sqlite:///{tmp / 'optuna.db'}",
    }
    dataset = _artifact(Dataset, tmp, "dataset", {"content_hash": "abc"})
    _labeled_projects.to_parquet(dataset.path, index=False)

    best_args, opt_metrics = _artifact(Artifact, tmp, "best_args"), _artifact(Metrics, tmp, "opt_metrics")
    opt_plots, profile = _artifact(HTML, tmp, "opt_plots"), _artifact(HTML, tmp, "profile")
    optimize.python_func(
        dataset=dataset,
        num_trials=2,
        seed=7,
        study_name="t",
        optuna_storage=store["optuna_storage"],
        mlflow_tracking_uri=store["mlflow_tracking_uri"],
        experiment_name="tagifai",
        state_dir=store["state_dir"],
        best_args=best_args,
        metrics=opt_metrics,
        plots=opt_plots,
        profile=profile,
    )

    outs = {
        n: _artifact(c, tmp, n)
        for n, c in (
            ("model", Model),
            ("metrics", Metrics),
            ("cm", ClassificationMetrics),
            ("slices", Metrics),
            ("test_data", Dataset),
        )
    }
    result = train.python_func(
        dataset=dataset,
        best_args=best_args,
        seed=7,
        mlflow_tracking_uri=store["mlflow_tracking_uri"],
        experiment_name="tagifai",
        model_name="tagifai",
        state_dir=store["state_dir"],
        model=outs["model"],
        metrics=outs["metrics"],
        confusion_matrix=outs["cm"],
        slice_metrics=outs["slices"],
        test_data=outs["test_data"],
    )
    report, ev_metrics = _artifact(Markdown, tmp, "report"), _artifact(Metrics, tmp, "ev_metrics")
    ev_plots = _artifact(HTML, tmp, "ev_plots")
    assert outs["model"].metadata["model_uri"] == result.model_uri
    evaluate.python_func(
        model=outs["model"],
        test_data=outs["test_data"],
        mlflow_tracking_uri=store["mlflow_tracking_uri"],
        model_name="tagifai",
        state_dir=store["state_dir"],
        approval="auto",
        report=report,
        metrics=ev_metrics,
        plots=ev_plots,
    )
    return {
        "tmp": tmp,
        "store": store,
        "best_args": best_args,
        "opt_metrics": opt_metrics,
        "outs": outs,
        "model_uri": result.model_uri,
        "report": report,
        "ev_metrics": ev_metrics,
        "dataset": dataset,
        "opt_plots": opt_plots,
        "profile": profile,
        "ev_plots": ev_plots,
    }


def test_optimize_writes_best_args_and_score(chain):
    args = json.loads(Path(chain["best_args"].path).read_text())
    assert args == chain["best_args"].metadata["args"]
    assert args["seed"] == 7 and args["analyzer"] in ("word", "char", "char_wb")
    assert 0.5 < chain["opt_metrics"].metadata["best_val_f1"] <= 1.0


def _page(artifact) -> str:
    """An HTML output: one self-contained page (PNG data: URIs, nothing fetched, no script)."""
    import re

    page = Path(artifact.path).read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<script" not in page and not re.search(r"https?://", page)
    return page


def test_optimize_writes_optunas_plots_and_the_data_profile(chain):
    plots = _page(chain["opt_plots"])
    assert plots.count('<img src="data:image/png;base64,') == 2  # history and importances (2 completed trials)
    assert chain["best_args"].metadata["study_name"] in plots
    trials = chain["opt_plots"].metadata["trials"]  # what the run report shows beside the page's pictures
    assert trials.get("complete", 0) >= 2 and f"{trials['complete']} complete" in plots
    profile = _page(chain["profile"])
    assert profile.count('<img src="data:image/png;base64,') == 1
    assert f"{len(pd.read_parquet(chain['dataset'].path))} rows" in profile


def test_evaluate_writes_the_matrix_the_class_scores_and_the_decision(chain):
    page = _page(chain["ev_plots"])
    assert page.count('<img src="data:image/png;base64,') == 2
    assert 'class="promoted">promoted<' in page and chain["model_uri"] in page


def test_optimize_resumes_the_same_study_without_new_trials(chain, tmp_path):
    import optuna

    storage = chain["store"]["optuna_storage"]
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    assert len(names) == 1 and names[0].startswith("t-")  # one study, named after the data's content
    again, metrics = _artifact(Artifact, tmp_path, "again"), _artifact(Metrics, tmp_path, "m")
    optimize.python_func(
        dataset=chain["dataset"],
        num_trials=2,
        seed=7,
        study_name="t",
        optuna_storage=storage,
        mlflow_tracking_uri=chain["store"]["mlflow_tracking_uri"],
        experiment_name="tagifai",
        state_dir=chain["store"]["state_dir"],
        best_args=again,
        metrics=metrics,
        plots=_artifact(HTML, tmp_path, "plots"),
        profile=_artifact(HTML, tmp_path, "profile"),
    )
    assert json.loads(Path(again.path).read_text()) == json.loads(Path(chain["best_args"].path).read_text())
    study = optuna.load_study(study_name=names[0], storage=storage)
    assert len(study.trials) == 2


def test_optimize_over_model_families_is_a_study_of_its_own(chain, tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    best, metrics = _artifact(Artifact, tmp_path, "best"), _artifact(Metrics, tmp_path, "m")
    optimize.python_func(
        dataset=chain["dataset"],
        num_trials=3,
        seed=7,
        study_name="t",
        optuna_storage=storage,
        mlflow_tracking_uri=chain["store"]["mlflow_tracking_uri"],
        experiment_name="tagifai",
        state_dir=chain["store"]["state_dir"],
        best_args=best,
        metrics=metrics,
        plots=_artifact(HTML, tmp_path, "plots"),
        profile=_artifact(HTML, tmp_path, "profile"),
        model_families="logreg,complement_nb",
    )
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name.endswith("-logreg+complement_nb") and best.metadata["study_name"] == summary.study_name
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert {t.params["model"] for t in study.trials} <= {"logreg", "complement_nb"}
    assert json.loads(Path(best.path).read_text())["model"] in ("logreg", "complement_nb")


def test_train_registers_the_model_and_writes_artifacts(chain):
    outs = chain["outs"]
    assert chain["model_uri"] == "models:/tagifai/1"
    assert outs["model"].metadata["model_uri"] == chain["model_uri"]
    assert (Path(outs["model"].path) / "MLmodel").exists()
    # the artifact pins what the logged model pins (MLflow did not infer its own list)
    from tagifai.model import TagifaiModel
    from tagifai.tracking import pip_requirements
    from tagifai.train import TrainArgs

    pins = (Path(outs["model"].path) / "requirements.txt").read_text().split()
    assert pins == pip_requirements(TagifaiModel(TrainArgs())) and any(p.startswith("onnxruntime==") for p in pins)
    m = outs["metrics"].metadata
    assert 0.8 < m["f1"] <= 1 and m["num_samples"] == len(pd.read_parquet(outs["test_data"].path))
    cm = outs["cm"].metadata["confusionMatrix"]
    assert [a["displayName"] for a in cm["annotationSpecs"]] == sorted(
        ["computer-vision", "mlops", "natural-language-processing", "other"]
    )
    assert sum(map(sum, (row["row"] for row in cm["rows"]))) == m["num_samples"]
    assert "slice/short_text/f1" in outs["slices"].metadata and "class/mlops/f1" in outs["slices"].metadata


def test_evaluate_reports_and_promotes_the_first_model(chain):
    from tagifai.tracking import get_champion

    text = Path(chain["report"].path).read_text()
    assert "Behavioral" in text or "behavioral" in text
    assert chain["ev_metrics"].metadata["behavioral_passed"] == chain["ev_metrics"].metadata["behavioral_total"] == 8
    assert chain["ev_metrics"].metadata["promoted"] == 1
    assert chain["ev_metrics"].metadata["outcome"] == 2  # promoted
    assert chain["report"].metadata["outcome"] == "promoted" and "no champion yet" in chain["report"].metadata["reason"]
    assert "## Decision: promoted" in text
    assert get_champion("tagifai", tracking_uri=chain["store"]["mlflow_tracking_uri"])[0] == 1


def test_evaluate_keeps_the_champion_when_the_challenger_is_worse(chain, tmp_path):
    """A deliberately weak model (5 features) is registered as version 2: the alias must not move."""
    from tagifai.registry import Registry
    from tagifai.tracking import get_champion, log_training
    from tagifai.train import TrainArgs
    from tagifai.train import train as train_model

    uri = chain["store"]["mlflow_tracking_uri"]
    weak = train_model(
        pd.read_parquet(chain["dataset"].path),
        TrainArgs(seed=7, max_features=5, analyzer="word", word_ngram_max=0, ngram_max=1),
    )
    info = log_training(
        weak.model,
        weak.args,
        {"test": weak.metrics["test"]},
        registered_model_name="tagifai",
        tracking_uri=uri,
        experiment_name="tagifai",
    )
    report, metrics = _artifact(Markdown, tmp_path, "r"), _artifact(Metrics, tmp_path, "m")
    plots = _artifact(HTML, tmp_path, "plots")
    # A rejected challenger is an outcome, not a failed step: no exception, whichever rule rejected it
    # (a 5-feature model may also fail behavioral tests).
    evaluate.python_func(
        model=_model_artifact(tmp_path, weak.model, info["model_uri"]),
        test_data=chain["outs"]["test_data"],
        mlflow_tracking_uri=uri,
        model_name="tagifai",
        state_dir=chain["store"]["state_dir"],
        approval="auto",
        report=report,
        metrics=metrics,
        plots=plots,
    )
    assert metrics.metadata["promoted"] == 0 and metrics.metadata["outcome"] == 0  # rejected
    assert metrics.metadata["f1"] < chain["outs"]["metrics"].metadata["f1"]
    assert get_champion("tagifai", tracking_uri=uri)[0] == 1
    text = Path(report.path).read_text()
    assert "## Decision: rejected" in text and "champion unchanged" in text
    assert 'class="rejected">rejected<' in _page(plots)
    assert report.metadata["outcome"] == "rejected" and report.metadata["reason"] in text
    assert Registry("tagifai", uri).decision(info["version"]) == "rejected"


def test_evaluate_with_manual_approval_leaves_the_challenger_pending(chain, tmp_path):
    """The champion's own model registered again (same f1, so not worse): manual approval waits."""
    from tagifai.registry import Registry
    from tagifai.tracking import get_champion, load_model, log_training

    uri = chain["store"]["mlflow_tracking_uri"]
    model = load_model(chain["model_uri"], tracking_uri=uri)
    info = log_training(model, None, None, registered_model_name="tagifai", tracking_uri=uri, experiment_name="tagifai")
    report, metrics = _artifact(Markdown, tmp_path, "r"), _artifact(Metrics, tmp_path, "m")
    plots = _artifact(HTML, tmp_path, "plots")
    evaluate.python_func(
        model=_model_artifact(tmp_path, model, info["model_uri"]),
        test_data=chain["outs"]["test_data"],
        mlflow_tracking_uri=uri,
        model_name="tagifai",
        state_dir=chain["store"]["state_dir"],
        approval="manual",
        report=report,
        metrics=metrics,
        plots=plots,
    )
    assert metrics.metadata["promoted"] == 0 and metrics.metadata["outcome"] == 1  # pending-approval
    assert get_champion("tagifai", tracking_uri=uri)[0] == 1
    registry = Registry("tagifai", uri)
    assert registry.alias_version("challenger") == info["version"]
    assert registry.decision(info["version"]) == "pending-approval"
    assert f"tagifai models approve {info['version']}" in Path(report.path).read_text()


def test_train_records_the_dataset_on_its_mlflow_run(chain):
    """The chain's Dataset carries only ``content_hash`` ("abc"): the run's input, tags and artifacts say so."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = chain["store"]["mlflow_tracking_uri"]
    run = MlflowClient(uri).get_run(chain["outs"]["model"].metadata["run_id"])
    (data_input,) = run.inputs.dataset_inputs
    assert data_input.dataset.digest == "abc" and data_input.dataset.name == "training_data"
    assert {t.key: t.value for t in data_input.tags}["mlflow.data.context"] == "training"
    frame = pd.read_parquet(chain["dataset"].path)
    assert run.data.tags["data_content_hash"] == run.data.tags["dataset_hash"] == "abc"
    assert run.data.tags["data_created_on_max"] == frame["created_on"].max().isoformat()
    assert run.data.tags["data_policy"] == "full"
    reference = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/reference_predictions.json")
    assert (
        len(reference["predicted"]) == len(reference["confidence"]) == chain["outs"]["metrics"].metadata["num_samples"]
    )


@pytest.fixture
def curated(tmp_path, _labeled_projects):
    """A DuckDB warehouse with main.labeled_projects (the 764 labeled projects)."""
    import duckdb

    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", _labeled_projects)
        con.execute("CREATE TABLE main.labeled_projects AS SELECT * FROM frame")
    return f"duckdb:///{path}"


def test_extract_composes_the_window_and_train_logs_it(curated, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from components.extract import extract

    dataset = _artifact(Dataset, tmp_path, "dataset")
    extract.python_func(
        warehouse=curated,
        table="labeled_projects",
        dataset=dataset,
        training_data="window",
        window_days=60.0,
        replay_share=0.3,
        replay_min_per_class=10,
        seed=3,
    )
    composition = dataset.metadata["composition"]
    written = pd.read_parquet(dataset.path)
    assert composition["policy"] == "window" and composition["window_days"] == 60.0 and composition["seed"] == 3
    assert dataset.metadata["rows"] == composition["rows"] == len(written) == 117 + composition["replay_rows"]
    assert dataset.metadata["content_hash"] == composition["content_hash"]
    assert composition["replay_rows"] >= round(0.3 * 117) and composition["older_rows"] == 764 - 117
    json.dumps(dataset.metadata)

    # Unset parameters (empty, zero, negative) are the settings' values.
    monkeypatch.setenv("TAGIFAI_TRAINING_DATA", "window")
    monkeypatch.setenv("TAGIFAI_REPLAY_SHARE", "0.5")
    from_settings = _artifact(Dataset, tmp_path, "from_settings")
    extract.python_func(warehouse=curated, table="labeled_projects", dataset=from_settings)
    c = from_settings.metadata["composition"]
    assert (c["policy"], c["window_days"], c["replay_share"], c["replay_min_per_class"]) == ("window", 90.0, 0.5, 10)
    monkeypatch.delenv("TAGIFAI_TRAINING_DATA")
    full = _artifact(Dataset, tmp_path, "full")
    extract.python_func(warehouse=curated, table="labeled_projects", dataset=full)
    assert full.metadata["composition"]["policy"] == "full" and full.metadata["rows"] == 764
    with pytest.raises(ValueError, match="training_data"):
        extract.python_func(
            warehouse=curated, table="labeled_projects", dataset=_artifact(Dataset, tmp_path, "x"), training_data="all"
        )

    # The train step logs what extract composed.
    best_args = _artifact(Artifact, tmp_path, "best_args")
    Path(best_args.path).write_text(
        json.dumps({"embedding": "none", "analyzer": "word", "ngram_max": 1, "threshold_strategy": "val_grid"})
    )
    outs = {
        n: _artifact(c, tmp_path, n)
        for n, c in (
            ("model", Model),
            ("metrics", Metrics),
            ("cm", ClassificationMetrics),
            ("slices", Metrics),
            ("test_data", Dataset),
        )
    }
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train.python_func(
        dataset=dataset,
        best_args=best_args,
        seed=7,
        mlflow_tracking_uri=uri,
        experiment_name="window",
        model_name="window",
        state_dir=str(tmp_path),
        model=outs["model"],
        metrics=outs["metrics"],
        confusion_matrix=outs["cm"],
        slice_metrics=outs["slices"],
        test_data=outs["test_data"],
    )
    client = MlflowClient(uri)
    run = client.get_run(outs["model"].metadata["run_id"])
    (data_input,) = run.inputs.dataset_inputs
    assert data_input.dataset.name == "labeled_projects"
    assert data_input.dataset.digest == dataset.metadata["content_hash"][:36]
    assert run.data.tags["data_policy"] == "window"
    assert run.data.tags["data_content_hash"] == dataset.metadata["content_hash"]
    assert (
        run.data.tags["data_created_on_max"]
        == dataset.metadata["created_on_max"]
        == written["created_on"].max().isoformat()
    )
    assert {"data_composition.json", "reference_predictions.json"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }


def test_fanned_out_workers_share_one_study_and_optimize_only_chooses(chain, tmp_path):
    """Part 4 of issue 13: N optimize_worker tasks fill one study in the shared storage up to num_trials
    (together, whoever runs which trial), each with its own sampler seed; optimize after them runs no
    trial and chooses from the study they filled."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    common = {
        "dataset": chain["dataset"],
        "num_trials": 3,
        "seed": 7,
        "study_name": "fan",
        "optuna_storage": storage,
        "mlflow_tracking_uri": chain["store"]["mlflow_tracking_uri"],
        "experiment_name": "tagifai",
        "state_dir": chain["store"]["state_dir"],
    }
    ran = []
    for worker in (0, 1):
        metrics = _artifact(Metrics, tmp_path, f"worker-{worker}")
        optimize_worker.python_func(worker=worker, metrics=metrics, **common)
        assert metrics.metadata["worker"] == worker
        ran.append(metrics.metadata["new_trials"])
    assert ran == [3, 0]  # one after another (as kfp.local runs them): the second found the study full
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name.startswith("fan-") and summary.n_trials == 3
    best, metrics = _artifact(Artifact, tmp_path, "best"), _artifact(Metrics, tmp_path, "m")
    optimize.python_func(
        best_args=best,
        metrics=metrics,
        plots=_artifact(HTML, tmp_path, "plots"),
        profile=_artifact(HTML, tmp_path, "profile"),
        **common,
    )
    assert metrics.metadata["new_trials"] == 0 and best.metadata["study_name"] == summary.study_name
    assert json.loads(Path(best.path).read_text())["seed"] == 7
    assert len(optuna.load_study(study_name=summary.study_name, storage=storage).trials) == 3


def test_workers_draw_from_their_own_sampler_seed(tmp_path, _labeled_projects):
    """Two workers with the same data but different worker numbers propose different first trials."""
    import optuna

    from tagifai.workflows import tune

    df = _labeled_projects
    firsts = []
    for worker in (0, 1):
        storage = f"sqlite:///{tmp_path / f'w{worker}.db'}"
        optuna.create_study(storage=storage, study_name="probe")  # not the tuned study: only its storage
        _, _, summary = tune(df, 2, storage, "s", 7, sampler_seed=7 + 7919 * worker)
        firsts.append(summary["trials"][-1]["params"])
    assert firsts[0] != firsts[1]
