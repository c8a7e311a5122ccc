"""continual: dataops then mlops, as one pipeline (two nested pipelines ordered with .after())."""

from kfp import dsl

from pipelines import dataops as dataops_pipeline
from pipelines import mlops as mlops_pipeline
from pipelines.platform import TaskPlan


def build(plan: TaskPlan):
    """The continual pipeline: dataops and mlops built with ``plan``, nested and ordered."""
    dataops = dataops_pipeline.build(plan)
    mlops = mlops_pipeline.build(plan)

    @dsl.pipeline(
        name="continual", description="DataOps then MLOps: from the sources to a registered, evaluated model."
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
    ):
        data = dataops(
            projects_source=projects_source,
            tags_source=tags_source,
            warehouse=warehouse,
            state_dir=state_dir,
            dbt_target=dbt_target,
        )
        # mlops starts from the warehouse: no artifact crosses the boundary (kfp.local cannot pass one
        # into a nested pipeline), only the order.
        mlops(
            warehouse=warehouse,
            state_dir=state_dir,
            mlflow_tracking_uri=mlflow_tracking_uri,
            optuna_storage=optuna_storage,
            num_trials=num_trials,
            model_families=model_families,
            seed=seed,
            study_name=study_name,
            experiment_name=experiment_name,
            model_name=model_name,
            approval=approval,
        ).after(data)

    return continual
