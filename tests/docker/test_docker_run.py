"""`tagifai run sensor --runner docker`: kfp.local's DockerRunner, every step of the table in its own image.

One real run of the sensor pipeline (sense, dataops, drift, mlops, then the watermark) on the
vendored data with two Optuna trials: sources served over http from the host, a
real `mlflow server` for tracking and registry, the warehouse and Optuna in the mounted state folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tagifai import steps
from tagifai_cli import images

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DATA_DIR") or ROOT / "data" / "madewithml")
#: display name -> the component the task runs; the step (image) it must run in comes from the step table
TASK_COMPONENTS = {
    "hold-warehouse": "hold_warehouse",
    "sense": "sense",
    "fingerprint-projects": "fingerprint",
    "fingerprint-tags": "fingerprint",
    "sync-projects": "sync",
    "sync-tags": "sync",
    "validate-projects": "validate_table",
    "validate-tags": "validate_table",
    "transform": "transform",
    "validate-labeled-projects": "validate_table",
    "drift": "drift",
    "extract": "extract",
    "validate-dataset": "validate_dataset",
    "optimize": "optimize",
    "train": "train",
    "evaluate": "evaluate",
    "advance-watermark": "advance_watermark",
    "notify": "notify",
}
TASK_STEPS = {name: steps.step_of_component(component).name for name, component in TASK_COMPONENTS.items()}


def _step_of_task(task: str) -> str:
    """The step of a task key (``validate-table-2`` -> validate), from the step table."""
    prefix, _, suffix = task.rpartition("-")
    return steps.step_of_component(prefix if suffix.isdigit() else task).name


def test_the_run_covers_every_step_of_the_table():
    assert set(TASK_STEPS.values()) == set(steps.NAMES)


@pytest.fixture(scope="module")
def docker_run(built_images, tmp_path_factory):
    home = tmp_path_factory.mktemp("docker-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGIFAI_", "MLFLOW_"))}
    env.update(TAGIFAI_HOME=str(home), DATA_DIR=str(DATA))
    for var in ("TAGIFAI_REGISTRY", "TAGIFAI_IMAGE_TAG"):  # the images the fixture built
        if var in os.environ:
            env[var] = os.environ[var]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tagifai_cli.main", "run", "sensor", "--runner", "docker", "--num-trials", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise AssertionError(
            f"tagifai run --runner docker exited {proc.returncode}\n{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}"
        )
    print(f"\nsensor (sense, continual, advance) under DockerRunner: {seconds:.1f} s wall")
    return home, proc, json.loads((home / "last_run.json").read_text())


def test_run_succeeds_with_every_step_under_the_docker_runner(docker_run):
    _, proc, summary = docker_run
    assert summary["status"] == "succeeded" and summary["runner"] == "docker"
    assert "kfp.local docker runner" in proc.stdout and "sensor SUCCEEDED" in proc.stdout
    assert sorted(s["name"] for s in summary["steps"]) == sorted(TASK_STEPS)
    assert all(s["status"] == "succeeded" for s in summary["steps"])


def test_each_task_ran_in_its_own_steps_image_as_non_root(docker_run):
    _, _, summary = docker_run
    containers = summary["containers"]
    assert len(containers) == len(TASK_STEPS), containers
    # the task key (folder in the pipeline root) -> display name, from the summary's steps
    labels = {s["task"]: s["name"] for s in summary["steps"]}
    seen = set()
    for c in containers:
        name = labels[c["task"]]
        step = TASK_STEPS[name]
        assert _step_of_task(c["task"]) == step, (name, c)
        assert c["image"] == images.image_name(step), (name, c)
        assert c["step_label"] == step, (name, c)
        assert c["exit_code"] == 0, (name, c)
        assert c["user"] not in ("", "0", "root") and not c["user"].startswith("0:"), (name, c)
        seen.add(name)
    assert seen == set(TASK_STEPS)
    assert len({c["run"] for c in containers}) == 1
    # the image of a step is not shared with another step
    assert len({c["image"] for c in containers}) == len(set(TASK_STEPS.values()))


def test_artifacts_and_metrics_came_back_through_the_artifact_store(docker_run):
    home, _, summary = docker_run
    assert summary["rows"] == {"raw.projects": 764, "raw.tags": 764, "labeled_projects": 764, "extracted": 764}
    assert summary["best_params"] and summary["best_validation_score"] > 0.5
    assert summary["metrics"]["f1"] > 0.8
    assert summary["model_uri"].startswith("models:/tagifai/")
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == home / "runs"
    outputs = sorted(p.parent.name for p in run_dir.glob("*/executor_output.json"))
    assert len(outputs) == len(TASK_STEPS)
    train = next(p for p in run_dir.glob("train*/executor_output.json"))
    assert (train.parent / "model" / "MLmodel").is_file()  # the Model artifact written by the container
    evaluation = summary.get("evaluation") or {}
    assert evaluation.get("behavioral_passed") == evaluation.get("behavioral_total") > 0


def test_state_reached_the_steps_as_on_a_cluster(docker_run):
    """Sources over http, MLflow behind a server process, warehouse and Optuna in the mounted workspace."""
    home, _, summary = docker_run
    services = summary["services"]
    assert services["file_server"].startswith("http://127.0.0.1:")
    assert services["mlflow_server"].startswith("http://127.0.0.1:")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from main.labeled_projects").fetchone()[0] == 764
    import optuna

    studies = optuna.get_all_study_summaries(f"sqlite:///{home / 'optuna.db'}")
    assert studies and studies[0].n_trials == 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    # the sensor's run waits for a person: the new version is the challenger, pending approval
    version = client.get_model_version_by_alias("tagifai", "challenger")
    assert summary["model_uri"] == f"models:/tagifai/{version.version}"
    assert version.tags.get("tagifai.decision") == "pending-approval"
    assert summary["retrain"] is True and summary["evaluation"]["outcome"] == 1
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(value,)] = con.execute("select value from main.tagifai_watermark where name = 'continual'").fetchall()
    assert json.loads(value)["run_key"] == summary["run_key"]
    # the model's files went through the server's artifact store (mlflow-artifacts:), into the state folder
    assert any((home / "mlartifacts").rglob("MLmodel"))


def test_transform_started_from_the_parse_kept_in_its_image(docker_run):
    """The transform image was built with dbt's parse of the project (images/step.Dockerfile): a run's new
    state folder reuses it rather than parsing the whole project again."""
    home, _, _ = docker_run
    log = (home / "dbt" / "local" / "logs" / "dbt.log").read_text().lower()
    assert "command `cli build` succeeded" in log
    assert "full parse" not in log and "unable to do partial parsing" not in log
