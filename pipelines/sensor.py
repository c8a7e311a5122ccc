"""sensor: sense -> (retrain) the continual pipeline -> advance the watermark.

KFP and Vertex AI have no sensors: schedule this pipeline (``tagifai schedule`` / ``tagifai vertex
schedule``) every few minutes and it starts the continual loop only when the projects source holds enough
new rows (tagifai.sensor). The watermark advances only after the nested continual run succeeded, and only
to the data the sense task saw (``advance_watermark`` re-checks the run key).
"""

from kfp import dsl

from components.sense import advance_watermark, sense
from pipelines import continual as continual_pipeline
from pipelines.platform import TaskPlan


def build(plan: TaskPlan):
    """The sensor pipeline: the sense and advance tasks and the nested continual pipeline built with ``plan``."""
    continual = continual_pipeline.build(plan)

    @dsl.pipeline(
        name="sensor",
        description="Sense new projects rows; when there are enough, run continual and advance the watermark.",
    )
    def sensor(
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
        approval: str = "manual",
        min_new_rows: int = 50,
        max_age_days: float = 30.0,
    ):
        """``approval`` defaults to manual: an unattended retraining never replaces the champion by itself."""
        decided = sense(
            projects_source=projects_source,
            warehouse=warehouse,
            min_new_rows=min_new_rows,
            max_age_days=max_age_days,
        )
        decided.set_display_name("sense")
        # the plain output (not a NamedTuple field, which kfp.local 2.17 cannot resolve in a condition)
        with dsl.If(decided.outputs["Output"] == True, name="retrain"):  # noqa: E712 - a KFP condition
            run = continual(
                projects_source=projects_source,
                tags_source=tags_source,
                warehouse=warehouse,
                state_dir=state_dir,
                dbt_target=dbt_target,
                mlflow_tracking_uri=mlflow_tracking_uri,
                optuna_storage=optuna_storage,
                num_trials=num_trials,
                seed=seed,
                study_name=study_name,
                experiment_name=experiment_name,
                model_name=model_name,
                model_families=model_families,
                approval=approval,
            )
            advanced = advance_watermark(
                projects_source=projects_source, warehouse=warehouse, decision=decided.outputs["decision"]
            ).after(run)
            advanced.set_display_name("advance-watermark")
            plan.configure(advanced)
        plan.configure(decided)

    return sensor
