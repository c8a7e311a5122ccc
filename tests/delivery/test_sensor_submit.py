"""``tagifai sense --submit kubeflow|vertex``: the run key names the run, so the same data starts one run.

The real kfp.Client and google.cloud.aiplatform talk to the loopback KFP and Vertex AI servers; the source is
a CSV and the warehouse (the watermark) a DuckDB file in tmp_path.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from loopback import COMPILED, ROOT

from tagifai.sensor import advance, sense
from tagifai.warehouse.duckdb import DuckDBWarehouse
from tagifai_cli.main import main

DATA = ROOT / "data" / "madewithml"
REST = ["--api-transport", "rest"]


@pytest.fixture
def source(tmp_path) -> str:
    df = pd.read_csv(DATA / "projects.csv", dtype=str, keep_default_na=False)
    path = tmp_path / "projects.csv"
    df.sort_values(["created_on", "id"]).head(100).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def _sense(home, source, *extra) -> list[str]:
    return ["--debug", "sense", "--home", str(home), "--projects", source, "--tags", str(DATA / "tags.csv"), *extra]


def _decision(out: str) -> dict:
    return json.loads(out[: out.index("\n}\n") + 2])


def test_kubeflow_run_is_named_by_the_run_key_and_not_created_twice(kfp_server, home, source, capsys):
    argv = _sense(home, source, "--submit", "kubeflow", "--host", kfp_server.url, "--experiment", "sensed")
    assert main(argv) == 0  # compiles the sensor pipeline now (no --package)
    out = capsys.readouterr().out
    key = _decision(out)["run_key"]
    [create] = kfp_server.find("POST", "/runs")
    run = create.json
    assert run["display_name"] == key and f"submitted {key} to kubeflow: run-" in out
    [experiment] = [e for e, v in kfp_server.experiments.items() if v["display_name"] == "sensed"]
    assert run["experiment_id"] == experiment
    [upload] = kfp_server.find("POST", "/pipelines/upload")
    assert upload.query["name"] == "tagifai-sensor"
    assert next(yaml.safe_load_all(upload.files()["uploadfile"]))["pipelineInfo"]["name"] == "sensor"
    params = run["runtime_config"]["parameters"]
    assert params["projects_source"] == source and params["tags_source"] == str(DATA / "tags.csv")
    assert (params["min_new_rows"], params["max_age_days"], params["approval"]) == (50, 30.0, "manual")
    assert not {"state_dir", "warehouse", "mlflow_tracking_uri", "optuna_storage"} & set(params)  # local only
    assert "the run's steps use the cluster's warehouse" in out

    assert main(argv) == 0  # the same data again: the run of that name is there
    out = capsys.readouterr().out
    assert f"{key} already exists on kubeflow (run-" in out and "nothing submitted" in out
    assert len(kfp_server.find("POST", "/runs")) == 1 and len(kfp_server.find("POST", "/pipelines/upload")) == 1
    [lookup, _] = kfp_server.find("GET", "/runs")
    assert key in lookup.query["filter"] and lookup.query["experiment_id"] == experiment


def test_kubeflow_passes_a_warehouse_every_pod_reaches(kfp_server, home, source, monkeypatch, capsys):
    monkeypatch.setattr(DuckDBWarehouse, "shared_across_pods", True)  # as BigQuery is
    pkg = str(COMPILED / "kubeflow" / "sensor.yaml")
    argv = _sense(home, source, "--submit", "kubeflow", "--host", kfp_server.url, "--package", pkg)
    assert main([*argv, "--param", "num_trials=3"]) == 0
    params = kfp_server.find("POST", "/runs")[0].json["runtime_config"]["parameters"]
    assert params["warehouse"] == f"duckdb:///{home / 'warehouse.duckdb'}" and params["num_trials"] == 3


def test_nothing_is_sent_below_the_threshold(kfp_server, vertex_server, home, source, capsys):
    warehouse = f"duckdb:///{home / 'warehouse.duckdb'}"
    advance(warehouse, sense(source, warehouse, 50, 30))
    assert main(_sense(home, source, "--submit", "kubeflow", "--host", kfp_server.url)) == 0
    assert main(_sense(home, source, "--submit", "vertex", "--api-endpoint", vertex_server.url, *REST)) == 0
    assert capsys.readouterr().out.count('"retrain": false') == 2
    assert kfp_server.requests == [] and vertex_server.requests == []


def _vertex(home, source, vertex_server, package, *extra):
    return _sense(
        home,
        source,
        "--submit",
        "vertex",
        "--package",
        str(package),
        "--project",
        "proj",
        "--region",
        "europe-west4",
        "--pipeline-root",
        "gs://b/root",
        "--mlflow-tracking-uri",
        "https://mlflow.example.com",
        "--api-endpoint",
        vertex_server.url,
        *REST,
        *extra,
    )


def test_vertex_job_id_is_the_run_key_and_a_duplicate_is_a_no_op(
    vertex_server, offline_vertex, vertex_compiled, home, source, monkeypatch, capsys
):
    monkeypatch.setattr(DuckDBWarehouse, "shared_across_pods", True)  # as BigQuery is
    package = vertex_compiled / "sensor.yaml"
    argv = _vertex(home, source, vertex_server, package, "--label", "team=ml", "--service-account", "runner@proj.iam")
    assert main(argv) == 0
    out = capsys.readouterr().out
    key = _decision(out)["run_key"]
    [create] = vertex_server.find("POST", "/pipelineJobs")
    assert create.path == "/v1/projects/proj/locations/europe-west4/pipelineJobs"
    assert create.query["pipelineJobId"] == key
    body = create.json
    assert body["displayName"] == key and body["pipelineSpec"]["pipelineInfo"]["name"] == "sensor"
    assert body["labels"] == {"app": "tagifai", "pipeline": "sensor", "run-key": key, "trigger": "cli", "team": "ml"}
    assert body["serviceAccount"] == "runner@proj.iam"
    params = body["runtimeConfig"]["parameterValues"]
    assert params["warehouse"] == f"duckdb:///{home / 'warehouse.duckdb'}"  # the watermark this sense read
    assert params["projects_source"] == source and params["mlflow_tracking_uri"] == "https://mlflow.example.com"
    assert "state_dir" not in params and "optuna_storage" not in params
    assert f"submitted {key} to vertex: projects/proj/locations/europe-west4/pipelineJobs/{key}" in out

    assert main(argv) == 0  # Vertex answers 409 ALREADY_EXISTS: nothing new, exit 0
    out = capsys.readouterr().out
    assert f"{key} already exists on vertex (projects/proj/locations/europe-west4/pipelineJobs/{key}, " in out
    assert len(vertex_server.find("POST", "/pipelineJobs")) == 2 and len(vertex_server.jobs) == 1


def test_vertex_refuses_a_warehouse_its_pods_cannot_reach(
    vertex_server, offline_vertex, vertex_compiled, home, source, capsys
):
    assert main(_vertex(home, source, vertex_server, vertex_compiled / "sensor.yaml")[1:]) == 1
    err = capsys.readouterr().err
    assert "DeliveryError: Vertex AI runs each step in its own pod: the warehouse must be one" in err
    assert vertex_server.requests == []


@pytest.mark.parametrize("compiled_now", [False, True])
def test_vertex_refuses_images_it_cannot_pull_before_any_request(
    vertex_server, offline_vertex, home, source, monkeypatch, capsys, compiled_now
):
    """The committed package names the placeholder registry; compiled now without --registry, localhost:5000."""
    monkeypatch.setattr(DuckDBWarehouse, "shared_across_pods", True)
    argv = _vertex(home, source, vertex_server, COMPILED / "vertex" / "sensor.yaml")[1:]
    if compiled_now:
        argv = [a for i, a in enumerate(argv) if a != "--package" and argv[i - 1] != "--package"]
    assert main(argv) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("tagifai sense: error: DeliveryError: Vertex AI cannot pull the images of sync, ")
    where = "localhost:5000: a registry on this machine" if compiled_now else "REGION-docker.pkg.dev/PROJECT/REPO"
    assert where in line and "--registry REGION-docker.pkg.dev/PROJECT/REPO (your Artifact Registry" in line
    assert vertex_server.requests == [] and offline_vertex == []


@pytest.mark.parametrize("param", ["projects_source=x.csv", "min_new_rows=1", "warehouse=bigquery://p/d"])
def test_parameters_the_sense_decides_on_come_from_its_flags(kfp_server, home, source, param, capsys):
    argv = _sense(home, source, "--submit", "kubeflow", "--host", kfp_server.url, "--param", param)
    assert main(argv[1:]) == 1
    err = capsys.readouterr().err
    assert f"--param {param.split('=')[0]}: the run must sense what this sense read" in err
    assert kfp_server.requests == []
