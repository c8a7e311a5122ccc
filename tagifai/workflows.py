"""The MLOps steps as plain functions: what the optimize, train and evaluate components call.

Each takes plain values (dataframes, dicts, URIs) and returns plain values, so every decision (study
naming, what is logged, when the champion moves) is tested in-process; the components only turn the
results into KFP artifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


def study_name_for(base: str, df: pd.DataFrame, model_families: str = "") -> str:
    """One Optuna study per dataset content and search space: re-running on the same data resumes (no
    new trials), new data starts a new study instead of mixing scores measured on different data. A
    search over several model families (``model_families``, comma-separated) is a study of its own,
    named after them; the default (the default family only) keeps the plain name."""
    from tagifai.extract import content_hash
    from tagifai.optimize import model_families as parse_families
    from tagifai.train import TrainArgs

    name = f"{base}-{content_hash(df)[:12]}"
    if not model_families.replace(",", "").strip():
        return name
    return f"{name}-{'+'.join(parse_families(model_families, TrainArgs()))}"


def tune(
    df: pd.DataFrame,
    num_trials: int,
    storage: str,
    study_name: str,
    seed: int,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    artifact_root: str | None = None,
    model_families: str = "",
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Run (or resume) the Optuna study; returns (best args as a dict, best validation f1, summary).

    ``model_families``: comma-separated model families to search (e.g. "linear_svc,logreg,sgd"); empty
    searches the default family's parameters only."""
    from tagifai.optimize import optimize
    from tagifai.train import TrainArgs

    best, value, summary = optimize(
        df,
        num_trials=num_trials,
        storage=storage,
        study_name=study_name_for(study_name, df, model_families),
        seed=seed,
        base_args=TrainArgs(seed=seed),
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        artifact_root=artifact_root,
        models=model_families,
    )
    return best.to_dict(), float(value), summary


@dataclass
class TrainOutcome:
    model_uri: str
    version: int | None
    run_id: str
    threshold: float
    classes: list[str]
    test: dict[str, Any]  # overall, per_class, slices, confusion_matrix
    val: dict[str, Any] | None
    test_data: pd.DataFrame
    seconds: float
    args: dict[str, Any] = field(default_factory=dict)
    model: Any = None


def train_and_register(
    df: pd.DataFrame,
    args: dict[str, Any] | None,
    seed: int,
    model_name: str,
    tracking_uri: str,
    experiment_name: str,
    artifact_root: str | None = None,
    dataset_hash: str | None = None,
) -> TrainOutcome:
    """Train with ``args`` (the best of the study, or the defaults), score the test split, log the run
    to MLflow and register the model as a new version of ``model_name``."""
    from tagifai.evaluate import evaluate_model
    from tagifai.tracking import log_training
    from tagifai.train import TrainArgs, train

    train_args = TrainArgs.from_dict(args) if args else TrainArgs()
    train_args = train_args.replace(seed=seed)
    result = train(df, train_args)
    test = evaluate_model(result.model, result.splits.test)
    info = log_training(
        result.model,
        train_args,
        metrics={
            "test": test["overall"],
            "val": result.metrics.get("val"),
            "test_class": test["per_class"],
            "test_slice": test["slices"],
        },
        registered_model_name=model_name,
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        artifact_root=artifact_root,
        tags={"dataset_hash": dataset_hash or "", "pipeline_step": "train"},
        artifacts={"evaluation.json": test},
    )
    return TrainOutcome(
        model_uri=info["model_uri"],
        version=info["version"],
        run_id=info["run_id"],
        threshold=result.threshold,
        classes=result.classes,
        test=test,
        val=result.metrics.get("val"),
        test_data=result.splits.test,
        seconds=result.seconds,
        args=train_args.to_dict(),
        model=result.model,
    )


@dataclass
class EvaluationOutcome:
    model_uri: str
    metrics: dict[str, Any]
    behavioral: list[dict[str, Any]]
    champion_before: dict[str, Any] | None
    promoted: bool
    report: str

    @property
    def behavioral_passed(self) -> bool:
        return all(r["passed"] for r in self.behavioral)


def evaluate_and_promote(
    model_uri: str,
    test_data: pd.DataFrame,
    model_name: str,
    tracking_uri: str,
    promote: bool = True,
) -> EvaluationOutcome:
    """Score a registered model on held-out data, run the behavioral tests, compare with the current
    champion on the same data and move the ``champion`` alias when the challenger is not worse.

    The champion never moves when a behavioral test fails. Raise-on-failure is the caller's choice
    (:func:`tagifai.evaluate.check_behavioral_tests`).
    """
    from tagifai.evaluate import evaluate_model, report_markdown, run_behavioral_tests
    from tagifai.tracking import champion_uri, get_champion, load_model, set_champion

    model = load_model(model_uri, tracking_uri=tracking_uri)
    metrics = evaluate_model(model, test_data)
    behavioral = run_behavioral_tests(model)
    champion = get_champion(model_name, tracking_uri=tracking_uri)
    champion_before = None
    if champion is not None:
        version, _ = champion
        champion_model = load_model(champion_uri(model_name), tracking_uri=tracking_uri)
        champion_before = {"version": version, "f1": evaluate_model(champion_model, test_data)["overall"]["f1"]}
    version = model_uri.rsplit("/", 1)[-1]
    better = champion_before is None or metrics["overall"]["f1"] >= champion_before["f1"]
    promoted = bool(promote and better and all(r["passed"] for r in behavioral) and version.isdigit())
    if promoted:
        set_champion(model_name, version, tracking_uri=tracking_uri)
    report = report_markdown(metrics, behavioral, title=f"Evaluation of {model_uri}")
    if champion_before is None:
        decision = "no champion yet"
    else:
        decision = f"champion v{champion_before['version']} f1 {champion_before['f1']:.4f} on the same data"
    report += f"\n\n## Champion\n\n{decision}; challenger f1 {metrics['overall']['f1']:.4f}: " + (
        f"`{model_name}@champion` now points at version {version}.\n" if promoted else "champion unchanged.\n"
    )
    return EvaluationOutcome(model_uri, metrics, behavioral, champion_before, promoted, report)


def write_json(path: str | Path, value: Any) -> None:
    Path(path).write_text(json.dumps(value, indent=2, sort_keys=True, default=str), encoding="utf-8")
