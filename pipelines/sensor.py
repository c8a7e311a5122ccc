"""sensor: sense -> (new data) dataops -> drift -> (retrain) mlops -> advance the watermark.

KFP and Vertex AI have no sensors: schedule this pipeline (``tagifai schedule`` / ``tagifai vertex
schedule``), or start it from an event (functions/vertex_sensor), and it goes on only when the projects
source holds enough new rows (tagifai.sensor). The drift step then compares them with the champion's
training data and decides whether to retrain (``retrain_on``: every sensed batch, or only drifted ones).
The watermark advances only after the branch taken succeeded (the retraining, or the drift check that
found no reason to retrain), and only to the data the sense task saw (``advance_watermark`` re-checks the
run key).
"""

from kfp import dsl

from components.sense import advance_watermark, sense
from pipelines import dataops, forward, mlops
from pipelines.continual import drift_check
from pipelines.notice import notified
from pipelines.platform import TaskPlan


def build(plan: TaskPlan):
    """The sensor pipeline: sense, then the dataops, drift and mlops tasks in branches, and the advance tasks."""

    @dsl.pipeline(
        name="sensor",
        description="Sense new projects rows; when there are enough, load them, check drift, retrain, advance.",
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
        promotion_margin: float = 0.0,
        training_data: str = "",
        window_days: float = 0.0,
        replay_share: float = -1.0,
        replay_min_per_class: int = -1,
        min_new_rows: int = 50,
        max_age_days: float = 30.0,
        retrain_on: str = "new-data",
    ):
        """``approval`` defaults to manual: an unattended retraining never replaces the champion by itself."""
        with notified(plan, "sensor", **forward(notified, locals())) as hold:
            decided = sense(
                projects_source=projects_source,
                warehouse=warehouse,
                min_new_rows=min_new_rows,
                max_age_days=max_age_days,
            )
            decided.set_display_name("sense")
            decided.after(hold)
            plan.configure(decided)
            # Conditions on plain outputs: kfp.local 2.17 cannot resolve a NamedTuple field in a condition.
            with dsl.If(decided.outputs["Output"] == True, name="new-data"):  # noqa: E712 - a KFP condition
                data = dataops.tasks(plan, **forward(dataops.tasks, locals()))
                checked = drift_check(plan, **forward(drift_check, locals(), after=data.last))
                with dsl.If(checked.outputs["Output"] == True, name="retrain"):  # noqa: E712
                    trained = mlops.tasks(plan, **forward(mlops.tasks, locals(), curated=data.curated, after=checked))
                    advanced = advance_watermark(
                        projects_source=projects_source, warehouse=warehouse, decision=decided.outputs["decision"]
                    ).after(trained)
                    advanced.set_display_name("advance-watermark")
                    plan.configure(advanced)
                # retrain_on=drift and nothing drifted: the batch is loaded and checked, so it counts as seen
                with dsl.If(checked.outputs["Output"] == False, name="keep-champion"):  # noqa: E712
                    kept = advance_watermark(
                        projects_source=projects_source, warehouse=warehouse, decision=decided.outputs["decision"]
                    )
                    kept.set_display_name("advance-watermark-no-retrain")
                    plan.configure(kept)

    return sensor
