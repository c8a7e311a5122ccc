"""The notify component as the exit task of a ``dsl.ExitHandler``, run by kfp.local's SubprocessRunner.

kfp 2.17's local runner runs exit tasks after the body, success or failure, and fills the
``PipelineTaskFinalStatus`` in: ``state``, ``pipeline_job_resource_name`` ``local-pipeline-exit-handler-1``,
``pipeline_task_name`` ``exit-handler-1`` and ``error_message`` ``Task exit-handler-1 failed.`` (it does not
name the inner task: notify finds it in the local run folder, a task folder without ``executor_output.json``).
The webhook URL reaches the component's subprocess through TAGIFAI_NOTIFY_WEBHOOK_URL only.
(No ``from __future__ import annotations`` here: kfp reads the components' annotations as types.)
"""

import json
import sys
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Markdown, Output

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_notify import SENTINEL, Loopback, mlflow_routes  # noqa: E402

from components.notify import notify  # noqa: E402


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def succeed(report: Output[Markdown]):
    with open(report.path, "w") as f:
        f.write("fine\n")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fail_on_purpose(report: Output[Markdown]):
    raise RuntimeError("failing on purpose")


@dsl.pipeline(name="notify-failing")
def failing(mlflow_tracking_uri: str, state_dir: str):
    exit_task = notify(
        pipeline="notify-failing", mlflow_tracking_uri=mlflow_tracking_uri, model_name="tagifai", state_dir=state_dir
    )
    with dsl.ExitHandler(exit_task):
        ok = succeed()
        fail_on_purpose().after(ok)


@dsl.pipeline(name="notify-passing")
def passing(mlflow_tracking_uri: str, state_dir: str):
    exit_task = notify(
        pipeline="notify-passing", mlflow_tracking_uri=mlflow_tracking_uri, model_name="tagifai", state_dir=state_dir
    )
    with dsl.ExitHandler(exit_task):
        succeed()


@pytest.fixture
def local_run(tmp_path, monkeypatch):
    for name in ("TAGIFAI_NOTIFY_WEBHOOK_SECRET", "TAGIFAI_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TAGIFAI_NOTIFY_WEBHOOK_FILE", str(tmp_path / "no-mounted-secret"))
    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=False)

    def run(pipeline, server):
        monkeypatch.setenv("TAGIFAI_NOTIFY_WEBHOOK_URL", f"{server.url}/hooks/{SENTINEL}")
        pipeline(mlflow_tracking_uri=server.url, state_dir=str(tmp_path / "home"))
        [md] = root.glob("*/notify/summary")
        return md, json.loads(md.with_name("summary.json").read_text())

    return run


def test_a_failed_body_is_summarized_and_posted(local_run, capfd):
    with Loopback(gets=mlflow_routes()) as server:
        md, summary = local_run(failing, server)
    assert summary["status"] == "FAILED"
    assert summary["failed_task"] == "fail-on-purpose"
    assert summary["run"].startswith("notify-failing-")
    assert summary["error"] == "Task exit-handler-1 failed."
    assert summary["metrics"]["version"] == 3 and summary["metrics"]["outcome"] == "promoted"
    assert summary["webhook"] == "sent" and summary["webhook_source"] == "env"
    text = md.read_text()
    assert text.startswith("# notify-failing: FAILED") and "| failed_task | fail-on-purpose |" in text
    [post] = server.posts
    assert post["path"] == f"/hooks/{SENTINEL}"
    assert post["body"]["status"] == "FAILED" and post["body"]["failed_task"] == "fail-on-purpose"
    assert "`fail-on-purpose`" in post["body"]["text"]
    out = capfd.readouterr()
    assert SENTINEL not in out.out + out.err + text + json.dumps(summary)


def test_a_succeeded_body_is_summarized_and_posted(local_run):
    with Loopback(gets=mlflow_routes()) as server:
        md, summary = local_run(passing, server)
    assert (summary["status"], summary["failed_task"], summary["error"]) == ("SUCCEEDED", None, None)
    assert server.posts[0]["body"]["status"] == "SUCCEEDED"
    assert md.read_text().startswith("# notify-passing: SUCCEEDED")


def test_a_webhook_that_is_down_does_not_fail_the_task(local_run, tmp_path):
    with Loopback(answers=[(404, {})], gets=mlflow_routes()) as server:
        md, summary = local_run(passing, server)
    assert summary["webhook"] == "failed (HTTP 404)"
    assert next((tmp_path / "root").glob("*/notify/executor_output.json")).is_file()  # the task succeeded
