"""continual: dataops, the drift report, then mlops, as one pipeline (nested pipelines ordered with .after())."""

from kfp import dsl

from components.drift import drift
from pipelines import dataops as dataops_pipeline
from pipelines import forward
from pipelines import mlops as mlops_pipeline
from pipelines.platform import TaskPlan


def build(plan: TaskPlan):
    """The continual pipeline: dataops and mlops built with ``plan``, nested and ordered, the drift step between."""
    dataops = dataops_pipeline.build(plan)
    mlops = mlops_pipeline.build(plan)

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
        data = dataops(**forward(dataops, locals()))
        # A report here (a person or a schedule asked for this run, so it retrains whatever it says);
        # the sensor pipeline branches on it. Before mlops: it compares with the champion before this run
        # may replace it.
        checked = drift(
            warehouse=warehouse,
            mlflow_tracking_uri=mlflow_tracking_uri,
            model_name=model_name,
            state_dir=state_dir,
            retrain_on="new-data",
        ).after(data)
        checked.set_display_name("drift")
        plan.configure(checked)
        # mlops starts from the warehouse: no artifact crosses the boundary (kfp.local cannot pass one
        # into a nested pipeline), only the order.
        mlops(**forward(mlops, locals())).after(checked)

    return continual
