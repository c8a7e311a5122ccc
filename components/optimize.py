"""optimize: an Optuna study over the training arguments, each trial logged to MLflow.

Two components on one image: ``optimize`` (runs the study's missing trials, then chooses) and
``optimize_worker`` (runs trials of the same study beside other workers: the pipelines fan it out with
``dsl.ParallelFor`` when ``pipelines/platform.yaml`` gives optimize ``parallel_workers`` > 1, and
``optimize`` then only chooses).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("optimize"), install_kfp_package=False)
def optimize(
    dataset: Input[Dataset],
    num_trials: int,
    seed: int,
    study_name: str,
    optuna_storage: str,
    mlflow_tracking_uri: str,
    experiment_name: str,
    state_dir: str,
    best_args: Output[Artifact],
    metrics: Output[Metrics],
    plots: Output[HTML],
    profile: Output[HTML],
    model_families: str = "",
):
    """Search the training arguments on the train and validation splits of ``dataset`` (never test).

    Reads: labeled projects (Parquet). The study ``<study_name>-<content hash>`` lives in
    ``optuna_storage`` (SQLite on the embedded default): re-running on the same data resumes it, so
    only missing trials run. Each trial is a nested MLflow run with its params and validation f1;
    unpromising trials are pruned (median of the cross-validation folds so far). ``model_families``
    (comma-separated, e.g. "linear_svc,logreg,sgd") makes the family a parameter of the search, in a
    study of its own; empty searches the default family only.
    The study's best trial replaces the default arguments only when it beats them by more than the
    margin (tagifai.optimize.choose_trial): on a few hundred rows the best of many trials is often
    picked on noise.
    Writes: ``best_args`` (JSON of the chosen training arguments, also in its metadata under ``args``,
    with ``chosen``: which trial and why) and ``metrics`` (best_val_f1 of the chosen trial,
    best_trial_val_f1, kept_base_args, trials complete/pruned), ``plots`` (HTML: Optuna's optimisation
    history and parameter importances of the study, a note instead of the importances below 2 completed
    trials; metadata ``trials``: the study's trials by state) and ``profile`` (HTML: rows per tag and text
    lengths of ``dataset``); the KFP and Vertex UIs show both. A picture that cannot be drawn is a note on its
    page, never a failure.
    Empty URIs mean: this step's environment's TAGIFAI_* settings.
    """
    from pathlib import Path

    import pandas as pd

    from tagifai.artifacts import keep_values
    from tagifai.config import get_settings
    from tagifai.figures import optimization_figures, optimization_page, profile_page
    from tagifai.workflows import tune, write_json

    s = get_settings(
        home=state_dir,
        optuna_storage=optuna_storage,
        mlflow_tracking_uri=mlflow_tracking_uri,
        experiment_name=experiment_name,
    )
    df = pd.read_parquet(dataset.path)
    args, value, summary = tune(
        df,
        num_trials,
        s.optuna_storage,
        study_name,
        seed,
        tracking_uri=s.mlflow_tracking_uri,
        experiment_name=s.experiment_name,
        artifact_root=s.mlflow_artifact_root,
        model_families=model_families,
    )
    write_json(best_args.path, args)
    best_args.metadata["args"] = args
    best_args.metadata["study_name"] = summary.get("study_name", study_name)
    metrics.log_metric("best_val_f1", value)  # of the chosen trial (the base arguments unless beaten by the margin)
    chosen = summary.get("chosen") or {}
    best_args.metadata["chosen"] = {k: chosen.get(k) for k in ("trial", "kept_base", "delta", "se", "reason")}
    if summary.get("best_value") is not None:
        metrics.log_metric("best_trial_val_f1", summary["best_value"])
    metrics.log_metric("kept_base_args", float(bool(chosen.get("kept_base"))))
    for key in ("n_complete", "n_pruned", "new_trials"):
        if isinstance(summary.get(key), (int, float)):
            metrics.log_metric(key, summary[key])
    name = summary.get("study_name", study_name)
    drawn = optimization_figures(s.optuna_storage, name)
    plots.metadata["trials"] = drawn[1]  # the study's trials by state (the run report reads them with the page)
    Path(plots.path).write_text(optimization_page(s.optuna_storage, name, summary, drawn), encoding="utf-8")
    Path(profile.path).write_text(profile_page(df), encoding="utf-8")
    keep_values(metrics)  # a file at every output: kfp.local's cache can reuse this step


@dsl.component(base_image=default_image("optimize"), install_kfp_package=False)
def optimize_worker(
    dataset: Input[Dataset],
    num_trials: int,
    seed: int,
    worker: int,
    study_name: str,
    optuna_storage: str,
    mlflow_tracking_uri: str,
    experiment_name: str,
    state_dir: str,
    metrics: Output[Metrics],
    model_families: str = "",
):
    """One of N workers of the study ``optimize`` reads (same data, same name, same storage): it runs
    trials until the study holds ``num_trials`` finished ones, whoever ran them (Optuna's
    MaxTrialsCallback on the shared RDB storage), with its own sampler seed (``seed`` + 7919 x
    ``worker``) so workers do not propose the same trials. The storage must be one every worker reaches:
    a Postgres/MySQL URL on a cluster (SQLite on a shared volume is not safe under concurrent writers);
    the SQLite file of the state folder locally, where kfp.local runs the workers one after another.
    Writes ``metrics``: the trials this worker ran (new_trials) and the study's counts.
    """
    import pandas as pd

    from tagifai.artifacts import keep_values
    from tagifai.config import get_settings
    from tagifai.workflows import tune

    s = get_settings(
        home=state_dir,
        optuna_storage=optuna_storage,
        mlflow_tracking_uri=mlflow_tracking_uri,
        experiment_name=experiment_name,
    )
    _, _, summary = tune(
        pd.read_parquet(dataset.path),
        num_trials,
        s.optuna_storage,
        study_name,
        seed,
        tracking_uri=s.mlflow_tracking_uri,
        experiment_name=s.experiment_name,
        artifact_root=s.mlflow_artifact_root,
        model_families=model_families,
        sampler_seed=seed + 7919 * worker,
    )
    metrics.log_metric("worker", worker)
    for key in ("n_complete", "n_pruned", "new_trials"):
        if isinstance(summary.get(key), (int, float)):
            metrics.log_metric(key, summary[key])
    keep_values(metrics)  # a file at every output: kfp.local's cache can reuse this step
