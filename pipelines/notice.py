"""Every pipeline's exit task: ``notify`` runs when the rest of the run has ended, succeeded or failed.

It writes the run's summary (status, the failed task, key metrics) and posts it to the webhook of the
settings, a Kubernetes Secret or Vertex Secret Manager, never a parameter (components/notify.py;
docs/deploy.md, "Failure notices").
"""

import contextlib

from kfp import dsl

from components.notify import notify
from pipelines.platform import TaskPlan


@contextlib.contextmanager
def notified(plan: TaskPlan, pipeline: str, *, state_dir: str, mlflow_tracking_uri: str = "", model_name: str = ""):
    """The tasks added inside this block run under a ``dsl.ExitHandler`` whose exit task is ``notify``."""
    notice = notify(
        pipeline=pipeline, mlflow_tracking_uri=mlflow_tracking_uri, model_name=model_name, state_dir=state_dir
    )
    notice.set_display_name("notify")
    plan.configure(notice)
    with dsl.ExitHandler(notice, name="run"):
        yield
