"""The Docker runner's set-up, without an engine: argument rewriting, mounts, the file server, task parsing.

Not marked ``docker``: these run with the fast tests.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tagifai_cli import docker_run


def _arguments(home: Path, data: Path) -> dict:
    return {
        "projects_source": str(data / "projects.csv"),
        "tags_source": str(data / "tags.csv"),
        "warehouse": f"duckdb:///{home / 'warehouse.duckdb'}",
        "state_dir": str(home),
        "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
        "optuna_storage": f"sqlite:///{home / 'optuna.db'}",
        "num_trials": 2,
    }


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "projects.csv").write_text("id,created_on,title,description\n1,2020-01-01,a,b\n")
    (folder / "tags.csv").write_text("id,tag\n1,mlops\n")
    return folder


def test_plan_serves_local_sources_and_mounts_the_state_folder_once(tmp_path, data):
    home = tmp_path / "home"
    plan = docker_run.plan(_arguments(home, data), home)
    assert set(plan.local_files) == {"projects_source", "tags_source"}
    assert plan.local_files["tags_source"] == (data / "tags.csv").resolve()
    # warehouse, Optuna and MLflow files all live in the state folder: one mount
    assert plan.mounts == [home.resolve()]
    assert plan.mlflow_backend == f"sqlite:///{home / 'mlflow.db'}"
    assert plan.environment["TAGIFAI_HOME"] == str(home.resolve())
    assert plan.environment["TAGIFAI_WAREHOUSE"] == f"duckdb:///{home / 'warehouse.duckdb'}"
    assert "TAGIFAI_PROJECT_DIR" not in plan.environment  # the image's /app, never the host checkout
    assert plan.arguments["num_trials"] == 2


def test_plan_mounts_files_outside_the_state_folder_and_passes_remote_uris_through(tmp_path, data):
    home, elsewhere = tmp_path / "home", tmp_path / "wh"
    args = _arguments(home, data)
    args.update(
        projects_source="https://example.org/projects.csv",
        warehouse=f"duckdb:///{elsewhere / 'w.duckdb'}",
        mlflow_tracking_uri="http://127.0.0.1:5001",
        optuna_storage="postgresql://db/optuna",
    )
    plan = docker_run.plan(args, home)
    assert set(plan.local_files) == {"tags_source"}
    assert plan.arguments["projects_source"] == "https://example.org/projects.csv"
    assert sorted(plan.mounts) == sorted([home.resolve(), elsewhere.resolve()])
    assert plan.mlflow_backend is None  # a tracking server is used as it is


def test_plan_fails_on_a_missing_local_source(tmp_path, data):
    args = _arguments(tmp_path / "home", data)
    args["tags_source"] = str(data / "missing.csv")
    with pytest.raises(docker_run.DockerRunError, match="missing.csv"):
        docker_run.plan(args, tmp_path / "home")


def test_dataops_arguments_need_no_mlflow_server(tmp_path, data):
    home = tmp_path / "home"
    args = {
        k: v
        for k, v in _arguments(home, data).items()
        if k in ("projects_source", "tags_source", "warehouse", "state_dir")
    }
    assert docker_run.plan(args, home).mlflow_backend is None


def test_collapse_keeps_outermost_folders():
    paths = [Path("/a/b"), Path("/a"), Path("/c/d"), Path("/a/b/c"), Path("/c/d")]
    assert docker_run._collapse(paths) == [Path("/a"), Path("/c/d")]


def test_file_server_serves_only_the_files_it_was_given(data):
    server = docker_run.FileServer().start()
    try:
        url = server.add(data / "tags.csv")
        assert url.startswith(server.url) and url.endswith("/tags.csv")  # the extension still tells the format
        assert server.add(data / "tags.csv") == url
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.read().decode() == "id,tag\n1,mlops\n"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/0/../projects.csv", timeout=5)
        assert err.value.code == 404
        import pandas as pd

        assert pd.read_csv(url).to_dict("records") == [{"id": 1, "tag": "mlops"}]
    finally:
        server.stop()


def test_task_of_reads_the_task_from_a_kfp_command():
    executor_input = {"outputs": {"outputFile": "/h/runs/continual-2026-01-01/validate-table-2/executor_output.json"}}
    args = [
        "-ec",
        "program",
        "source",
        "--executor_input",
        json.dumps(executor_input),
        "--function_to_execute",
        "validate_table",
    ]
    assert docker_run._task_of(args) == ("continual-2026-01-01", "validate-table-2", "validate_table")
    assert docker_run._task_of(["python3"]) == (None, None, None)


@pytest.mark.skipif(os.getuid() != 0, reason="chown needs root")
def test_hand_over_gives_the_state_to_the_image_user(tmp_path):
    (tmp_path / "s" / "runs").mkdir(parents=True)
    (tmp_path / "s" / "warehouse.duckdb").write_bytes(b"")
    assert docker_run.hand_over([tmp_path / "s"]) == 3
    assert {p.stat().st_uid for p in [tmp_path / "s", *(tmp_path / "s").rglob("*")]} == {docker_run.IMAGE_UID}
    assert docker_run.hand_over([tmp_path / "s"]) == 0


class _Engine:
    """An engine that knows the images ``attrs`` (name -> attrs) and no other."""

    def __init__(self, attrs: dict[str, dict]):
        from types import SimpleNamespace

        def get(name):
            if name not in attrs:
                raise LookupError(name)
            return SimpleNamespace(attrs=attrs[name])

        self.images = SimpleNamespace(get=get)


def test_check_images_reads_each_step_image_and_names_every_missing_one():
    from tagifai import steps

    wanted = [s.image() for s in steps.STEPS]
    built = {
        s.image(): {
            "Id": f"sha256:{i:064x}",
            "Config": {"User": "10001:10001", "Labels": {docker_run.STEP_LABEL: s.name}},
        }
        for i, s in enumerate(steps.STEPS)
        if not s.shared_lock
    }
    missing = [s.image() for s in steps.STEPS if s.shared_lock]
    with pytest.raises(docker_run.DockerRunError) as err:
        docker_run.check_images(_Engine(built), wanted)
    assert all(image in str(err.value) for image in missing)
    assert not any(image in str(err.value) for image in built)
    found = docker_run.check_images(_Engine(built), list(built))
    assert {info["step"] for info in found.values()} == {s.name for s in steps.STEPS if not s.shared_lock}
    assert all(info["user"] == "10001:10001" for info in found.values())
