"""notify: the exit task of every pipeline, a summary of the run and a failure notice to a webhook."""

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
):
    """Summarize the finished run (tagifai.notify): ``pipeline``, the run, ``status.state`` (SUCCEEDED, FAILED,
    CANCELLED), the failed task, the error, and the key metrics of the model version behind ``challenger``
    (else ``champion``) in the registry at ``mlflow_tracking_uri`` (empty: the settings', from ``state_dir``).

    The exit task of a ``dsl.ExitHandler``: KFP fills ``status`` in, the pipeline passes no value for it.
    Writes ``summary`` (Markdown) and ``<summary>.json`` beside it; metadata ``status``, ``failed_task``,
    ``webhook``. Posts the summary to the webhook of the settings (TAGIFAI_NOTIFY_WEBHOOK_FILE, _URL or _SECRET;
    never a parameter: the URL is a secret). Never fails because of the webhook or the metrics lookup (both are
    noted in the summary); fails only when it cannot write its own artifact.
    """
    from pathlib import Path

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
    print(f"{result['pipeline']} {result['status']}" + (f": {result['failed_task']}" if result["failed_task"] else ""))
