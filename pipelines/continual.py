"""continual: dataops, the drift report, then mlops, as one DAG: the artifacts flow from the source batches
to the evaluated model (transform's Dataset into extract, train's Model into evaluate)."""

from kfp import dsl

from components.drift import drift
from pipelines import dataops, forward, mlops
from pipelines.notice import notified
from pipelines.platform import TaskPlan


def drift_check(plan: TaskPlan, *, warehouse, mlflow_tracking_uri, model_name, state_dir, retrain_on, after):
    """Add the drift task after ``after``: the new rows of the curated table against the champion."""
    checked = drift(
        warehouse=warehouse,
        mlflow_tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        state_dir=state_dir,
        retrain_on=retrain_on,
    ).after(after)
    checked.set_display_name("drift")
    plan.configure(checked)
    return checked


def build(plan: TaskPlan):
    """The continual pipeline: the dataops tasks, the drift step, the mlops tasks, built with ``plan``."""

    @dsl.pipeline(
        name="continual",
        description="DataOps, drift against the champion, then MLOps: from the sources to an evaluated model.",
    )
    def continual(
        projects_source: str,
        tags_source: str,
        warehouse: str = "",
        state_dir: str = "",
        dbt_target: str = "",
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
        with notified(plan, "continual", **forward(notified, locals())) as hold:
            data = dataops.tasks(plan, **forward(dataops.tasks, locals(), after=hold))
            # A report here (a person or a schedule asked for this run, so it retrains whatever it says);
            # the sensor pipeline branches on it. Before mlops: it compares with the champion before this run
            # may replace it.
            checked = drift_check(plan, **forward(drift_check, locals(), retrain_on="new-data", after=data.last))
            mlops.tasks(plan, **forward(mlops.tasks, locals(), curated=data.curated, after=checked))

    return continual
