"""Operations on runs: ``tagifai runs list|get|cancel|retry`` (the real kfp.Client), named pipeline versions,
``tagifai vertex run --wait --timeout`` and Secret Manager references on Vertex AI (the real aiplatform client).

The servers are the loopback ones of loopback.py: recorded REST contracts (paths, bodies, answers), not Kubeflow
Pipelines or Vertex AI themselves.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from loopback import ARTIFACT_REGISTRY, COMPILED, FakeKFP, FakeVertex

from tagifai_cli.main import main

PKG = str(COMPILED / "kubeflow" / "dataops.yaml")
MLOPS = str(COMPILED / "kubeflow" / "mlops.yaml")
V1 = "/apis/v2beta1"


def _seed(server: FakeKFP, rid: str, state: str, **extra) -> None:
    """A run already on the server (as another client made it): it keeps its state."""
    server.runs[rid] = {
        "run_id": rid,
        "display_name": f"run {rid}",
        "experiment_id": "experiment-0",
        "state": state,
        "created_at": "2023-12-31T00:00:00Z",
        "finished_at": "1970-01-01T00:00:00Z",
        **extra,
    }


# --- tagifai runs list --------------------------------------------------------------------------------


def test_runs_list_on_kubeflow_newest_first_with_pipeline_versions(kfp_server, capsys):
    assert main(["submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--experiment", "nightly"]) == 0
    assert main(["submit", "mlops", "--package", MLOPS, "--host", kfp_server.url, "--version-name", "r1"]) == 0
    capsys.readouterr()
    n = len(kfp_server.requests)
    assert main(["runs", "list", "--host", kfp_server.url]) == 0  # --host implies Kubeflow
    lines = capsys.readouterr().out.splitlines()
    [listed] = [r for r in kfp_server.requests[n:] if r.path == f"{V1}/runs"]
    assert listed.method == "GET" and listed.query["sort_by"] == "created_at desc"
    assert "experiment_id" not in listed.query and int(listed.query["page_size"]) >= 20
    dataops, mlops = kfp_server.runs
    assert lines[0].startswith("run id") and len(lines) == 3
    assert lines[1].startswith(mlops) and "tagifai-mlops version r1" in lines[1]  # newest first
    assert lines[2].startswith(dataops) and "tagifai-dataops version tagifai-dataops-" in lines[2]
    assert all(" PENDING " in line for line in lines[1:])


def test_runs_list_by_experiment_pipeline_and_limit_as_json(kfp_server, capsys):
    for args in (["dataops", "--package", PKG, "--experiment", "nightly"], ["mlops", "--package", MLOPS]):
        assert main(["submit", *args, "--host", kfp_server.url]) == 0
    assert main(["submit", "dataops", "--package", PKG, "--host", kfp_server.url]) == 0
    capsys.readouterr()
    [nightly] = [e for e, v in kfp_server.experiments.items() if v["display_name"] == "nightly"]
    assert main(["runs", "list", "--kubeflow", "--host", kfp_server.url, "--experiment", "nightly", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["experiment_id"] for r in rows] == [nightly]
    assert kfp_server.find("GET", "/runs")[-1].query["experiment_id"] == nightly
    assert main(["runs", "list", "--host", kfp_server.url, "--pipeline", "dataops", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and {r["pipeline"] for r in rows} == {"tagifai-dataops"}
    assert main(["runs", "list", "--host", kfp_server.url, "--limit", "1", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["run_id"] == list(kfp_server.runs)[-1]  # the newest
    assert main(["runs", "list", "--host", kfp_server.url, "--experiment", "nope"]) == 1
    assert capsys.readouterr().err.strip().endswith(f"no experiment 'nope' on {kfp_server.url}")


def test_runs_list_pages_through_the_api_when_filtering_on_the_pipeline(capsys):
    """The API filters runs on their own fields only: the pipeline is filtered here, page after page."""
    with FakeKFP() as server:
        server.pipelines["p1"] = {"pipeline_id": "p1", "display_name": "tagifai-dataops"}
        server.versions["p1"] = [{"pipeline_id": "p1", "pipeline_version_id": "v1", "display_name": "release-1"}]
        for i in range(25):
            ref = {"pipeline_id": "p1" if i % 2 else "p2", "pipeline_version_id": "v1" if i % 2 else "v2"}
            _seed(server, f"run-{i:02d}", "SUCCEEDED", created_at=f"2024-01-01T00:00:{i:02d}Z")
            server.runs[f"run-{i:02d}"]["pipeline_version_reference"] = ref
        assert main(["runs", "list", "--host", server.url, "--pipeline", "dataops", "--limit", "10", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        pages = server.find("GET", "/runs")
    assert [r["run_id"] for r in rows] == [f"run-{i:02d}" for i in range(23, 3, -2)]
    assert {r["pipeline_version"] for r in rows} == {"release-1"}
    assert [p.query.get("page_token", "") for p in pages] == ["", "10"]
    assert all(p.query["page_size"] == "10" for p in pages)


def test_runs_without_a_subcommand_and_runs_list_stay_local(kfp_server, tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["runs", "--home", str(home)]) == 0
    assert "(no runs yet" in capsys.readouterr().out
    assert main(["runs", "list", "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert (home / "runs" / "index.html").exists()
    assert main(["runs", "list", "--home", str(home), "--experiment", "x"]) == 1
    assert "--experiment: for the runs on Kubeflow: add --kubeflow" in capsys.readouterr().err
    assert kfp_server.requests == []


# --- tagifai runs get -----------------------------------------------------------------------------------


def test_runs_get_shows_state_times_pipeline_version_and_error(capsys):
    with FakeKFP(run_states=("FAILED",)) as server:
        assert main(["submit", "dataops", "--package", PKG, "--host", server.url, "--version-name", "2024.06"]) == 0
        [rid] = server.runs
        capsys.readouterr()
        assert main(["runs", "get", rid, "--host", server.url]) == 0
        out = capsys.readouterr().out
        assert [r.path for r in server.requests if r.path.startswith(f"{V1}/runs")][-1] == f"{V1}/runs/{rid}"
    assert f"run        {rid} (dataops " in out
    assert "state      FAILED" in out and "finished   2024-01-02T00:00:00Z" in out
    assert "pipeline   tagifai-dataops version 2024.06" in out
    assert "error      task sync-projects failed" in out
    assert "parameters projects_source=https://" in out and f"/#/runs/details/{rid}" in out


def test_runs_get_of_an_unknown_run_is_one_line_naming_it(kfp_server, capsys):
    assert main(["runs", "get", "0b5c-missing", "--host", kfp_server.url]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"tagifai runs: error: DeliveryError: no run '0b5c-missing' on {kfp_server.url}: "
        "`tagifai runs list --kubeflow` lists them"
    )
    for verb in ("cancel", "retry"):
        assert main(["runs", verb, "0b5c-missing", "--host", kfp_server.url]) == 1
        assert "no run '0b5c-missing'" in capsys.readouterr().err
    assert not [r for r in kfp_server.requests if r.method == "POST"]


# --- tagifai runs cancel / retry ------------------------------------------------------------------------


def test_runs_cancel_terminates_a_running_run_and_waits(kfp_server, capsys):
    _seed(kfp_server, "run-a", "RUNNING")
    assert main(["runs", "cancel", "run-a", "--host", kfp_server.url, "--wait", "--poll-interval", "0.01"]) == 0
    [terminate] = [r for r in kfp_server.requests if r.method == "POST"]
    assert terminate.path == f"{V1}/runs/run-a:terminate" and not terminate.body.strip(b"{} ")
    out = capsys.readouterr().out
    assert "cancel requested (was RUNNING)" in out and "run-a: CANCELED" in out


def test_runs_cancel_of_a_finished_run_sends_nothing(kfp_server, capsys):
    _seed(kfp_server, "run-s", "SUCCEEDED")
    _seed(kfp_server, "run-c", "CANCELED")
    assert main(["runs", "cancel", "run-s", "--host", kfp_server.url]) == 1
    assert "run run-s is SUCCEEDED: nothing to cancel" in capsys.readouterr().err
    assert main(["runs", "cancel", "run-c", "--host", kfp_server.url]) == 0
    assert "is CANCELED already" in capsys.readouterr().out
    assert not [r for r in kfp_server.requests if r.method == "POST"]


def test_runs_retry_retries_a_failed_run_in_place(kfp_server, capsys):
    _seed(kfp_server, "run-f", "FAILED", error={"code": 2, "message": "task train failed"})
    assert main(["runs", "retry", "run-f", "--host", kfp_server.url, "--wait", "--poll-interval", "0.01"]) == 0
    [retry] = [r for r in kfp_server.requests if r.method == "POST"]
    assert retry.path == f"{V1}/runs/run-f:retry"
    out = capsys.readouterr().out
    assert "retry requested (was FAILED)" in out and "run-f: SUCCEEDED" in out
    assert len(kfp_server.runs) == 1  # the same run, not a new one


def test_runs_retry_of_a_run_that_did_not_fail_is_refused(kfp_server, capsys):
    _seed(kfp_server, "run-r", "RUNNING")
    _seed(kfp_server, "run-s", "SUCCEEDED")
    assert main(["runs", "retry", "run-r", "--host", kfp_server.url]) == 1
    assert "run run-r is RUNNING: only a CANCELED or FAILED run can be retried" in capsys.readouterr().err
    assert main(["runs", "retry", "run-s", "--host", kfp_server.url]) == 1
    assert "`tagifai submit` starts a new one" in capsys.readouterr().err
    assert not [r for r in kfp_server.requests if r.method == "POST"]


def test_run_operations_send_the_token(kfp_server, monkeypatch, capsys):
    monkeypatch.setenv("TAGIFAI_KFP_TOKEN", "sentinel-ops-token-4d1e")
    _seed(kfp_server, "run-a", "RUNNING")
    for argv in (["list", "--kubeflow"], ["get", "run-a"], ["cancel", "run-a"]):
        assert main(["runs", *argv, "--host", kfp_server.url]) == 0
    assert {r.headers.get("authorization") for r in kfp_server.requests} == {"Bearer sentinel-ops-token-4d1e"}
    out = capsys.readouterr()
    assert "sentinel-ops-token-4d1e" not in out.out + out.err


# --- named pipeline versions ------------------------------------------------------------------------------


def test_a_version_name_is_reused_for_the_same_package_and_refused_for_another(kfp_server, capsys):
    args = ["submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--version-name", "release-1"]
    assert main(args) == 0
    assert main(args) == 0
    [upload] = kfp_server.find("POST", "/pipelines/upload_version")
    assert upload.query["name"] == "release-1" and "tagifai content sha256:" in upload.query["description"]
    [pid] = kfp_server.pipelines
    release = kfp_server.versions[pid][-1]["pipeline_version_id"]
    assert f"version release-1 ({release}) already there" in capsys.readouterr().out
    runs = [r.json["pipeline_version_reference"]["pipeline_version_id"] for r in kfp_server.find("POST", "/runs")]
    assert runs == [release, release]
    n = len(kfp_server.runs)
    assert main([*args, "--caching", "on"]) == 1  # other content under the same name
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "tagifai submit: error: DeliveryError: pipeline version 'release-1' exists with other content"
    )
    assert line.endswith("give another --version-name")
    assert len(kfp_server.runs) == n and len(kfp_server.find("POST", "/pipelines/upload_version")) == 1
    # schedule takes it too; a new name is a new version of the same pipeline
    sched = ["schedule", "dataops", "--package", PKG, "--host", kfp_server.url, "--cron", "0 6 * * *"]
    assert main([*sched, "--version-name", "release-2"]) == 0
    body = kfp_server.find("POST", "/recurringruns")[0].json
    assert [v["display_name"] for v in kfp_server.versions[pid]] == ["tagifai-dataops", "release-1", "release-2"]
    assert (
        body["pipeline_version_reference"]["pipeline_version_id"] == kfp_server.versions[pid][-1]["pipeline_version_id"]
    )


def test_a_version_name_not_made_by_tagifai_is_refused_and_the_api_refuses_duplicates(kfp_server, capsys):
    assert main(["submit", "dataops", "--package", PKG, "--host", kfp_server.url]) == 0
    # the first version of a pipeline is named after it by the server, without tagifai's content digest
    assert (
        main(["submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--version-name", "tagifai-dataops"])
        == 1
    )
    assert "was not uploaded by tagifai (no content digest to compare)" in capsys.readouterr().err
    assert (
        main(["submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--no-upload", "--version-name", "x"])
        == 1
    )
    assert "not with --no-upload" in capsys.readouterr().err
    # what the loopback answers a duplicate name, as KFP does (the command checks first, so never sees it)
    import kfp_server_api

    from tagifai_cli.kubeflow import Connection, client

    [pid] = kfp_server.pipelines
    with pytest.raises(kfp_server_api.ApiException) as info:
        client(Connection(kfp_server.url)).upload_pipeline_version(PKG, "tagifai-dataops", pipeline_id=pid)
    assert info.value.status == 409


# --- Vertex AI: --wait --timeout, the pipeline root ---------------------------------------------------------

PARAMS = ["--param", "warehouse=bigquery://proj/tagifai", "--param", "mlflow_tracking_uri=https://mlflow.example.com"]


def _vertex(server, package, *extra):
    return [
        "vertex",
        "run",
        "mlops",
        "--package",
        package,
        "--project",
        "proj",
        "--pipeline-root",
        "gs://bucket/root",
        *PARAMS,
        "--api-endpoint",
        server.url,
        "--api-transport",
        "rest",
        "--job-id",
        "mlops-t",
        *extra,
    ]


def test_vertex_wait_timeout_exits_1_and_leaves_the_job_running(offline_vertex, vertex_compiled, capsys):
    with FakeVertex(job_states=("PIPELINE_STATE_RUNNING",)) as server:
        began = time.monotonic()
        code = main(
            _vertex(server, str(vertex_compiled / "mlops.yaml"), "--wait", "--timeout", "1.5", "--poll-interval", "0.1")
        )
        took = time.monotonic() - began
        assert not [r for r in server.requests if r.path.endswith(":cancel")]
    assert code == 1 and 1.5 <= took < 15
    err = capsys.readouterr().err
    assert "pipeline job mlops-t still RUNNING after 1.5 s; it keeps running on Vertex AI" in err


def test_vertex_cancel_on_timeout_cancels_the_job(offline_vertex, vertex_compiled, capsys):
    with FakeVertex(job_states=("PIPELINE_STATE_RUNNING",)) as server:
        argv = _vertex(server, str(vertex_compiled / "mlops.yaml"), "--wait", "--timeout", "0.3")
        assert main([*argv, "--poll-interval", "0.05", "--cancel-on-timeout"]) == 1
        [cancel] = [r for r in server.requests if r.method == "POST" and r.path.endswith(":cancel")]
    assert cancel.path == "/v1/projects/proj/locations/us-central1/pipelineJobs/mlops-t:cancel"
    assert "cancel requested" in capsys.readouterr().err


def test_vertex_a_job_done_in_time_is_not_a_timeout(offline_vertex, vertex_compiled, capsys):
    with FakeVertex() as server:
        argv = _vertex(server, str(vertex_compiled / "mlops.yaml"), "--wait", "--timeout", "30")
        assert main([*argv, "--poll-interval", "0.01"]) == 0
    assert "mlops SUCCEEDED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "root, extra, message",
    [
        (None, [], "no pipeline root: --pipeline-root gs://BUCKET/PATH (or TAGIFAI_VERTEX_PIPELINE_ROOT)"),
        ("/local/root", [], "pipeline root '/local/root': expected gs://BUCKET/PATH"),
        ("gs://My_Bucket/root", [], "a bucket name is lowercase"),
        ("gs://b/r", ["--timeout", "10"], "--timeout: only with --wait"),
    ],
)
def test_vertex_run_checks_root_and_flags_before_any_request(
    vertex_server, offline_vertex, capsys, root, extra, message
):
    argv = [
        "vertex",
        "run",
        "mlops",
        "--package",
        MLOPS,
        "--project",
        "proj",
        *PARAMS,
        "--api-endpoint",
        vertex_server.url,
    ]
    argv += (["--pipeline-root", root] if root else []) + extra
    assert main(argv) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert message in line
    assert vertex_server.requests == [] and offline_vertex == []


# --- Vertex AI: secrets as Secret Manager references --------------------------------------------------------

SENTINEL = "sentinel-mlflow-token-a93b"
REFERENCE = "sm://projects/proj/secrets/mlflow-token/versions/latest"


def test_a_secret_reference_travels_as_a_reference_never_as_its_value(
    vertex_server, offline_vertex, monkeypatch, tmp_path, capsys
):
    """The step reads the reference itself (tests/unit/test_secrets.py): the command reads no secret, and the
    job (compiled spec, parameters, labels) holds the reference in the step's environment, no value."""
    from pipelines.platform import DEFAULT_CONFIG
    from tagifai import secrets

    def no_secret_manager(*args, **kwargs):
        raise AssertionError("the command read a secret")

    monkeypatch.setattr(secrets, "read_secret_manager", no_secret_manager)
    platform = yaml.safe_load(DEFAULT_CONFIG.read_text())
    platform.setdefault("vertex", {}).setdefault("env", {})["TAGIFAI_MLFLOW_TRACKING_TOKEN"] = REFERENCE
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump(platform))
    monkeypatch.setenv("TAGIFAI_MLFLOW_TRACKING_TOKEN", SENTINEL)  # a value on this machine: never sent either
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SENTINEL)
    argv = ["vertex", "run", "mlops", "--registry", ARTIFACT_REGISTRY, "--platform-config", str(config)]
    argv += ["--project", "proj", "--pipeline-root", "gs://b/r", *PARAMS, "--api-endpoint", vertex_server.url]
    assert main(["--debug", *argv, "--api-transport", "rest"]) == 0
    [create] = vertex_server.requests
    body = create.body.decode()
    assert SENTINEL not in body
    spec = create.json["pipelineSpec"]
    envs = [e["container"].get("env", []) for e in spec["deploymentSpec"]["executors"].values()]
    assert all({"name": "TAGIFAI_MLFLOW_TRACKING_TOKEN", "value": REFERENCE} in env for env in envs)
    params = create.json["runtimeConfig"]["parameterValues"]
    assert not any("token" in key for key in params) and REFERENCE not in json.dumps(params)
    out = capsys.readouterr()
    assert SENTINEL not in out.out + out.err
