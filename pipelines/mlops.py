"""mlops: extract -> validate -> optimize -> train -> evaluate (on its own: starts from the warehouse).

In ``continual`` and ``sensor`` the same tasks take transform's curated Dataset (``tasks(curated=...)``):
extract reads the table that artifact names. train's Model artifact feeds evaluate.

With ``parallel_workers: N`` (N > 1) under optimize in the platform settings, N ``optimize_worker`` tasks
run the study's trials side by side (``dsl.ParallelFor``, one shared study in ``optuna_storage``), and
``optimize`` after them only chooses and writes the best arguments.
"""

from kfp import dsl

from components.evaluate import evaluate
from components.extract import extract
from components.optimize import optimize, optimize_worker
from components.train import train
from components.validate import validate_dataset
from pipelines import forward
from pipelines.notice import notified
from pipelines.platform import TaskPlan


def tasks(
    plan: TaskPlan,
    *,
    warehouse: str,
    state_dir: str,
    mlflow_tracking_uri: str,
    optuna_storage: str,
    num_trials: int,
    seed: int,
    study_name: str,
    experiment_name: str,
    model_name: str,
    model_families: str,
    approval: str,
    promotion_margin: float,
    training_data: str,
    window_days: float,
    replay_share: float,
    replay_min_per_class: int,
    curated=None,
    after=None,
):
    """Add the mlops tasks to the pipeline being defined; the last task (evaluate).

    ``curated``: the Dataset of the curated table (dataops' transform output), or None (read the warehouse's
    labeled_projects as it is). ``after``: a task extract waits for.
    """
    data = extract(
        warehouse=warehouse,
        table="labeled_projects",
        **({"curated": curated} if curated is not None else {}),
        training_data=training_data,
        window_days=window_days,
        replay_share=replay_share,
        replay_min_per_class=replay_min_per_class,
        seed=seed,
    )
    data.set_display_name("extract")
    if after is not None:
        data.after(after)
    checked = validate_dataset(suite="labeled_projects", dataset=data.outputs["dataset"])
    checked.set_display_name("validate-dataset")
    study = {
        "dataset": data.outputs["dataset"],
        "num_trials": num_trials,
        "model_families": model_families,
        "seed": seed,
        "study_name": study_name,
        "optuna_storage": optuna_storage,
        "mlflow_tracking_uri": mlflow_tracking_uri,
        "experiment_name": experiment_name,
        "state_dir": state_dir,
    }
    workers = plan.workers("optimize")
    searched = checked
    if workers > 1:
        with dsl.ParallelFor(items=list(range(workers)), name="optimize-workers") as worker:
            fanned = optimize_worker(worker=worker, **study).after(checked)
            fanned.set_display_name("optimize-worker")
            plan.configure(fanned)
        searched = fanned
    tuned = optimize(**study).after(searched)
    tuned.set_display_name("optimize")
    trained = train(
        dataset=data.outputs["dataset"],
        best_args=tuned.outputs["best_args"],
        seed=seed,
        mlflow_tracking_uri=mlflow_tracking_uri,
        experiment_name=experiment_name,
        model_name=model_name,
        state_dir=state_dir,
    )
    trained.set_display_name("train")
    evaluated = evaluate(
        model=trained.outputs["model"],
        test_data=trained.outputs["test_data"],
        mlflow_tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        state_dir=state_dir,
        approval=approval,
        promotion_margin=promotion_margin,
    )
    evaluated.set_display_name("evaluate")

    # resources, retries, caching and (Kubeflow) Kubernetes settings from pipelines/platform.yaml
    plan.configure(data, checked, tuned, trained, evaluated)
    if curated is None:  # no input names the table's content: it may hold new rows, so read it every time
        data.set_caching_options(False)
    return evaluated


def build(plan: TaskPlan):
    """The mlops pipeline with ``plan``'s images and platform settings on every task."""

    @dsl.pipeline(
        name="mlops", description="Extract labeled_projects, tune, train, register and evaluate the tagifai model."
    )
    def mlops(
        warehouse: str = "",
        state_dir: str = "",
        mlflow_tracking_uri: str = "",
        optuna_storage: str = "",
        num_trials: int = 20,
        seed: int = 42,
        study_name: str = "tagifai",
        experiment_name: str = "tagifai",
        model_name: str = "tagifai",
        model_families: str = "",
        approval: str = "auto",
        promotion_margin: float = 0.0,
        training_data: str = "",
        window_days: float = 0.0,
        replay_share: float = -1.0,
        replay_min_per_class: int = -1,
    ):
        """Empty URIs mean: each step uses its environment's TAGIFAI_* settings; so do an empty
        ``training_data`` (full or window), a zero ``window_days`` and a negative replay share or minimum."""
        with notified(plan, "mlops", **forward(notified, locals())) as hold:
            tasks(plan, **forward(tasks, locals(), after=hold))

    return mlops
