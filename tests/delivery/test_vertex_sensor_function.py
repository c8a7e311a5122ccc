"""The Cloud Run function of functions/vertex_sensor: real CloudEvents posted over HTTP to the function served
by the Functions Framework on a loopback port, with a loopback Cloud Storage holding the projects source and a
loopback Vertex AI REST API recording what aiplatform sends (anonymous credentials).

The warehouse is a DuckDB file in tmp_path. Vertex AI refuses a warehouse its pods cannot reach, so these
tests let the DuckDB file stand for one (a BigQuery dataset in production): the watermark the function reads
is the one the pipeline it submits would advance, and the job's ``warehouse`` parameter says so.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from loopback import COMPILED, ROOT, FakeGCS

from tagifai.sensor import advance, sense
from tagifai.warehouse.duckdb import DuckDBWarehouse

FUNCTION = ROOT / "functions" / "vertex_sensor"
DATA = ROOT / "data" / "madewithml"
BUCKET = "tagifai-data"
SOURCE = f"gs://{BUCKET}/madewithml/projects.csv"
COMMITTED = COMPILED / "vertex" / "sensor.yaml"  # names the placeholder registry: refused
SECRETS = {
    "TAGIFAI_KFP_TOKEN": "sentinel-kfp-token-3c1d",
    "MLFLOW_TRACKING_PASSWORD": "sentinel-mlflow-password-e5a7",
    "AWS_SECRET_ACCESS_KEY": "sentinel-aws-secret-0b9f",
}


def _csv(rows: int) -> bytes:
    """The first ``rows`` projects by creation time, as the source file holds them."""
    df = pd.read_csv(DATA / "projects.csv", dtype=str, keep_default_na=False)
    return df.sort_values(["created_on", "id"]).head(rows).to_csv(index=False).encode()


@pytest.fixture(scope="module")
def served():
    """The function as Cloud Run serves it: functions_framework.create_app on a real HTTP server."""
    import functions_framework
    from werkzeug.serving import make_server

    app = functions_framework.create_app(target="on_event", source=str(FUNCTION / "main.py"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    sys.modules.pop("main", None)  # the framework registered the function's module under its file's name
    if str(FUNCTION) in sys.path:
        sys.path.remove(str(FUNCTION))


@pytest.fixture
def gcs(monkeypatch):
    with FakeGCS() as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        yield server


@pytest.fixture
def env(tmp_path, monkeypatch, gcs, vertex_server, offline_vertex, vertex_compiled):
    """The function's environment: settings (TAGIFAI_*) and its own SENSOR_* variables."""
    monkeypatch.setattr(DuckDBWarehouse, "shared_across_pods", True)  # the DuckDB file stands for BigQuery
    warehouse = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    values = {
        "TAGIFAI_DATA_DIR": f"gs://{BUCKET}/madewithml",
        "TAGIFAI_WAREHOUSE": warehouse,
        "TAGIFAI_MLFLOW_TRACKING_URI": "https://mlflow.example.com",
        "TAGIFAI_HOME": str(tmp_path / "home"),
        "TAGIFAI_VERTEX_PROJECT": "proj",
        "TAGIFAI_VERTEX_REGION": "europe-west4",
        "TAGIFAI_VERTEX_PIPELINE_ROOT": "gs://proj-tagifai/pipeline-root",
        "TAGIFAI_VERTEX_SERVICE_ACCOUNT": "runner@proj.iam.gserviceaccount.com",
        "TAGIFAI_VERTEX_API_ENDPOINT": vertex_server.url,
        "SENSOR_TEMPLATE": str(vertex_compiled / "sensor.yaml"),  # compiled for an Artifact Registry
        "SENSOR_API_TRANSPORT": "rest",
        "SENSOR_PARAMETERS": json.dumps({"num_trials": 5}),
        **SECRETS,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    gcs.objects[SOURCE] = _csv(100)
    gcs.objects[f"gs://{BUCKET}/madewithml/tags.csv"] = (DATA / "tags.csv").read_bytes()
    return {"warehouse": warehouse, "gcs": gcs, "vertex": vertex_server, "template": vertex_compiled / "sensor.yaml"}


def _post(url: str, kind: str, data: dict, event_id: str = "1") -> tuple[int, str]:
    """A CloudEvent in binary content mode (ce-* headers, the data as the JSON body), as Eventarc sends it."""
    from cloudevents.conversion import to_binary
    from cloudevents.http import CloudEvent

    if kind.startswith("google.cloud.storage."):
        source = f"//storage.googleapis.com/projects/_/buckets/{BUCKET}"
    else:
        source = "//pubsub.googleapis.com/projects/proj/topics/tagifai"
    headers, body = to_binary(CloudEvent({"type": kind, "source": source, "id": event_id}, data))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _finalized(name: str, bucket: str = BUCKET) -> dict:
    return {"bucket": bucket, "name": name, "generation": "1717000000000000", "contentType": "text/csv"}


def _outcomes(text: str) -> list[dict]:
    """The function's structured log entries (JSON lines with an outcome)."""
    entries = []
    for line in text.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "outcome" in entry:
                entries.append(entry)
    return entries


def _expected_key(warehouse: str, csv: bytes, tmp_path: Path) -> str:
    local = tmp_path / "expected.csv"
    local.write_bytes(csv)
    return sense(str(local), warehouse, 50, 30).run_key


def test_a_new_source_file_submits_the_sensor_pipeline_once_under_its_run_key(served, env, tmp_path, capfd):
    vertex = env["vertex"]
    key = _expected_key(env["warehouse"], env["gcs"].objects[SOURCE], tmp_path)

    status, body = _post(served, "google.cloud.storage.object.v1.finalized", _finalized("madewithml/projects.csv"))
    assert (status, body) == (200, "OK")
    [create] = vertex.find("POST", "/pipelineJobs")
    assert create.path == "/v1/projects/proj/locations/europe-west4/pipelineJobs"
    assert create.query["pipelineJobId"] == key and re.fullmatch(r"continual-[0-9a-f]{12}", key)
    job = create.json
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "sensor"
    assert job["pipelineSpec"] == json.loads(json.dumps(_spec(env["template"])))  # the compiled template, as it is
    assert job["displayName"] == key and job["serviceAccount"] == "runner@proj.iam.gserviceaccount.com"
    assert job["labels"] == {"app": "tagifai", "pipeline": "sensor", "run-key": key, "trigger": "storage"}
    runtime = job["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://proj-tagifai/pipeline-root"
    params = runtime["parameterValues"]
    # the run senses what this sense read: the same source, warehouse (watermark) and thresholds
    assert params["projects_source"] == SOURCE and params["tags_source"] == f"gs://{BUCKET}/madewithml/tags.csv"
    assert params["warehouse"] == env["warehouse"] and params["mlflow_tracking_uri"] == "https://mlflow.example.com"
    assert (params["min_new_rows"], params["max_age_days"]) == (50, 30.0)
    assert params["approval"] == "manual" and params["num_trials"] == 5  # SENSOR_PARAMETERS over the settings
    assert "state_dir" not in params and "optuna_storage" not in params  # nothing of this machine's state folder
    [download] = [r for r in env["gcs"].requests if r.query.get("alt") == "media"]
    assert download.path == f"/download/storage/v1/b/{BUCKET}/o/madewithml%2Fprojects.csv"
    [outcome] = _outcomes(capfd.readouterr().out)
    assert outcome["outcome"] == "submitted" and outcome["run_key"] == key and outcome["severity"] == "NOTICE"
    assert outcome["job"] == f"projects/proj/locations/europe-west4/pipelineJobs/{key}"

    # the same event again (a redelivery), then the same data through a Pub/Sub notification: 409, no new job
    status, body = _post(served, "google.cloud.storage.object.v1.finalized", _finalized("madewithml/projects.csv"))
    assert (status, body) == (200, "OK")
    notification = {
        "message": {
            "attributes": {"bucketId": BUCKET, "objectId": "madewithml/projects.csv", "eventType": "OBJECT_FINALIZE"},
            "data": base64.b64encode(json.dumps(_finalized("madewithml/projects.csv")).encode()).decode(),
            "messageId": "7",
        },
        "subscription": "projects/proj/subscriptions/tagifai",
    }
    assert _post(served, "google.cloud.pubsub.topic.v1.messagePublished", notification, "2") == (200, "OK")
    creates = vertex.find("POST", "/pipelineJobs")
    assert len(creates) == 3 and {r.query["pipelineJobId"] for r in creates} == {key}
    assert list(vertex.jobs) == [f"projects/proj/locations/europe-west4/pipelineJobs/{key}"]  # still one job
    outcomes = _outcomes(capfd.readouterr().out)
    assert [o["outcome"] for o in outcomes] == ["exists", "exists"]
    assert all(o["severity"] == "INFO" and o["run_key"] == key and "already exists" in o["message"] for o in outcomes)
    assert outcomes[0]["state"] in ("PENDING", "RUNNING", "SUCCEEDED")  # the existing job's state, looked up


def _spec(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_objects_that_are_not_the_source_are_ignored_with_a_reason(served, env, capfd):
    for name, bucket in (("madewithml/tags.csv", BUCKET), ("madewithml/projects.csv", "another-bucket")):
        assert _post(served, "google.cloud.storage.object.v1.finalized", _finalized(name, bucket)) == (200, "OK")
    removed = {
        "message": {
            "attributes": {"bucketId": BUCKET, "objectId": "madewithml/projects.csv", "eventType": "OBJECT_DELETE"}
        }
    }
    assert _post(served, "google.cloud.pubsub.topic.v1.messagePublished", removed) == (200, "OK")
    assert env["vertex"].requests == [] and env["gcs"].requests == []  # nothing read, nothing sent
    outcomes = _outcomes(capfd.readouterr().out)
    assert [o["outcome"] for o in outcomes] == ["ignored"] * 3
    assert f"gs://{BUCKET}/madewithml/tags.csv is not the projects source (watching {SOURCE})" in outcomes[0]["message"]
    assert "gs://another-bucket/madewithml/projects.csv is not the projects source" in outcomes[1]["message"]
    assert "OBJECT_DELETE, not OBJECT_FINALIZE" in outcomes[2]["message"]


def test_below_the_threshold_nothing_is_submitted(served, env, tmp_path, capfd):
    warehouse = env["warehouse"]
    first = tmp_path / "first.csv"
    first.write_bytes(_csv(100))
    advance(warehouse, sense(str(first), warehouse, 50, 30))  # the last run processed the first 100 rows
    env["gcs"].objects[SOURCE] = _csv(110)  # 10 new rows < 50

    assert _post(served, "google.cloud.storage.object.v1.finalized", _finalized("madewithml/projects.csv")) == (
        200,
        "OK",
    )
    assert env["vertex"].requests == []
    [outcome] = _outcomes(capfd.readouterr().out)
    assert outcome["outcome"] == "no-retrain" and outcome["new_rows"] == 10
    assert outcome["reason"] == "10 new row(s) < 50"


def test_a_watched_prefix_and_a_scheduler_tick_sense_the_source(served, env, monkeypatch, capfd):
    """SENSOR_WATCH names a folder (a loader writes several files); a Pub/Sub message naming no object (a
    Cloud Scheduler tick) senses too."""
    monkeypatch.setenv("SENSOR_WATCH", f"gs://{BUCKET}/loads/")
    assert _post(served, "google.cloud.storage.object.v1.finalized", _finalized("loads/2024-06-01/part-0.csv")) == (
        200,
        "OK",
    )
    tick = {"message": {"data": base64.b64encode(b"sense").decode(), "messageId": "9"}}
    assert _post(served, "google.cloud.pubsub.topic.v1.messagePublished", tick, "3") == (200, "OK")
    outcomes = _outcomes(capfd.readouterr().out)
    assert [o["outcome"] for o in outcomes] == ["submitted", "exists"]
    [job] = env["vertex"].jobs.values()
    assert job["labels"]["trigger"] == "storage"


def test_other_event_types_are_ignored(served, env, capfd):
    assert _post(served, "google.cloud.storage.object.v1.deleted", _finalized("madewithml/projects.csv")) == (200, "OK")
    assert env["vertex"].requests == []
    [outcome] = _outcomes(capfd.readouterr().out)
    assert outcome["outcome"] == "ignored" and "google.cloud.storage.object.v1.deleted" in outcome["message"]


def test_a_warehouse_vertex_pods_cannot_reach_is_an_error_before_any_job(served, env, monkeypatch, capfd):
    monkeypatch.setattr(DuckDBWarehouse, "shared_across_pods", False)
    status, _ = _post(served, "google.cloud.storage.object.v1.finalized", _finalized("madewithml/projects.csv"))
    assert status == 500  # the event is answered as failed (and redelivered when the trigger retries)
    assert env["vertex"].requests == []
    [outcome] = _outcomes(capfd.readouterr().out)
    assert outcome["outcome"] == "error" and "the warehouse must be one every pod reaches" in outcome["message"]


def test_a_template_naming_images_vertex_cannot_pull_is_an_error_before_any_job(served, env, monkeypatch, capfd):
    monkeypatch.setenv("SENSOR_TEMPLATE", str(COMMITTED))
    status, _ = _post(served, "google.cloud.storage.object.v1.finalized", _finalized("madewithml/projects.csv"))
    assert status == 500 and env["vertex"].requests == []
    [outcome] = _outcomes(capfd.readouterr().out)
    assert outcome["outcome"] == "error" and "Vertex AI cannot pull the images of sync, " in outcome["message"]
    assert f"compile {COMMITTED} again with `tagifai compile --target vertex`" in outcome["message"]


def test_parameters_the_sense_decides_on_cannot_be_overridden(served, env, monkeypatch, capfd):
    monkeypatch.setenv("SENSOR_PARAMETERS", json.dumps({"projects_source": "gs://elsewhere/p.csv"}))
    status, _ = _post(served, "google.cloud.storage.object.v1.finalized", _finalized("madewithml/projects.csv"))
    assert status == 500 and env["vertex"].requests == []
    [outcome] = _outcomes(capfd.readouterr().out)
    assert "SENSOR_PARAMETERS projects_source: the run must sense what this sense read" in outcome["message"]


def test_nothing_sent_or_logged_carries_a_secret(served, env, capfd):
    assert _post(served, "google.cloud.storage.object.v1.finalized", _finalized("madewithml/projects.csv")) == (
        200,
        "OK",
    )
    captured = capfd.readouterr()
    sent = [r for server in (env["vertex"], env["gcs"]) for r in server.requests]
    assert len(env["vertex"].find("POST", "/pipelineJobs")) == 1
    for request in sent:
        assert "authorization" not in request.headers  # anonymous here; the function's own identity on Cloud Run
        text = json.dumps(request.headers) + request.path + json.dumps(request.query) + request.body.decode()
        for secret in SECRETS.values():
            assert secret not in text
    for secret in SECRETS.values():
        assert secret not in captured.out + captured.err


# --- what is deployed


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name.strip().lower())] = re.split(r"[\s;\\]", version.strip())[0]
    return pins


def test_the_deployed_requirements_are_the_locked_versions_and_name_the_project_wheel():
    text = (FUNCTION / "requirements.txt").read_text()
    deployed, locked = _pins(text), _pins((ROOT / "requirements.lock").read_text())
    # pip freeze leaves setuptools out of requirements.lock; the images pin it in build.txt
    locked.update(_pins((ROOT / "images" / "requirements" / "build.txt").read_text()))
    assert {"functions-framework", "cloudevents", "google-cloud-aiplatform", "duckdb", "pyyaml"} <= set(deployed)
    assert {name: v for name, v in deployed.items() if locked.get(name) != v} == {}
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"./tagifai_pipelines-{version}-py3-none-any.whl" in text.splitlines()


def test_the_readme_deploys_the_entry_point_on_object_finalize():
    readme = (FUNCTION / "README.md").read_text()
    assert "--entry-point=on_event" in readme and "--gen2" in readme
    assert "--trigger-event-filters=type=google.cloud.storage.object.v1.finalized" in readme
