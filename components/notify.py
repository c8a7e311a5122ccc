"""notify: the exit task of every pipeline (a summary of the run, a failure notice to a webhook), and
``hold_warehouse``, the first task of every pipeline (the run lease on a DuckDB warehouse file, which
notify gives back)."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from tagifai.steps import default_image


@dsl.component(base_image=default_image("notify"), install_kfp_package=False)
def notify(
    pipeline: str,
    status: dsl.PipelineTaskFinalStatus,
    mlflow_tracking_uri: str,
    model_name: str,
    state_dir: str,
    summary: Output[Markdown],
    warehouse: str = "",
    holder: str = "",
):
    """Summarize the finished run (tagifai.notify): ``pipeline``, the run, ``status.state`` (SUCCEEDED, FAILED,
    CANCELLED), the failed task, the error, and the key metrics of the model version behind ``challenger``
    (else ``champion``) in the registry at ``mlflow_tracking_uri`` (empty: the settings', from ``state_dir``).

    The exit task of a ``dsl.ExitHandler``: KFP fills ``status`` in, the pipeline passes no value for it.
    Writes ``summary`` (Markdown) and ``<summary>.json`` beside it; metadata ``status``, ``failed_task``,
    ``webhook``. Posts the summary to the webhook of the settings (TAGIFAI_NOTIFY_WEBHOOK_FILE, _URL or _SECRET;
    never a parameter: the URL is a secret). Never fails because of the webhook or the metrics lookup (both are
    noted in the summary); fails only when it cannot write its own artifact.
    ``holder``: the run's name; the lease ``hold_warehouse`` took on ``warehouse`` for it is given back.
    """
    from pathlib import Path

    from tagifai import lease
    from tagifai.config import get_settings
    from tagifai.notify import notify as summarize

    settings = get_settings(home=state_dir, mlflow_tracking_uri=mlflow_tracking_uri, model_name=model_name)
    out = Path(summary.path)
    result = summarize(
        pipeline,
        status.state,
        job_resource_name=status.pipeline_job_resource_name or "",
        error_message=status.error_message or "",
        settings=settings,
        run_dir=out.parent.parent,
        task_dir_name=out.parent.name,
        markdown_path=out,
        json_path=out.with_name(out.name + ".json"),
    )
    summary.metadata.update(
        {"status": result["status"], "failed_task": result["failed_task"] or "", "webhook": result["webhook"]}
    )
    path = lease.path_for(get_settings(warehouse=warehouse).warehouse) if holder else None
    if path is not None and lease.release(path, holder):
        print(f"lease {path} released")
    print(f"{result['pipeline']} {result['status']}" + (f": {result['failed_task']}" if result["failed_task"] else ""))


@dsl.component(base_image=default_image("notify"), install_kfp_package=False)
def hold_warehouse(warehouse: str, holder: str, timeout_seconds: float = 1800.0) -> str:
    """The first task of every pipeline: take the run lease of ``warehouse`` (tagifai.lease) for ``holder``
    (the run's name), waiting up to ``timeout_seconds`` for a run that holds it; the exit task ``notify``
    gives it back. One run at a time on a DuckDB file (one writer); nothing to hold on BigQuery. Returns the
    lease file, or "" when the warehouse needs none. Fails naming the holding run when the wait times out.
    """
    from tagifai import lease
    from tagifai.config import get_settings

    path = lease.path_for(get_settings(warehouse=warehouse).warehouse)
    if path is None:
        return ""
    held = lease.acquire(path, holder, timeout=timeout_seconds)
    print(f"lease {path} held by {held.holder} until {held.expires_at}")
    return str(path)
