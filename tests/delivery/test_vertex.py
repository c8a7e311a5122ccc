"""tagifai vertex run / schedule: google.cloud.aiplatform objects built offline (anonymous credentials),
then sent to a loopback Vertex AI REST API that records the requests.
"""

import pytest
from google.auth.credentials import AnonymousCredentials
from loopback import ARTIFACT_REGISTRY, COMPILED, all_tasks

from tagifai import steps as step_table
from tagifai_cli.images import content_tags
from tagifai_cli.main import main
from tagifai_cli.packaging import DeliveryError

MLOPS = str(COMPILED / "vertex" / "mlops.yaml")
PARAMS = ["--param", "warehouse=bigquery://proj/tagifai", "--param", "mlflow_tracking_uri=https://mlflow.example.com"]
STEPS = ("extract", "validate", "optimize", "train", "evaluate", "notify")  # the steps of mlops (notify: its exit task)
DIGEST = "sha256:" + "c" * 64
REST = ["--api-transport", "rest"]
REGISTRY = ["--registry", ARTIFACT_REGISTRY]  # one Vertex AI pulls from


def _pushed(monkeypatch, steps):
    """Pushed digests (as `tagifai images push` leaves them) for ``steps`` only; no container engine is asked."""
    from tagifai_cli import images

    def pushed_reference(step, registry=None, tag=None):
        return f"{registry}/tagifai-{step}@{DIGEST}" if step in steps else None

    monkeypatch.setattr(images, "pushed_reference", pushed_reference)


def _sent_images(request) -> set[str]:
    body = request.json
    job = body.get("pipelineSpec") or body["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]
    return {e["container"]["image"] for e in job["deploymentSpec"]["executors"].values()}


def _job(**overrides):
    from tagifai_cli import vertex

    kwargs = dict(
        project="proj",
        region="europe-west4",
        pipeline_root="gs://bucket/pipeline-root",
        parameter_values={"num_trials": 5, "warehouse": "bigquery://proj/tagifai"},
        job_labels={"app": "tagifai", "pipeline": "mlops", "team": "ml"},
        enable_caching=False,
        display_name="tagifai-mlops",
        job_id="mlops-test",
        credentials=AnonymousCredentials(),
    )
    kwargs.update(overrides)
    return vertex.build_job(MLOPS, **kwargs)


def test_pipeline_job_is_built_offline_with_runtime_config_root_labels_parameters_and_caching():
    job = _job()
    resource = job._gca_resource
    assert job.project == "proj" and job.location == "europe-west4" and job.job_id == "mlops-test"
    assert resource.display_name == "tagifai-mlops"
    assert dict(resource.labels) == {"app": "tagifai", "pipeline": "mlops", "team": "ml"}
    runtime = resource.runtime_config
    assert runtime.gcs_output_directory == "gs://bucket/pipeline-root"
    assert dict(runtime.parameter_values) == {"num_trials": 5, "warehouse": "bigquery://proj/tagifai"}
    tasks = all_tasks(resource.pipeline_spec)
    assert "train" in tasks and all(
        t.get("cachingOptions", {}).get("enableCache", False) is False for t in tasks.values()
    )


def test_caching_left_to_the_compiled_per_step_settings_when_not_overridden():
    tasks = all_tasks(_job(enable_caching=None)._gca_resource.pipeline_spec)
    assert tasks["validate-dataset"]["cachingOptions"]["enableCache"] is True
    assert not tasks["extract"]["cachingOptions"].get("enableCache", False)  # mlops alone: reads the table as it is


def test_the_kubeflow_flavour_is_refused_with_what_to_do(tmp_path):
    from google.cloud import aiplatform

    from tagifai_cli.options import load_package

    with pytest.raises(Exception, match="expected a single document"):  # what Vertex's loader says
        aiplatform.PipelineJob(
            display_name="x",
            template_path=str(COMPILED / "kubeflow" / "mlops.yaml"),
            pipeline_root="gs://b/r",
            project="p",
            location="us-central1",
            credentials=AnonymousCredentials(),
        )
    with pytest.raises(DeliveryError, match="compile it with `tagifai compile --target vertex`"):
        load_package("mlops", str(COMPILED / "kubeflow" / "mlops.yaml"), "vertex", tmp_path)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"mlflow_tracking_uri": "https://m"}, "the warehouse must be one every pod reaches"),
        (
            {"warehouse": "duckdb:////data/w.duckdb", "mlflow_tracking_uri": "https://m"},
            "the warehouse must be one every pod reaches",
        ),
        ({"warehouse": "bigquery://p/d", "mlflow_tracking_uri": "sqlite:///m.db"}, "MLflow must be a tracking server"),
    ],
)
def test_embedded_backends_are_refused_on_vertex(given, message):
    from tagifai_cli import vertex
    from tagifai_cli.packaging import pipeline_spec

    with pytest.raises(DeliveryError, match=message):
        vertex.parameters(pipeline_spec(str(COMPILED / "vertex" / "continual.yaml")), given)


def test_parameters_default_from_settings_and_dbt_follows_bigquery(monkeypatch):
    from tagifai_cli import vertex
    from tagifai_cli.packaging import pipeline_spec

    monkeypatch.setenv("TAGIFAI_WAREHOUSE", "bigquery://proj/ds")
    monkeypatch.setenv("TAGIFAI_MLFLOW_TRACKING_URI", "https://mlflow.example.com")
    params = vertex.parameters(pipeline_spec(str(COMPILED / "vertex" / "continual.yaml")), {"num_trials": "7"})
    assert params["warehouse"] == "bigquery://proj/ds" and "dbt_target" not in params  # the warehouse's own target
    assert params["mlflow_tracking_uri"] == "https://mlflow.example.com" and params["num_trials"] == 7
    assert params["projects_source"].startswith("https://")


def test_bad_labels_and_roots_are_refused():
    from tagifai_cli import vertex

    with pytest.raises(DeliveryError, match="label Team"):
        vertex.labels("mlops", {"Team": "ml"})
    with pytest.raises(DeliveryError, match="expected gs://"):
        _job(pipeline_root="/local/path")


def test_vertex_run_submits_the_job_and_waits(vertex_server, offline_vertex, monkeypatch, capsys):
    from google.cloud.aiplatform import pipeline_jobs

    monkeypatch.setattr(pipeline_jobs, "_JOB_WAIT_TIME", 0.01)
    code = main(
        [
            "--debug",
            "vertex",
            "run",
            "mlops",
            *REGISTRY,
            "--project",
            "proj",
            "--region",
            "europe-west4",
            "--pipeline-root",
            "gs://bucket/root",
            *PARAMS,
            "--param",
            "num_trials=5",
            "--label",
            "team=ml",
            "--caching",
            "off",
            "--service-account",
            "runner@proj.iam.gserviceaccount.com",
            "--job-id",
            "mlops-1",
            "--api-endpoint",
            vertex_server.url,
            "--api-transport",
            "rest",
            "--wait",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "mlops SUCCEEDED" in out
    create = vertex_server.requests[0]
    assert (create.method, create.path) == ("POST", "/v1/projects/proj/locations/europe-west4/pipelineJobs")
    assert create.query["pipelineJobId"] == "mlops-1"
    body = create.json
    assert body["displayName"] == "tagifai-mlops" and body["serviceAccount"] == "runner@proj.iam.gserviceaccount.com"
    assert body["labels"] == {"app": "tagifai", "pipeline": "mlops", "team": "ml"}
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    assert body["runtimeConfig"]["parameterValues"] == {
        "warehouse": "bigquery://proj/tagifai",
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "num_trials": 5,
    }
    spec = body["pipelineSpec"]
    assert spec["pipelineInfo"]["name"] == "mlops" and "platforms" not in spec
    assert all(not t["cachingOptions"].get("enableCache", False) for t in spec["root"]["dag"]["tasks"].values())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    # no --tag: each step's content tag, the one `tagifai images build` gives the image of these sources
    tags = content_tags()
    assert images == {f"{ARTIFACT_REGISTRY}/tagifai-{s}:{tags[s]}" for s in STEPS}
    assert all(tags[s].startswith("c-") for s in STEPS)
    assert offline_vertex == ["gs://bucket/root"]  # aiplatform checks the root's bucket before submitting
    polls = vertex_server.requests[1:]  # polled to the final state
    assert len(polls) >= 2 and {(r.method, r.path) for r in polls} == {("GET", create.path + "/mlops-1")}


def test_vertex_run_compiles_for_the_registry_setting(vertex_server, offline_vertex):
    """Images come from Artifact Registry through the same registry setting as everywhere."""
    code = main(
        [
            "--debug",
            "vertex",
            "run",
            "mlops",
            "--registry",
            "europe-west4-docker.pkg.dev/proj/tagifai",
            "--tag",
            "v1",
            "--project",
            "proj",
            "--pipeline-root",
            "gs://b/r",
            *PARAMS,
            "--api-endpoint",
            vertex_server.url,
            "--api-transport",
            "rest",
        ]
    )
    assert code == 0
    assert _sent_images(vertex_server.requests[0]) == {
        f"europe-west4-docker.pkg.dev/proj/tagifai/tagifai-{s}:v1" for s in STEPS
    }


def test_a_failed_vertex_job_exits_1(offline_vertex, vertex_compiled, monkeypatch, capsys):
    from google.cloud.aiplatform import pipeline_jobs
    from loopback import FakeVertex

    monkeypatch.setattr(pipeline_jobs, "_JOB_WAIT_TIME", 0.01)
    with FakeVertex(job_states=("PIPELINE_STATE_FAILED",)) as server:
        code = main(
            [
                "vertex",
                "run",
                "mlops",
                "--package",
                str(vertex_compiled / "mlops.yaml"),
                "--project",
                "p",
                "--pipeline-root",
                "gs://b/r",
                *PARAMS,
                "--api-endpoint",
                server.url,
                "--api-transport",
                "rest",
                "--wait",
            ]
        )
    assert code == 1 and "mlops FAILED" in capsys.readouterr().out


def test_vertex_schedule_creates_a_schedule_one_run_at_a_time(vertex_server, offline_vertex, vertex_compiled, capsys):
    code = main(
        [
            "--debug",
            "vertex",
            "schedule",
            "continual",
            "--package",
            str(vertex_compiled / "continual.yaml"),
            "--project",
            "proj",
            "--region",
            "us-central1",
            "--pipeline-root",
            "gs://b/r",
            *PARAMS,
            "--cron",
            "0 6 * * 1",
            "--timezone",
            "Europe/Paris",
            "--start",
            "2024-06-01",
            "--service-account",
            "runner@proj.iam.gserviceaccount.com",
            "--api-endpoint",
            vertex_server.url,
            "--api-transport",
            "rest",
        ]
    )
    assert code == 0
    [create] = vertex_server.find("POST", "/schedules")
    assert create.path == "/v1/projects/proj/locations/us-central1/schedules"
    body = create.json
    assert body["cron"] == "TZ=Europe/Paris 0 6 * * 1" and body["displayName"] == "tagifai-continual-schedule"
    assert int(body["maxConcurrentRunCount"]) == 1 and not body.get("allowQueueing", False)
    assert body["startTime"].startswith("2024-06-01T00:00:00")
    job = body["createPipelineJobRequest"]["pipelineJob"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://b/r"
    assert "dbt_target" not in job["runtimeConfig"]["parameterValues"]  # the step takes the warehouse's target
    assert job["serviceAccount"] == "runner@proj.iam.gserviceaccount.com"
    assert body["createPipelineJobRequest"]["parent"] == "projects/proj/locations/us-central1"


# --- the shared package options (tagifai_cli.options) and the Vertex settings (TAGIFAI_VERTEX_*)


def test_vertex_run_and_schedule_compile_with_the_pushed_digests(vertex_server, offline_vertex, monkeypatch):
    _pushed(monkeypatch, set(step_table.NAMES))
    registry = "europe-west4-docker.pkg.dev/proj/tagifai"
    common = [
        "mlops",
        "--by-digest",
        "--registry",
        registry,
        "--project",
        "proj",
        "--pipeline-root",
        "gs://b/r",
        *PARAMS,
        "--api-endpoint",
        vertex_server.url,
        *REST,
    ]
    assert main(["--debug", "vertex", "run", *common]) == 0
    assert main(["--debug", "vertex", "schedule", *common, "--cron", "0 6 * * *"]) == 0
    [run] = vertex_server.find("POST", "/pipelineJobs")
    [schedule] = vertex_server.find("POST", "/schedules")
    assert _sent_images(run) == _sent_images(schedule) == {f"{registry}/tagifai-{s}@{DIGEST}" for s in STEPS}


def test_vertex_by_digest_without_pushed_digests_is_one_line_naming_the_missing_steps(
    vertex_server, offline_vertex, monkeypatch, capsys
):
    pushed = {"sync", "validate", "transform", "extract"}
    _pushed(monkeypatch, pushed)
    missing = [n for n in step_table.NAMES if n not in pushed]
    tags = content_tags()
    common = [
        "mlops",
        "--by-digest",
        "--project",
        "proj",
        "--pipeline-root",
        "gs://b/r",
        *PARAMS,
        "--api-endpoint",
        vertex_server.url,
        *REST,
    ]
    for command in (["run"], ["schedule", "--cron", "0 6 * * *"]):
        assert main(["vertex", *command, *common]) == 1
        [line] = capsys.readouterr().err.splitlines()
        assert line == (
            f"tagifai vertex: error: DeliveryError: --by-digest: no pushed digest for {', '.join(missing)}; "
            "run `tagifai images build` and `tagifai images push` first (looked up in localhost:5000: "
            + ", ".join(f"{n}:{tags[n]}" for n in missing)
            + ")"
        )
    assert vertex_server.requests == [] and offline_vertex == []  # refused before building the job


def test_vertex_compile_flags_with_a_package_are_refused(vertex_server, offline_vertex, capsys):
    assert (
        main(
            [
                "vertex",
                "run",
                "mlops",
                "--package",
                MLOPS,
                "--tag",
                "v1",
                "--project",
                "proj",
                "--pipeline-root",
                "gs://b/r",
                *PARAMS,
                "--api-endpoint",
                vertex_server.url,
                *REST,
            ]
        )
        == 1
    )
    assert "--tag: only when compiling" in capsys.readouterr().err
    assert vertex_server.requests == []


def test_vertex_settings_come_from_the_environment_when_no_flag_is_given(vertex_server, offline_vertex, monkeypatch):
    for key, value in {
        "VERTEX_PROJECT": "env-proj",
        "VERTEX_REGION": "europe-west1",
        "VERTEX_PIPELINE_ROOT": "gs://env-bucket/root",
        "VERTEX_SERVICE_ACCOUNT": "env-runner@env-proj.iam.gserviceaccount.com",
        "VERTEX_API_ENDPOINT": vertex_server.url,
        "WAREHOUSE": "bigquery://env-proj/tagifai",
        "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
        "REGISTRY": "env.example.com/ml",
        "IMAGE_TAG": "env-tag",
    }.items():
        monkeypatch.setenv(f"TAGIFAI_{key}", value)
    assert main(["--debug", "vertex", "run", "mlops", *REST, "--job-id", "mlops-env"]) == 0
    [create] = vertex_server.requests
    assert create.path == "/v1/projects/env-proj/locations/europe-west1/pipelineJobs"
    body = create.json
    assert body["serviceAccount"] == "env-runner@env-proj.iam.gserviceaccount.com"
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://env-bucket/root"
    assert body["runtimeConfig"]["parameterValues"]["warehouse"] == "bigquery://env-proj/tagifai"
    assert body["runtimeConfig"]["parameterValues"]["mlflow_tracking_uri"] == "https://mlflow.example.com"
    assert _sent_images(create) == {f"env.example.com/ml/tagifai-{s}:env-tag" for s in STEPS}
    assert offline_vertex == ["gs://env-bucket/root"]


def test_vertex_flags_over_settings_and_google_cloud_project_last(vertex_server, offline_vertex, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "gcloud-proj")
    monkeypatch.setenv("TAGIFAI_VERTEX_PIPELINE_ROOT", "gs://env-bucket/root")
    monkeypatch.setenv("TAGIFAI_VERTEX_REGION", "europe-west1")
    assert (
        main(
            [
                "--debug",
                "vertex",
                "run",
                "mlops",
                *REGISTRY,
                *PARAMS,
                "--region",
                "asia-east1",
                "--job-id",
                "mlops-a",
                "--api-endpoint",
                vertex_server.url,
                *REST,
            ]
        )
        == 0
    )
    monkeypatch.setenv("TAGIFAI_VERTEX_PROJECT", "env-proj")
    assert (
        main(
            [
                "--debug",
                "vertex",
                "run",
                "mlops",
                *REGISTRY,
                *PARAMS,
                "--job-id",
                "mlops-b",
                "--api-endpoint",
                vertex_server.url,
                *REST,
            ]
        )
        == 0
    )
    paths = [r.path for r in vertex_server.find("POST", "/pipelineJobs")]
    assert paths == [
        "/v1/projects/gcloud-proj/locations/asia-east1/pipelineJobs",
        "/v1/projects/env-proj/locations/europe-west1/pipelineJobs",
    ]


# --- images Vertex AI cannot pull: refused before anything is sent


@pytest.mark.parametrize(
    "given, named",
    [
        ([], "of validate, extract, optimize, train, evaluate, notify (localhost:5000: a registry on this machine);"),
        (["--registry", "kind-registry:5000"], "(kind-registry:5000: a local host name (no domain), e.g. kind's"),
        (["--registry", "tagifai"], "(tagifai: no registry host)"),  # Docker Hub's user tagifai, by default
        (["--by-digest"], "evaluate, notify (localhost:5000: a registry on this machine)"),  # pushed to kind's registry
        (["--package", MLOPS], "(REGION-docker.pkg.dev/PROJECT/REPO: a placeholder (upper case) to fill in)"),
    ],
)
def test_images_vertex_cannot_pull_are_refused_before_any_request(
    vertex_server, offline_vertex, monkeypatch, capsys, given, named
):
    _pushed(monkeypatch, set(step_table.NAMES))
    common = ["mlops", *given, "--project", "proj", "--pipeline-root", "gs://b/r", *PARAMS]
    common += ["--api-endpoint", vertex_server.url, *REST]
    for command in (["run"], ["schedule", "--cron", "0 6 * * *"]):
        assert main(["vertex", *command, *common]) == 1
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("tagifai vertex: error: DeliveryError: Vertex AI cannot pull the images of ")
        assert named in line
        remedy = (
            "--registry REGION-docker.pkg.dev/PROJECT/REPO (your Artifact Registry repository), "
            "or --by-digest after `tagifai images push` to it"
        )
        if "--package" in given:
            assert line.endswith(f"; compile {MLOPS} again with `tagifai compile --target vertex` and {remedy}")
        else:
            assert line.endswith(f"; give {remedy}")
    assert vertex_server.requests == [] and offline_vertex == []  # nothing sent, not even the bucket check


def test_a_package_compiled_for_a_registry_vertex_pulls_from_is_sent(vertex_server, offline_vertex, vertex_compiled):
    package = str(vertex_compiled / "mlops.yaml")
    argv = ["vertex", "run", "mlops", "--package", package, "--project", "proj", "--pipeline-root", "gs://b/r"]
    assert main(["--debug", *argv, *PARAMS, "--api-endpoint", vertex_server.url, *REST]) == 0
    [create] = vertex_server.find("POST", "/pipelineJobs")
    assert _sent_images(create) == {f"{ARTIFACT_REGISTRY}/tagifai-{s}:0.1.0" for s in STEPS}


@pytest.mark.parametrize(
    "image, problem",
    [
        ("localhost:5000/tagifai-sync:0.1.0", "a registry on this machine"),
        ("127.0.0.1:5000/tagifai-sync:0.1.0", "a registry on this machine"),
        ("[::1]:5000/tagifai-sync:0.1.0", "a registry on this machine"),
        ("kind-registry:5000/tagifai-sync:0.1.0", "a local host name (no domain), e.g. kind's registry"),
        ("registry.local/tagifai-sync:0.1.0", "a name only this machine or its network resolves"),
        ("host.docker.internal:5000/tagifai-sync", "a name only this machine or its network resolves"),
        ("10.1.2.3:5000/tagifai-sync:0.1.0", "a private address Vertex AI does not reach"),
        ("tagifai-sync:0.1.0", "no registry host"),
        ("someone/tagifai-sync:0.1.0", "no registry host"),
        ("REGION-docker.pkg.dev/PROJECT/REPO/tagifai-sync:0.1.0", "a placeholder (upper case) to fill in"),
        ("europe-west4-docker.pkg.dev/PROJECT/tagifai/tagifai-sync:0.1.0", "a placeholder (upper case) to fill in"),
        ("europe-west4-docker.pkg.dev/proj/tagifai/tagifai-sync:V1", None),  # a tag may hold capitals
        ("europe-west4-docker.pkg.dev/proj/tagifai/tagifai-sync@sha256:" + "c" * 64, None),
        ("gcr.io/proj/tagifai-sync:0.1.0", None),
        ("docker.io/someone/tagifai-sync:0.1.0", None),
        ("registry.example.com:5000/ml/tagifai-sync:0.1.0", None),
    ],
)
def test_which_images_vertex_can_pull(image, problem):
    from tagifai_cli.packaging import vertex_pull_problem

    assert vertex_pull_problem(image) == problem
