"""Every pipeline's first and exit tasks: ``hold_warehouse`` takes the run lease of a DuckDB warehouse file
(one run at a time on it), and ``notify`` runs when the rest of the run has ended, succeeded or failed.

notify writes the run's summary (status, the failed task, key metrics), posts it to the webhook of the
settings (a Kubernetes Secret or Vertex Secret Manager, never a parameter) and gives the lease back
(components/notify.py; docs/deploy.md, "Failure notices" and "One writer for the warehouse").
"""

import contextlib

from kfp import dsl

from components.notify import hold_warehouse, notify
from pipelines.platform import TaskPlan

#: The run's holder name: its job id (unique per run; KFP, Vertex AI and kfp.local fill it in).
HOLDER = dsl.PIPELINE_JOB_ID_PLACEHOLDER


@contextlib.contextmanager
def notified(
    plan: TaskPlan,
    pipeline: str,
    *,
    state_dir: str,
    warehouse: str,
    mlflow_tracking_uri: str = "",
    model_name: str = "",
):
    """The tasks added inside this block run under a ``dsl.ExitHandler`` whose exit task is ``notify``. Yields
    the ``hold_warehouse`` task: the block's first warehouse task goes ``.after()`` it."""
    notice = notify(
        pipeline=pipeline,
        mlflow_tracking_uri=mlflow_tracking_uri,
        model_name=model_name,
        state_dir=state_dir,
        warehouse=warehouse,
        holder=HOLDER,
    )
    notice.set_display_name("notify")
    plan.configure(notice)
    with dsl.ExitHandler(notice, name="run"):
        hold = hold_warehouse(warehouse=warehouse, holder=HOLDER)
        hold.set_display_name("hold-warehouse")
        plan.configure(hold)
        yield hold
