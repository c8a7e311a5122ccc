"""tagifai submit / schedule / backfill: the real kfp.Client against a loopback KFP v2beta1 API.

The server records every request; the tests assert paths and bodies: the uploaded pipeline spec,
the run's parameters, the recurring run's cron, no_catchup, max_concurrency and experiment.
"""

import yaml
from loopback import COMPILED, all_tasks

from tagifai import steps as step_table
from tagifai_cli.main import main

PKG = str(COMPILED / "kubeflow" / "dataops.yaml")
MLOPS = str(COMPILED / "kubeflow" / "mlops.yaml")


def _run(*argv):
    return main(["--debug", *argv])


def test_submit_uploads_the_compiled_pipeline_creates_the_run_and_waits(kfp_server, capsys):
    code = _run(
        "submit",
        "dataops",
        "--tag",
        "0.1.0",  # the tag the committed YAML names (`make compile`); the default is each step's content tag
        "--host",
        kfp_server.url,
        "--experiment",
        "nightly",
        "--param",
        "warehouse=bigquery://proj/tagifai",
        "--wait",
        "--poll-interval",
        "0.01",
    )
    out = capsys.readouterr().out
    assert code == 0 and "dataops SUCCEEDED" in out
    paths = [(r.method, r.path) for r in kfp_server.requests]
    assert ("GET", "/apis/v2beta1/healthz") in paths
    # experiment: looked up by name, created
    lookup = kfp_server.find("GET", "/experiments")[0]
    assert "nightly" in lookup.query["filter"]
    created = kfp_server.find("POST", "/experiments")[0].json
    assert created["display_name"] == "nightly" and not created.get("namespace")  # single-user KFP
    # the pipeline: uploaded (multipart) with the compiled spec, then a version named by content hash
    upload = kfp_server.find("POST", "/pipelines/upload")[0]
    assert upload.query["name"] == "tagifai-dataops"
    sent = upload.files()["uploadfile"]
    assert sent == (COMPILED / "kubeflow" / "dataops.yaml").read_bytes()  # compiled now == committed
    docs = list(yaml.safe_load_all(sent))
    assert docs[0]["pipelineInfo"]["name"] == "dataops" and "kubernetes" in docs[1]["platforms"]
    version = kfp_server.find("POST", "/pipelines/upload_version")[0]
    assert version.query["name"].startswith("tagifai-dataops-") and version.query["pipelineid"]
    assert version.files()["uploadfile"] == sent
    # the run: in the experiment, on that version, with typed parameters (dbt's prod target on BigQuery)
    run = kfp_server.find("POST", "/runs")[0].json
    [experiment_id] = kfp_server.experiments
    assert run["experiment_id"] == experiment_id
    version_id = kfp_server.versions[version.query["pipelineid"]][-1]["pipeline_version_id"]
    assert run["pipeline_version_reference"] == {
        "pipeline_id": version.query["pipelineid"],
        "pipeline_version_id": version_id,
    }
    params = run["runtime_config"]["parameters"]
    assert params["warehouse"] == "bigquery://proj/tagifai" and "dbt_target" not in params
    assert params["projects_source"].startswith("https://raw.githubusercontent.com/GokuMohandas/Made-With-ML/")
    assert "pipeline_spec" not in run
    # waited: polled the run until its final state
    [run_id] = kfp_server.runs
    assert len(kfp_server.find("GET", f"/runs/{run_id}")) == 2


def test_submitting_the_same_package_again_reuses_its_version(kfp_server, capsys):
    for _ in range(2):
        assert _run("submit", "dataops", "--package", PKG, "--host", kfp_server.url) == 0
    assert len(kfp_server.find("POST", "/pipelines/upload")) == 1
    assert len(kfp_server.find("POST", "/pipelines/upload_version")) == 1
    runs = [r.json for r in kfp_server.find("POST", "/runs")]
    assert runs[0]["pipeline_version_reference"] == runs[1]["pipeline_version_reference"]
    assert "already there" in capsys.readouterr().out


def test_parameters_are_typed_from_the_pipeline_inputs(kfp_server):
    assert (
        _run(
            "submit",
            "mlops",
            "--package",
            MLOPS,
            "--host",
            kfp_server.url,
            "--param",
            "num_trials=5",
            "--param",
            "seed=7",
            "--param",
            "experiment_name=exp",
        )
        == 0
    )
    params = kfp_server.find("POST", "/runs")[0].json["runtime_config"]["parameters"]
    assert params == {"num_trials": 5, "seed": 7, "experiment_name": "exp"}  # no sources: mlops has none


def test_unknown_or_mistyped_parameters_fail_before_any_run(kfp_server, capsys):
    assert main(["submit", "mlops", "--package", MLOPS, "--host", kfp_server.url, "--param", "num_trails=5"]) == 1
    assert "unknown parameter(s) num_trails" in capsys.readouterr().err
    assert main(["submit", "mlops", "--package", MLOPS, "--host", kfp_server.url, "--param", "num_trials=many"]) == 1
    assert "num_trials='many': expected integer" in capsys.readouterr().err
    assert not kfp_server.find("POST", "/runs")


def test_inline_spec_without_upload_and_caching_override(kfp_server):
    assert (
        _run(
            "submit",
            "dataops",
            "--package",
            PKG,
            "--host",
            kfp_server.url,
            "--no-upload",
            "--caching",
            "off",
            "--service-account",
            "pipeline-runner",
        )
        == 0
    )
    assert not kfp_server.find("POST", "/pipelines/upload")
    run = kfp_server.find("POST", "/runs")[0].json
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "dataops"
    assert "kubernetes" in run["pipeline_spec"]["platform_spec"]["platforms"]
    tasks = all_tasks(run["pipeline_spec"]["pipeline_spec"])
    assert "transform" in tasks and all(t["cachingOptions"].get("enableCache", False) is False for t in tasks.values())
    assert run["service_account"] == "pipeline-runner"


def test_wait_reports_a_failed_run_and_exits_1(capsys):
    from loopback import FakeKFP

    with FakeKFP(run_states=("RUNNING", "FAILED")) as server:
        code = _run("submit", "dataops", "--package", PKG, "--host", server.url, "--wait", "--poll-interval", "0.01")
    out = capsys.readouterr().out
    assert code == 1 and "dataops FAILED" in out and "task sync-projects failed" in out


def test_schedule_creates_a_recurring_run_without_catchup_and_one_at_a_time(kfp_server, capsys):
    assert (
        _run(
            "schedule",
            "continual",
            "--package",
            str(COMPILED / "kubeflow" / "continual.yaml"),
            "--host",
            kfp_server.url,
            "--cron",
            "0 6 * * *",
            "--experiment",
            "scheduled",
            "--start",
            "2024-01-01",
            "--param",
            "num_trials=10",
        )
        == 0
    )
    body = kfp_server.find("POST", "/recurringruns")[0].json
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 6 * * *", "start_time": "2024-01-01T00:00:00Z"}}
    assert body["no_catchup"] is True and int(body["max_concurrency"]) == 1
    assert body["mode"] == "ENABLE" and body["display_name"] == "tagifai-continual-schedule"
    [scheduled] = [e for e, v in kfp_server.experiments.items() if v["display_name"] == "scheduled"]
    assert body["experiment_id"] == scheduled
    assert body["pipeline_version_reference"]["pipeline_version_id"]
    assert body["runtime_config"]["parameters"]["num_trials"] == 10
    assert "catch-up off" in capsys.readouterr().out


def test_schedule_with_catchup_and_replace(kfp_server, capsys):
    args = ["schedule", "dataops", "--package", PKG, "--host", kfp_server.url, "--cron", "30 2 * * 1"]
    assert _run(*args) == 0
    assert main([*args, "--catchup"]) == 1  # exists: refuses without --replace
    assert "--replace" in capsys.readouterr().err
    assert _run(*args, "--catchup", "--replace") == 0
    bodies = [r.json for r in kfp_server.find("POST", "/recurringruns")]
    assert [b["no_catchup"] for b in bodies] == [True, False]
    assert bodies[1]["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * 1"
    [deleted] = [r.path for r in kfp_server.requests if r.method == "DELETE"]
    assert deleted == "/apis/v2beta1/recurringruns/" + bodies[0].get("recurring_run_id", deleted.rsplit("/", 1)[-1])
    assert len(kfp_server.recurring_runs) == 1


def test_a_bad_cron_is_refused_before_connecting(kfp_server, capsys):
    assert main(["schedule", "dataops", "--package", PKG, "--host", kfp_server.url, "--cron", "0 6 * *"]) == 1
    assert "expected 5 fields" in capsys.readouterr().err
    assert main(["schedule", "dataops", "--package", PKG, "--host", kfp_server.url, "--cron", "61 6 * * *"]) == 1
    assert kfp_server.requests == []


def test_backfill_runs_each_past_interval_in_order_one_at_a_time(kfp_server, capsys):
    code = _run(
        "backfill",
        "dataops",
        "--package",
        PKG,
        "--host",
        kfp_server.url,
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-04",
        "--param",
        "projects_source=gs://bucket/projects/{start:%Y-%m-%d}.csv",
        "--param",
        "tags_source=gs://bucket/tags/{start:%Y-%m-%d}.csv",
        "--poll-interval",
        "0.01",
    )
    assert code == 0
    runs = [r.json for r in kfp_server.find("POST", "/runs")]
    assert [r["display_name"] for r in runs] == [f"dataops backfill 2024-03-0{d}T00:00:00Z" for d in (1, 2, 3)]
    assert [r["runtime_config"]["parameters"]["projects_source"] for r in runs] == [
        f"gs://bucket/projects/2024-03-0{d}.csv" for d in (1, 2, 3)
    ]
    # one at a time: each run was polled to its end before the next was created
    order = [(r.method, r.path.rsplit("/", 1)[-1]) for r in kfp_server.requests if "/runs" in r.path]
    a, b, c = kfp_server.runs
    assert order == [
        ("POST", "runs"),
        ("GET", a),
        ("GET", a),
        ("POST", "runs"),
        ("GET", b),
        ("GET", b),
        ("POST", "runs"),
        ("GET", c),
        ("GET", c),
    ]
    assert "backfill: 3 run(s) succeeded" in capsys.readouterr().out


def test_backfill_stops_at_the_first_failed_interval(capsys):
    from loopback import FakeKFP

    with FakeKFP(run_states=("FAILED",)) as server:
        code = _run(
            "backfill",
            "dataops",
            "--package",
            PKG,
            "--host",
            server.url,
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-04",
            "--poll-interval",
            "0.01",
        )
        assert code == 1 and len(server.find("POST", "/runs")) == 1
    assert "stopped at interval 1/3" in capsys.readouterr().out


def test_backfill_dry_run_lists_intervals_and_sends_nothing(kfp_server, capsys):
    assert (
        _run(
            "backfill",
            "dataops",
            "--package",
            PKG,
            "--host",
            kfp_server.url,
            "--start",
            "2024-03-01T00:00:00Z",
            "--end",
            "2024-03-01T03:00:00Z",
            "--cron",
            "0 * * * *",
            "--param",
            "tags_source=s3://t/{start:%H}",
            "--dry-run",
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "2024-03-01T00:00:00Z -> 2024-03-01T01:00:00Z  tags_source=s3://t/00",
        "2024-03-01T01:00:00Z -> 2024-03-01T02:00:00Z  tags_source=s3://t/01",
        "2024-03-01T02:00:00Z -> 2024-03-01T03:00:00Z  tags_source=s3://t/02",
    ]
    assert kfp_server.requests == []


def test_token_from_env_or_file_goes_in_the_authorization_header(kfp_server, monkeypatch, tmp_path):
    monkeypatch.setenv("TAGIFAI_KFP_TOKEN", "env-token")
    assert _run("submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--no-upload") == 0
    n = len(kfp_server.requests)
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    assert (
        _run(
            "submit",
            "dataops",
            "--package",
            PKG,
            "--host",
            kfp_server.url,
            "--no-upload",
            "--token-file",
            str(token_file),
        )
        == 0
    )
    auth = [r.headers.get("authorization") for r in kfp_server.requests]
    assert set(auth[:n]) == {"Bearer env-token"} and set(auth[n:]) == {"Bearer file-token"}


def test_in_cluster_uses_the_projected_service_account_token(kfp_server, monkeypatch, tmp_path):
    token = tmp_path / "sa-token"
    token.write_text("projected-sa-token")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    assert _run("submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--in-cluster", "--no-upload") == 0
    assert {r.headers.get("authorization") for r in kfp_server.requests} == {"Bearer projected-sa-token"}


def test_no_token_no_header(kfp_server):
    assert _run("submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--no-upload") == 0
    assert all("authorization" not in r.headers for r in kfp_server.requests)


def test_an_unreachable_server_is_one_clear_line(capsys):
    assert main(["submit", "dataops", "--package", PKG, "--host", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tagifai submit: error: DeliveryError: cannot reach Kubeflow Pipelines at http://127.0.0.1:9")


def test_the_pipeline_name_comes_from_the_package_when_not_given(kfp_server):
    assert _run("submit", "--package", MLOPS, "--host", kfp_server.url) == 0
    assert kfp_server.find("POST", "/pipelines/upload")[0].query["name"] == "tagifai-mlops"
    assert main(["submit", "dataops", "--package", MLOPS, "--host", kfp_server.url]) == 1  # names disagree


def test_caching_override_reaches_an_uploaded_version_too(kfp_server):
    """kfp.Client drops enable_caching for a version reference: the override is applied to the package."""
    assert _run("submit", "dataops", "--package", PKG, "--host", kfp_server.url, "--caching", "on") == 0
    assert _run("submit", "dataops", "--package", PKG, "--host", kfp_server.url) == 0
    uploads = [r for r in kfp_server.requests if r.path.endswith(("/upload", "/upload_version"))]
    versions = [r.query["name"] for r in uploads if r.path.endswith("/upload_version")]
    assert len(set(versions)) == 2  # a cached and an uncached version, named by content
    cached = list(yaml.safe_load_all(uploads[0].files()["uploadfile"]))
    assert len(cached) == 2 and "kubernetes" in cached[1]["platforms"]
    assert all(t["cachingOptions"] == {"enableCache": True} for t in all_tasks(cached[0]).values())
    runs = [r.json for r in kfp_server.find("POST", "/runs")]
    assert runs[0]["pipeline_version_reference"] != runs[1]["pipeline_version_reference"]


# --- the shared package options (tagifai_cli.options): registry, tag, digests; settings from the environment

DIGEST = "sha256:" + "b" * 64


def _images(package: bytes) -> set[str]:
    spec = next(yaml.safe_load_all(package))
    return {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}


def _pushed(monkeypatch, steps):
    """Pushed digests (as `tagifai images push` leaves them) for ``steps`` only; no container engine is asked."""
    from tagifai_cli import images

    def pushed_reference(step, registry=None, tag=None):
        return f"{registry}/tagifai-{step}@{DIGEST}" if step in steps else None

    monkeypatch.setattr(images, "pushed_reference", pushed_reference)


def test_registry_and_tag_flags_reach_the_compiled_images(kfp_server):
    assert (
        _run("submit", "dataops", "--registry", "registry.example.com/ml", "--tag", "v2", "--host", kfp_server.url) == 0
    )
    sent = _images(kfp_server.find("POST", "/pipelines/upload")[0].files()["uploadfile"])
    assert sent == {f"registry.example.com/ml/tagifai-{s}:v2" for s in ("sync", "validate", "transform", "notify")}


def test_schedule_and_backfill_compile_with_the_settings_registry_and_tag(kfp_server, monkeypatch):
    monkeypatch.setenv("TAGIFAI_REGISTRY", "env.example.com/ml")
    monkeypatch.setenv("TAGIFAI_IMAGE_TAG", "env-tag")
    assert _run("schedule", "mlops", "--host", kfp_server.url, "--cron", "0 6 * * *") == 0
    assert (
        _run(
            "backfill",
            "mlops",
            "--host",
            kfp_server.url,
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-02",
            "--tag",
            "flag-tag",
            "--no-wait",
        )
        == 0
    )  # a flag over the environment
    # each becomes a version of tagifai-mlops, named by its content
    first, second = (_images(r.files()["uploadfile"]) for r in kfp_server.find("POST", "/pipelines/upload_version"))
    steps = ("extract", "validate", "optimize", "train", "evaluate", "notify")
    assert first == {f"env.example.com/ml/tagifai-{s}:env-tag" for s in steps}
    assert second == {f"env.example.com/ml/tagifai-{s}:flag-tag" for s in steps}


def test_by_digest_compiles_with_the_pushed_digests(kfp_server, monkeypatch):
    _pushed(monkeypatch, set(step_table.NAMES))
    assert (
        _run(
            "submit",
            "dataops",
            "--by-digest",
            "--registry",
            "registry.example.com/ml",
            "--no-upload",
            "--host",
            kfp_server.url,
        )
        == 0
    )
    spec = kfp_server.find("POST", "/runs")[0].json["pipeline_spec"]["pipeline_spec"]
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {
        f"registry.example.com/ml/tagifai-{s}@{DIGEST}" for s in ("sync", "validate", "transform", "notify")
    }


def test_by_digest_without_pushed_digests_is_one_line_naming_the_missing_steps(kfp_server, monkeypatch, capsys):
    from tagifai_cli.images import content_tags

    _pushed(monkeypatch, {"train", "evaluate"})
    missing = [n for n in step_table.NAMES if n not in ("train", "evaluate")]
    tags = content_tags()
    backfill = ["backfill", "--start", "2024-03-01", "--end", "2024-03-02"]
    for command in (["submit"], ["schedule", "--cron", "0 6 * * *"], backfill):
        assert main([*command, "mlops", "--by-digest", "--host", kfp_server.url]) == 1
        [line] = capsys.readouterr().err.splitlines()
        assert line == (  # the images looked up: each step's content tag, what `tagifai images build` made
            f"tagifai {command[0]}: error: DeliveryError: --by-digest: no pushed digest for {', '.join(missing)}; "
            "run `tagifai images build` and `tagifai images push` first (looked up in localhost:5000: "
            + ", ".join(f"{n}:{tags[n]}" for n in missing)
            + ")"
        )
    assert main(["submit", "mlops", "--by-digest", "--tag", "v3", "--host", kfp_server.url]) == 1
    assert capsys.readouterr().err.endswith("first (looked up in localhost:5000: tag v3)\n")
    assert kfp_server.requests == []  # refused before connecting


def test_by_digest_looks_up_the_content_tagged_images_or_the_given_tag(kfp_server, monkeypatch):
    """The digest is the one pushed for the image of these sources (its content tag), or of the tag given."""
    from tagifai_cli import images

    asked: dict[str, str] = {}

    def pushed_reference(step, registry=None, tag=None):
        asked[step] = tag
        return f"{registry}/tagifai-{step}@{DIGEST}"

    monkeypatch.setattr(images, "pushed_reference", pushed_reference)
    assert _run("submit", "dataops", "--by-digest", "--no-upload", "--host", kfp_server.url) == 0
    tags = images.content_tags()
    assert asked == {n: tags[n] for n in step_table.NAMES}
    assert _run("submit", "dataops", "--by-digest", "--tag", "v7", "--no-upload", "--host", kfp_server.url) == 0
    assert set(asked.values()) == {"v7"}
    sent = [r.json["pipeline_spec"]["pipeline_spec"] for r in kfp_server.find("POST", "/runs")]
    for spec in sent:  # by digest either way: no tag reaches the cluster
        assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
            f"localhost:5000/tagifai-{s}@{DIGEST}" for s in ("sync", "validate", "transform", "notify")
        }


def test_compile_flags_with_a_package_are_refused(kfp_server, capsys):
    assert (
        main(
            [
                "submit",
                "dataops",
                "--package",
                PKG,
                "--registry",
                "r.example.com",
                "--by-digest",
                "--host",
                kfp_server.url,
            ]
        )
        == 1
    )
    assert "--registry, --by-digest: only when compiling" in capsys.readouterr().err
    assert kfp_server.requests == []


def test_kfp_settings_come_from_the_environment_when_no_flag_is_given(kfp_server, monkeypatch, tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    monkeypatch.setenv("TAGIFAI_KFP_HOST", kfp_server.url)
    monkeypatch.setenv("TAGIFAI_KFP_EXPERIMENT", "from-env")
    monkeypatch.setenv("TAGIFAI_KFP_SERVICE_ACCOUNT", "env-runner")
    monkeypatch.setenv("TAGIFAI_KFP_TOKEN", "env-token")
    monkeypatch.setenv("TAGIFAI_KFP_TOKEN_FILE", str(token_file))  # read before the token setting
    assert _run("submit", "dataops", "--package", PKG, "--no-upload") == 0
    assert kfp_server.find("POST", "/experiments")[0].json["display_name"] == "from-env"
    assert kfp_server.find("POST", "/runs")[0].json["service_account"] == "env-runner"
    assert {r.headers.get("authorization") for r in kfp_server.requests} == {"Bearer file-token"}
    assert "file-token" not in capsys.readouterr().out
    n = len(kfp_server.requests)
    assert (
        _run(
            "submit",
            "dataops",
            "--package",
            PKG,
            "--no-upload",
            "--experiment",
            "from-flag",
            "--service-account",
            "flag-runner",
        )
        == 0
    )  # flags over the environment
    assert kfp_server.find("POST", "/experiments")[-1].json["display_name"] == "from-flag"
    assert kfp_server.find("POST", "/runs")[-1].json["service_account"] == "flag-runner"
    assert len(kfp_server.requests) > n


def test_the_namespace_setting_reaches_the_experiment(kfp_server, monkeypatch):
    monkeypatch.setenv("TAGIFAI_KFP_NAMESPACE", "team-a")
    assert _run("submit", "dataops", "--package", PKG, "--no-upload", "--host", kfp_server.url) == 0
    assert kfp_server.find("POST", "/experiments")[0].json["namespace"] == "team-a"
