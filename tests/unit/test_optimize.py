"""tagifai.optimize: a real Optuna study on sqlite in tmp_path, with MLflow child runs."""

from __future__ import annotations

import contextlib
import json

import optuna
import pytest

from tagifai import optimize as optimize_mod
from tagifai.data import prepare, split
from tagifai.model import TagifaiModel, TrainArgs
from tagifai.optimize import SEARCH_SPACE, optimize, params_to_args, suggest_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


def assert_in_space(args: TrainArgs) -> None:
    s = SEARCH_SPACE
    assert args.analyzer in s["analyzer"]
    if args.analyzer == "word":
        assert s["ngram_max_word"][0] <= args.ngram_max <= s["ngram_max_word"][1]
    else:
        assert s["ngram_min_char"][0] <= args.ngram_min <= s["ngram_min_char"][1]
        assert s["ngram_max_char"][0] <= args.ngram_max <= s["ngram_max_char"][1]
        assert s["word_ngram_max"][0] <= args.word_ngram_max <= s["word_ngram_max"][1]
    assert args.loss in s["loss"] and args.class_weight in s["class_weight"]
    assert s["alpha"][0] <= args.alpha <= s["alpha"][1]
    assert s["learning_rate"][0] <= args.learning_rate <= s["learning_rate"][1]
    assert s["power_t"][0] <= args.power_t <= s["power_t"][1]
    assert s["C"][0] <= args.C <= s["C"][1]
    assert args.embedding in s["embedding"]
    assert s["embedding_weight"][0] <= args.embedding_weight <= s["embedding_weight"][1]


@pytest.fixture(scope="module")
def study(tmp_path_factory, _labeled_projects):
    """4 trials, 3 folds, pruning after 2 startup trials, logged to MLflow; restored afterwards."""
    import mlflow

    from tagifai import tracking

    tmp = tmp_path_factory.mktemp("optimize")
    storage = f"sqlite:///{tmp / 'optuna.db'}"
    kwargs = dict(storage=storage, study_name="unit", seed=0, cv_folds=3, pruner_startup_trials=2)
    try:
        best_args, best_value, summary = optimize(
            _labeled_projects,
            num_trials=4,
            experiment_name="optimize-test",
            tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
            artifact_root=tmp / "artifacts",
            **kwargs,
        )
        yield {"tmp": tmp, "kwargs": kwargs, "best_args": best_args, "best_value": best_value, "summary": summary}
    finally:
        tracking._state.clear()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def test_optimize_returns_args_in_the_search_space(study):
    summary = study["summary"]
    assert isinstance(study["best_args"], TrainArgs)
    assert_in_space(study["best_args"])
    assert 0.7 < study["best_value"] <= 1.0
    assert summary["n_trials"] == 4 and summary["new_trials"] == 4
    # The returned args are the chosen trial's: the best one, or the base arguments when the best
    # does not beat them by the margin.
    chosen = summary["chosen"]
    assert chosen["value"] == study["best_value"] and chosen["value"] <= summary["best_value"]
    assert params_to_args(TrainArgs(), chosen["params"]) == study["best_args"]
    assert chosen["trial"] in (summary["best_trial"], 0) and chosen["kept_base"] == (chosen["trial"] == 0)
    # The first trial of a new study is the base arguments themselves.
    assert params_to_args(TrainArgs(), summary["trials"][0]["params"]) == TrainArgs()
    json.dumps(summary)


def test_pruning_happens(study):
    trials = study["summary"]["trials"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert study["summary"]["n_pruned"] == len(pruned) >= 1
    for t in pruned:
        assert len(t["intermediate"]) < 3  # stopped before the last fold
    for t in trials:
        if t["state"] == "COMPLETE":
            assert len(t["intermediate"]) == 3


def test_rerun_is_idempotent_and_resumes(study, _labeled_projects):
    best_args, best_value, summary = optimize(_labeled_projects, num_trials=4, **study["kwargs"])
    assert summary["new_trials"] == 0 and summary["n_trials"] == 4
    assert (best_args, best_value) == (study["best_args"], study["best_value"])
    _, _, more = optimize(_labeled_projects, num_trials=5, **study["kwargs"])
    assert more["new_trials"] == 1 and more["n_trials"] == 5
    assert [t["params"] for t in more["trials"][:4]] == [t["params"] for t in summary["trials"]]


def test_trials_are_child_mlflow_runs(study):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{study['tmp'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optimize-test")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.info.run_name == "optimize-unit"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 4
    states = sorted(r.data.tags["state"] for r in children)
    assert states.count("PRUNED") == study["summary"]["n_pruned"]
    assert all("val_f1" in r.data.metrics and "analyzer" in r.data.params for r in children)
    assert parents[0].data.metrics["best_val_f1"] == pytest.approx(study["summary"]["best_value"])
    assert parents[0].data.metrics["chosen_val_f1"] == pytest.approx(study["best_value"])
    assert parents[0].data.tags["chosen_trial"] == str(study["summary"]["chosen"]["trial"])


def test_same_seed_same_trials(_labeled_projects):
    df = _labeled_projects.sample(300, random_state=0)
    runs = [optimize(df, num_trials=3, seed=11, cv_folds=2, study_name="mem")[2] for _ in range(2)]
    assert [t["params"] for t in runs[0]["trials"]] == [t["params"] for t in runs[1]["trials"]]
    assert [t["value"] for t in runs[0]["trials"]] == [t["value"] for t in runs[1]["trials"]]


def test_optuna_never_sees_the_test_split(_labeled_projects, monkeypatch):
    seen: set = set()

    class Spy(TagifaiModel):
        def fit(self, X, y):
            seen.update(X["id"])
            return super().fit(X, y)

        def predict_proba(self, X):
            seen.update(X["id"])
            return super().predict_proba(X)

    handed: list = []  # what each pool's workers inherit (they fit in other processes: no spy there)

    class SpyPool(optimize_mod.FoldPool):
        def __init__(self, state, *args, **kwargs):
            handed.append(state)
            super().__init__(state, *args, **kwargs)

    monkeypatch.setattr(optimize_mod, "TagifaiModel", Spy)
    monkeypatch.setattr(optimize_mod, "FoldPool", SpyPool)
    base = TrainArgs(seed=3)
    test_ids = set(split(prepare(_labeled_projects), base.val_size, base.test_size, base.seed).test["id"])
    optimize(_labeled_projects, num_trials=1, cv_folds=2, base_args=base, study_name="spy", cv_workers=1)
    assert seen and not seen & test_ids
    assert len(seen) == len(_labeled_projects) - len(test_ids)
    optimize(_labeled_projects, num_trials=1, cv_folds=2, base_args=base, study_name="spy2", cv_workers=2)
    pooled = set(handed[-1]["dev"]["id"])
    assert pooled == seen and not pooled & test_ids


def test_suggest_params_fixed_trial():
    trial = optuna.trial.FixedTrial(
        {
            "analyzer": "char",
            "ngram_min": 1,
            "ngram_max_char": 5,
            "word_ngram_max": 0,
            "sublinear_tf": False,
            "class_weight": None,
            "loss": "log_loss",
            "alpha": 1e-5,
            "learning_rate": 0.5,
            "power_t": 0.2,
            "embedding": "minilm",
            "embedding_weight": 1.5,
        }
    )
    sgd = TrainArgs(model="sgd")
    args = params_to_args(sgd, suggest_params(trial, sgd))
    assert (args.analyzer, args.ngram_min, args.ngram_max, args.word_ngram_max) == ("char", 1, 5, 0)
    assert args.class_weight is None and args.loss == "log_loss" and args.power_t == 0.2
    assert (args.embedding, args.embedding_weight) == ("minilm", 1.5)
    assert_in_space(args)
    logreg = suggest_params(
        optuna.trial.FixedTrial(
            {
                "analyzer": "word",
                "ngram_max": 2,
                "sublinear_tf": True,
                "class_weight": "balanced",
                "C": 3.0,
                "embedding": "none",
            }
        ),
        TrainArgs(model="logreg"),
    )
    assert logreg == {
        "analyzer": "word",
        "ngram_max": 2,
        "sublinear_tf": True,
        "class_weight": "balanced",
        "C": 3.0,
        "embedding": "none",
    }
    nb = suggest_params(
        optuna.trial.FixedTrial(
            {"analyzer": "word", "ngram_max": 1, "sublinear_tf": True, "class_weight": None, "nb_alpha": 0.1}
        ),
        TrainArgs(model="complement_nb", embedding="none"),
    )
    assert "embedding" not in nb  # complement NB needs non-negative features: TF-IDF only
    # The defaults (the first trial of every new study) are inside the search space.
    default = TrainArgs()
    assert params_to_args(default, optimize_mod._trial_params_of(default)) == default
    assert optimize_mod._in_space(optimize_mod._trial_params_of(default))


def test_model_families_parse_and_reject_unknown_names():
    base = TrainArgs()
    assert optimize_mod.model_families(None, base) == ("linear_svc",)
    assert optimize_mod.model_families("", base) == ("linear_svc",)
    assert optimize_mod.model_families(" logreg, sgd ,logreg", base) == ("logreg", "sgd")
    assert optimize_mod.model_families(["sgd"], base) == ("sgd",)
    with pytest.raises(ValueError, match=r"unknown model family 'xgboost'; expected some of sgd, logreg"):
        optimize_mod.model_families("logreg,xgboost", base)


def test_suggest_params_samples_the_family_and_its_own_parameters():
    families = ("linear_svc", "logreg", "sgd", "complement_nb")
    common = {"analyzer": "word", "ngram_max": 1, "sublinear_tf": True, "class_weight": "balanced"}
    base = TrainArgs()
    nb = suggest_params(optuna.trial.FixedTrial({"model": "complement_nb", **common, "nb_alpha": 0.2}), base, families)
    assert nb == {"model": "complement_nb", **common, "nb_alpha": 0.2}
    # complement NB has no embedding parameter; its args drop the default embedding and validate.
    args = params_to_args(base, nb)
    assert (args.model, args.embedding, args.nb_alpha) == ("complement_nb", "none", 0.2)
    sgd = suggest_params(
        optuna.trial.FixedTrial(
            {
                "model": "sgd",
                **common,
                "loss": "hinge",
                "alpha": 1e-4,
                "learning_rate": 0.1,
                "power_t": 0.1,
                "embedding": "none",
            }
        ),
        base,
        families,
    )
    assert sgd["model"] == "sgd" and "C" not in sgd and params_to_args(base, sgd).loss == "hinge"
    # With one family there is no "model" parameter: studies made before keep their space.
    assert "model" not in suggest_params(optuna.trial.FixedTrial({**common, "C": 1.0, "embedding": "none"}), base)
    # The defaults, the first trial of a study over several families, are in that space.
    first = optimize_mod._trial_params_of(base, families)
    assert first["model"] == "linear_svc" and optimize_mod._in_space(first, families)
    assert not optimize_mod._in_space(first, ("logreg", "sgd"))


def test_a_study_over_several_families(_labeled_projects):
    families = ("linear_svc", "logreg", "complement_nb")
    best, value, summary = optimize(
        _labeled_projects,
        num_trials=5,
        cv_folds=2,
        seed=1,
        study_name="families",
        pruner_startup_trials=10,
        models=",".join(families),
    )
    assert summary["model_families"] == list(families)
    sampled = [t["params"]["model"] for t in summary["trials"]]
    assert sampled[0] == "linear_svc" and set(sampled) <= set(families) and len(set(sampled)) > 1
    assert best.model in families and best.model == summary["chosen"]["params"]["model"]
    assert 0.5 < value <= 1.0
    # The chosen trial's args are what it ran: a TrainArgs that validates, its family's parameters applied.
    assert params_to_args(TrainArgs(seed=42), summary["chosen"]["params"]) == best
    assert params_to_args(TrainArgs(seed=42), summary["best_params"]).model in families


def test_study_names_follow_the_data_and_the_families(_labeled_projects):
    from tagifai.workflows import study_name_for

    plain = study_name_for("tagifai", _labeled_projects)
    assert plain.startswith("tagifai-") and study_name_for("tagifai", _labeled_projects, "") == plain
    assert study_name_for("tagifai", _labeled_projects, "logreg, sgd,logreg") == plain + "-logreg+sgd"
    assert study_name_for("tagifai", _labeled_projects.head(100)) != plain


def _running_means(folds):
    return {i: sum(folds[: i + 1]) / (i + 1) for i in range(len(folds))}


def test_fold_scores_undo_the_running_mean():
    folds = [0.90, 0.94, 0.92, 0.96]
    running = _running_means(folds)
    assert optimize_mod.fold_scores(running) == pytest.approx(folds)
    assert optimize_mod.fold_scores({"1": running[1], "0": running[0]}) == pytest.approx(folds[:2])


def _trial(number, params, folds, state="COMPLETE"):
    return {
        "number": number,
        "state": state,
        "params": params,
        "value": sum(folds) / len(folds),
        "intermediate": _running_means(folds),
    }


def test_choose_trial_keeps_the_base_unless_the_best_wins_by_the_margin():
    base, other = {"C": 0.5}, {"C": 8.0}
    base_folds = [0.90, 0.92, 0.94, 0.91, 0.93]

    def summary(best_folds):
        trials = [_trial(0, base, base_folds), _trial(1, other, best_folds)]
        best = max(trials, key=lambda t: t["value"])
        return {"trials": trials, "best_trial": best["number"]}

    # Ahead on average but not on every fold: within one standard error, so the base stays.
    noisy = summary([0.93, 0.90, 0.95, 0.90, 0.94])
    kept = optimize_mod.choose_trial(noisy, base, margin_se=1.0)
    assert kept["kept_base"] and kept["trial"] == 0 and kept["params"] == base
    assert kept["delta"] == pytest.approx(0.004) and "not more than 1 standard error" in kept["reason"]
    # margin 0: the best trial, whatever the margin.
    assert optimize_mod.choose_trial(noisy, base, margin_se=0)["trial"] == 1
    # Ahead on every fold by about the same: far more than two standard errors.
    clear = optimize_mod.choose_trial(summary([f + 0.02 + 0.001 * i for i, f in enumerate(base_folds)]), base, 2.0)
    assert not clear["kept_base"] and clear["trial"] == 1 and clear["delta"] > 2 * clear["se"]
    # The base is the best trial; or there is no trial of the base to compare with.
    assert optimize_mod.choose_trial(summary([0.8] * 5), base, 2.0)["kept_base"]
    alone = {"trials": [_trial(1, other, base_folds)], "best_trial": 1}
    assert optimize_mod.choose_trial(alone, base, 2.0)["trial"] == 1


class _Recorder:
    """A Tracker that records its calls."""

    def __init__(self):
        self.calls: list[tuple] = []

    def run(self, name, nested=None):
        self.calls.append(("run", name, nested))
        return contextlib.nullcontext()

    def set_tags(self, tags):
        self.calls.append(("tags", dict(tags)))

    def log_params(self, params):
        self.calls.append(("params", dict(params)))

    def log_metric(self, key, value, step=None):
        self.calls.append(("metric", key, value, step))

    def log_dict(self, value, artifact_file):
        self.calls.append(("dict", artifact_file))


def test_objective_scores_the_folds_and_logs_to_its_tracker(_labeled_projects):
    base = TrainArgs(embedding="none", seed=3)
    dev, folds = optimize_mod.dev_folds(_labeled_projects.sample(300, random_state=0), base, cv_folds=2)
    assert len(folds) == 2 and sum(len(held) for _, held in folds) == len(dev)
    tracker = _Recorder()
    objective = optimize_mod.Objective(dev, folds, base, ("linear_svc",), "unit", tracker)
    params = {
        "analyzer": "word",
        "ngram_max": 1,
        "sublinear_tf": True,
        "class_weight": None,
        "C": 1.0,
        "embedding": "none",
    }
    value = objective(optuna.trial.FixedTrial(params, number=7))
    metrics = [c for c in tracker.calls if c[0] == "metric"]
    assert [(c[1], c[3]) for c in metrics] == [("val_f1", 0), ("val_f1", 1)]
    assert value == pytest.approx(metrics[-1][2]) and 0.5 < value <= 1.0
    assert tracker.calls[0] == ("run", "unit-trial-7", True)
    assert tracker.calls[1] == ("tags", {"optuna_study": "unit", "optuna_trial": "7"})
    assert tracker.calls[2] == ("params", {k: str(v) for k, v in params.items()})
    assert tracker.calls[-1] == ("tags", {"state": "COMPLETE"})
    # Without a tracker, the same score and nothing logged anywhere.
    assert optimize_mod.Objective(dev, folds, base, ("linear_svc",), "unit")(optuna.trial.FixedTrial(params)) == value


def test_warm_encodes_every_dev_text_in_a_thread_and_leaves_failures_to_the_trial(_labeled_projects, monkeypatch):
    from tagifai.embeddings import DIM
    from tagifai.model import to_inputs

    base = TrainArgs()
    dev, folds = optimize_mod.dev_folds(_labeled_projects, base, 3)
    objective = optimize_mod.Objective(dev, folds, base, ("linear_svc",), "warm")
    objective.warm().join()
    embedder = objective.embedders["minilm"]
    assert embedder.encode(to_inputs(dev)[1]).shape == (len(dev), DIM)

    plain = optimize_mod.Objective(dev, folds, base.replace(embedding="none"), ("linear_svc",), "warm")
    plain.warm().join()
    assert not plain.embedders

    def broken(args):
        raise RuntimeError("no encoder here")

    monkeypatch.setattr(optimize_mod, "make_embedder", broken)
    failing = optimize_mod.Objective(dev, folds, base, ("linear_svc",), "warm")
    failing.warm().join()  # nothing raised in the thread
    assert not failing.embedders
    with pytest.raises(RuntimeError, match="no encoder here"):
        failing.embedder_for(base)
