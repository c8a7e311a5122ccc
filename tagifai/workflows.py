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
    sampler_seed: int | None = None,
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Run (or resume) the Optuna study; returns (best args as a dict, best validation f1, summary).

    ``model_families``: comma-separated model families to search (e.g. "linear_svc,logreg,sgd"); empty
    searches the default family's parameters only. ``seed`` fixes the splits and folds; the sampler's
    seed is ``sampler_seed`` when given (each worker of a fanned-out study its own), else ``seed``."""
    from tagifai.optimize import optimize
    from tagifai.train import TrainArgs

    best, value, summary = optimize(
        df,
        num_trials=num_trials,
        storage=storage,
        study_name=study_name_for(study_name, df, model_families),
        seed=seed if sampler_seed is None else sampler_seed,
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


def reference_predictions(model: Any, df: pd.DataFrame) -> dict[str, list]:
    """``{"predicted": [label, ...], "confidence": [float, ...]}`` of ``model`` on ``df``: the labels after
    the model's threshold and the highest class probability of each row (the champion's reference for
    the drift step)."""
    from tagifai.predict import predict, prob_column

    if not len(df):
        return {"predicted": [], "confidence": []}
    out = predict(model, df)
    proba = out[[prob_column(str(c)) for c in model.classes_]].to_numpy(dtype=float)
    return {"predicted": [str(p) for p in out["predicted_tag"]], "confidence": proba.max(axis=1).round(6).tolist()}


def training_data_tags(df: pd.DataFrame, dataset_meta: dict[str, Any] | None, dataset_hash: str | None = None) -> dict:
    """What a training run records of its data: ``{"table", "content_hash", "created_on_max", "policy",
    "composition"}``, from the Dataset's metadata where it says (``table``, ``content_hash``,
    ``composition``) and from ``df`` otherwise. ``created_on_max`` is the newest ``created_on`` of ``df``
    (ISO; the metadata's when ``df`` has no such column, else ""). Without a composition in the metadata
    the frame counts as the ``full`` composition of itself."""
    from tagifai.compose import compose, content_hash

    meta = dict(dataset_meta or {})
    composition = meta.get("composition")
    if not isinstance(composition, dict):
        composition = compose(df)[1]
    data_hash = dataset_hash or meta.get("content_hash") or composition.get("content_hash") or content_hash(df)
    newest = pd.to_datetime(df["created_on"]).max() if "created_on" in df.columns and len(df) else None
    created_on_max = newest.isoformat() if newest is not None and pd.notna(newest) else meta.get("created_on_max", "")
    return {
        "table": str(meta.get("table") or "training_data"),
        "content_hash": str(data_hash),
        "created_on_max": str(created_on_max or ""),
        "policy": str(composition.get("policy", "full")),
        "composition": composition,
    }


def train_and_register(
    df: pd.DataFrame,
    args: dict[str, Any] | None,
    seed: int,
    model_name: str,
    tracking_uri: str,
    experiment_name: str,
    artifact_root: str | None = None,
    dataset_hash: str | None = None,
    dataset_meta: dict[str, Any] | None = None,
) -> TrainOutcome:
    """Train with ``args`` (the best of the study, or the defaults), score the test split, log the run
    to MLflow and register the model as a new version of ``model_name``.

    ``dataset_meta`` is the metadata of the Dataset artifact ``df`` was read from (``table``,
    ``content_hash``, ``composition``; :func:`training_data_tags`). The run records its data:

    - the dataset input (context ``training``): ``df`` named after the table, digest the content hash;
    - tags ``dataset_hash`` and ``data_content_hash`` (the content hash: ``dataset_hash`` when given,
      else the metadata's, else computed), ``data_created_on_max`` (ISO, the newest row of ``df``: the
      drift step's training watermark), ``data_policy`` (``full`` or ``window``);
    - artifacts ``data_composition.json`` (the composition), ``evaluation.json`` (the test scores) and
      ``reference_predictions.json`` (:func:`reference_predictions` on the held-out test split).
    """
    from tagifai.evaluate import evaluate_model
    from tagifai.tracking import log_training
    from tagifai.train import TrainArgs, train

    train_args = TrainArgs.from_dict(args) if args else TrainArgs()
    train_args = train_args.replace(seed=seed)
    data = training_data_tags(df, dataset_meta, dataset_hash)
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
        tags={
            "dataset_hash": data["content_hash"],
            "data_content_hash": data["content_hash"],
            "data_created_on_max": data["created_on_max"],
            "data_policy": data["policy"],
            "pipeline_step": "train",
        },
        artifacts={
            "evaluation.json": test,
            "data_composition.json": data["composition"],
            "reference_predictions.json": reference_predictions(result.model, result.splits.test),
        },
        inputs=[(df, data["table"], data["content_hash"], "training")],
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


#: Outcome of the evaluate step -> the number its Metrics log as ``outcome`` (how far the challenger got).
OUTCOME_CODES = {"rejected": 0, "pending-approval": 1, "promoted": 2}
#: How much the challenger's f1 must exceed the champion's (same rows) to be promoted or proposed
#: (TAGIFAI_PROMOTION_MARGIN; 0: at least as good).
DEFAULT_MARGIN = 0.0


@dataclass
class EvaluationOutcome:
    model_uri: str
    metrics: dict[str, Any]
    behavioral: list[dict[str, Any]]
    champion_before: dict[str, Any] | None
    promoted: bool
    report: str
    outcome: str = "rejected"  # promoted | pending-approval | rejected
    reason: str = ""

    @property
    def behavioral_passed(self) -> bool:
        return all(r["passed"] for r in self.behavioral)

    @property
    def outcome_code(self) -> int:
        return OUTCOME_CODES[self.outcome]


def decide(
    f1: float,
    behavioral: list[dict[str, Any]],
    champion_f1: float | None,
    approval: str = "auto",
    margin: float = DEFAULT_MARGIN,
    champion_version: int | None = None,
) -> tuple[str, str]:
    """``(outcome, reason)`` for a challenger: ``rejected`` when a behavioral test failed or its f1 does not
    reach the champion's plus ``margin`` on the same rows; else ``promoted`` (``auto``) or
    ``pending-approval`` (``manual``). No champion yet: nothing to beat."""
    if approval not in ("auto", "manual"):
        raise ValueError(f"approval: expected auto or manual, got {approval!r}")
    failed = [r["name"] for r in behavioral if not r["passed"]]
    if failed:
        return "rejected", f"{len(failed)} behavioral test(s) failed: {', '.join(failed)}"
    if champion_f1 is None:
        versus = "no champion yet"
    elif margin < 0:
        raise ValueError(f"margin must be >= 0, not {margin}")
    elif f1 < champion_f1 + margin:
        better = "better than" if margin else "as good as"
        return "rejected", (
            f"f1 {f1:.4f} is not {f'{margin:g} ' if margin else ''}{better} the champion's (v{champion_version}) "
            f"{champion_f1:.4f} on the same rows"
        )
    else:
        versus = f"f1 {f1:.4f} vs champion v{champion_version} {champion_f1:.4f} on the same rows (margin {margin:g})"
    if approval == "manual":
        return "pending-approval", f"{versus}; every behavioral test passed; manual approval: waiting for a person"
    return "promoted", f"{versus}; every behavioral test passed"


def evaluate_and_promote(
    model_uri: str,
    test_data: pd.DataFrame,
    model_name: str,
    tracking_uri: str,
    promote: bool = True,
    approval: str = "auto",
    margin: float = DEFAULT_MARGIN,
    model_path: str | None = None,
) -> EvaluationOutcome:
    """The gate: the new version (``model_uri``, ``models:/<name>/<version>``) gets the alias
    ``challenger``, is scored on ``test_data`` with the behavioral tests, and the champion is scored on
    the same rows; :func:`decide` gives the outcome:

    - ``promoted``: the ``champion`` alias moves to it (``approval="auto"``);
    - ``pending-approval``: it keeps ``challenger`` until ``tagifai models approve`` (``approval="manual"``,
      or ``promote=False``);
    - ``rejected``: a behavioral test failed, or its f1 is below the champion's plus ``margin``.

    ``model_path``: the model's files as train wrote them (a pipeline's Model artifact), scored instead of
    a download from the registry; ``model_uri`` still names the version the aliases move to.

    Never raises for a bad challenger: the outcome, its reason and the scores go to the version's tags
    (``tagifai.decision``, ``tagifai.decision_reason``, ``tagifai.eval_f1``) and to the report. Every alias
    move is recorded (:class:`tagifai.registry.Registry`).
    """
    from tagifai.evaluate import evaluate_model, report_markdown, run_behavioral_tests
    from tagifai.registry import CHALLENGER, Registry
    from tagifai.tracking import CHAMPION, load_model

    version = model_uri.rsplit("/", 1)[-1] if model_uri.startswith("models:/") else ""
    registry = Registry(model_name, tracking_uri)
    if version.isdigit() and registry.alias_version(CHALLENGER) != int(version):
        registry.move_alias(CHALLENGER, version, f"new version to evaluate ({model_uri})", action="challenger")
    model = load_model(model_path or model_uri, tracking_uri=tracking_uri)
    metrics = evaluate_model(model, test_data)
    behavioral = run_behavioral_tests(model)
    champion_version = registry.alias_version(CHAMPION)
    champion_before = None
    if champion_version is not None:
        champion_model = load_model(f"models:/{model_name}/{champion_version}", tracking_uri=tracking_uri)
        champion_before = {
            "version": champion_version,
            "f1": evaluate_model(champion_model, test_data)["overall"]["f1"],
        }
    f1 = metrics["overall"]["f1"]
    if not version.isdigit():
        outcome, reason = "rejected", f"{model_uri} is not a registered model version (models:/<name>/<version>)"
    elif champion_before is not None and str(champion_before["version"]) == version:
        outcome, reason = "promoted", f"version {version} is already the champion"
    else:
        outcome, reason = decide(
            f1,
            behavioral,
            champion_before["f1"] if champion_before else None,
            approval if promote else "manual",
            margin,
            champion_before["version"] if champion_before else None,
        )
    promoted = outcome == "promoted"
    if promoted and str(champion_version) != version:
        registry.move_alias(CHAMPION, version, f"evaluate step (approval {approval}): {reason}", action="promote")
    if version.isdigit():
        registry.set_decision(version, outcome, reason)
        registry.client.set_model_version_tag(model_name, version, "tagifai.eval_f1", f"{f1:.6f}")
        if champion_before:
            registry.client.set_model_version_tag(
                model_name,
                version,
                "tagifai.eval_champion",
                f"v{champion_before['version']} f1 {champion_before['f1']:.6f}",
            )
    report = report_markdown(metrics, behavioral, title=f"Evaluation of {model_uri}")
    if champion_before is None:
        versus = "no champion yet"
    else:
        versus = f"champion v{champion_before['version']} f1 {champion_before['f1']:.4f} on the same data"
    after = {
        "promoted": f"`{model_name}@champion` now points at version {version}.",
        "pending-approval": f"champion unchanged; `{model_name}@challenger` is version {version}, waiting for "
        f"`tagifai models approve {version}`.",
        "rejected": "champion unchanged.",
    }[outcome]
    report += f"\n\n## Decision: {outcome}\n\n{reason}.\n\n## Champion\n\n{versus}; challenger f1 {f1:.4f}: {after}\n"
    return EvaluationOutcome(model_uri, metrics, behavioral, champion_before, promoted, report, outcome, reason)


def write_json(path: str | Path, value: Any) -> None:
    Path(path).write_text(json.dumps(value, indent=2, sort_keys=True, default=str), encoding="utf-8")
