"""What the two compiled flavours hold, checked through the KFP SDK's protobuf messages.

tests/test_compile.py checks that the committed YAML is what the code compiles to; here the
committed YAML is parsed into PipelineSpec / PlatformSpec / KubernetesExecutorConfig and its
per-step settings are compared with pipelines/platform.yaml (settings, not code).
"""

import subprocess
import sys

import pytest
import yaml
from google.protobuf import json_format
from loopback import COMPILED, ROOT, all_tasks

PIPELINES = ["continual", "dataops", "mlops", "sensor"]
#: Retried steps: network reads and loads. Validation and transform (dbt tests) fail on the data: never retried.
NETWORK_STEPS = {"fingerprint": 3, "sync": 3, "extract": 2, "drift": 2}
#: The tasks KFP may reuse (pipelines/platform.yaml; docs/deploy.md, "Caching"): sync keyed on the
#: fingerprint, then every step whose inputs are the artifacts of the step before. Never: the fingerprint
#: itself, drift, sense, the watermark and the notice, which read state that no input names; nor extract
#: in the mlops pipeline alone (no Dataset names the table it reads there).
CACHED = {"sync", "validate-table", "transform", "extract", "validate-dataset", "optimize", "train", "evaluate"}


def _cached(pipeline: str, step: str) -> bool:
    return step in CACHED and not (pipeline == "mlops" and step == "extract")


def _docs(target, name):
    return list(yaml.safe_load_all((COMPILED / target / f"{name}.yaml").read_text()))


def _pipeline_spec(doc):
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())


def _tasks(spec):
    """(component name, task spec) of every task, nested pipelines included."""
    out = []
    for dag in [spec.root.dag] + [c.dag for c in spec.components.values() if c.HasField("dag")]:
        for task in dag.tasks.values():
            comp = spec.components[task.component_ref.name]
            if comp.executor_label:
                step = task.component_ref.name.removeprefix("comp-").rstrip("-0123456789")
                out.append((step, task, comp.executor_label))
    return out


@pytest.mark.parametrize("name", PIPELINES)
def test_kubeflow_flavour_is_pipeline_plus_kubernetes_platform(name):
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    from kfp.pipeline_spec import pipeline_spec_pb2

    docs = _docs("kubeflow", name)
    assert len(docs) == 2 and list(docs[1]) == ["platforms"]
    spec = _pipeline_spec(docs[0])
    platform = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
    executors = platform.platforms["kubernetes"].deployment_spec.executors
    tasks = _tasks(spec)
    assert tasks
    for step, task, executor in tasks:
        config = json_format.ParseDict(json_format.MessageToDict(executors[executor]), k8s.KubernetesExecutorConfig())
        assert [p.constant for p in config.pvc_mount] == ["tagifai-data"] and config.pvc_mount[0].mount_path == "/data"
        # the settings ConfigMap is required (a pod without it fails with CreateContainerConfigError naming
        # it, instead of running on the image's defaults); only the BigQuery keys may be missing from it
        assert [c.config_map_name for c in config.config_map_as_env] == ["tagifai-settings"] * 2
        required, optional = config.config_map_as_env
        env = {e.env_var for e in required.key_to_env}
        assert {"TAGIFAI_WAREHOUSE", "TAGIFAI_MLFLOW_TRACKING_URI", "TAGIFAI_HOME"} <= env
        assert not required.optional and optional.optional
        assert {e.env_var for e in optional.key_to_env} == {
            "TAGIFAI_BQ_LOCATION",
            "TAGIFAI_BQ_KEYFILE",
            "GOOGLE_APPLICATION_CREDENTIALS",
        }
        # the step images' user, the owner of the data volume (kfp-kubernetes sets no fsGroup)
        assert config.HasField("security_context")
        context = config.security_context
        assert (context.run_as_user, context.run_as_group, context.run_as_non_root) == (10001, 10001, True)
        assert [s.secret_name for s in config.image_pull_secret] == ["tagifai-registry"]
        assert config.image_pull_policy == "IfNotPresent"
        deadlines = {"optimize": 7200, "notify": 600, "hold-warehouse": 2400}  # hold-warehouse: waits for a lease
        assert config.active_deadline_seconds == deadlines.get(step, 3600)
        # secrets reach only the steps that need them, and are optional
        assert not config.secret_as_env  # no step takes a secret as environment variables
        bigquery = step in ("fingerprint", "sync", "validate-table", "transform", "extract", "drift")
        expected = [("tagifai-bigquery", "/var/secrets/bigquery", True)] if bigquery else []
        if step in ("notify", "hold-warehouse"):  # the notify step (both its tasks): the webhook URL of the notices
            expected = [("tagifai-notify", "/var/secrets/notify", True)]
        assert [(s.secret_name, s.mount_path, s.optional) for s in config.secret_as_volume] == expected
        # plain KFP settings, in the pipeline spec
        executor_spec = spec.deployment_spec.fields["executors"].struct_value.fields[executor].struct_value
        resources = executor_spec.fields["container"].struct_value.fields["resources"].struct_value.fields
        assert resources["resourceCpuRequest"].string_value and resources["resourceMemoryLimit"].string_value
        assert task.caching_options.enable_cache == _cached(name, step), step
        assert task.retry_policy.max_retry_count == NETWORK_STEPS.get(step, 0)
        if step in NETWORK_STEPS:
            assert task.retry_policy.backoff_duration.seconds == 30 and task.retry_policy.backoff_factor == 2


@pytest.mark.parametrize("name", PIPELINES)
def test_vertex_flavour_is_one_document_with_plain_kfp_settings_only(name):
    docs = _docs("vertex", name)
    assert len(docs) == 1 and "platforms" not in docs[0]
    spec = _pipeline_spec(docs[0])
    executors = docs[0]["deploymentSpec"]["executors"]
    for step, task, executor in _tasks(spec):
        container = executors[executor]["container"]
        # limits only, no requests
        assert set(container["resources"]) == {"cpuLimit", "memoryLimit", "resourceCpuLimit", "resourceMemoryLimit"}
        assert {"name": "TAGIFAI_HOME", "value": "/tmp/tagifai"} in container["env"]
        assert task.retry_policy.max_retry_count == NETWORK_STEPS.get(step, 0)
        assert task.caching_options.enable_cache == _cached(name, step), step


def test_the_same_pipeline_spec_under_both_flavours_but_the_platform_parts():
    """The flavours differ only in what each platform reads: requests, env, the kubernetes document, and the
    registry (kind's localhost:5000 for Kubeflow; for Vertex AI, which cannot pull it, the placeholder)."""
    kfp_spec, vertex_spec = _docs("kubeflow", "mlops")[0], _docs("vertex", "mlops")[0]
    assert kfp_spec["root"] == vertex_spec["root"] and kfp_spec["components"] == vertex_spec["components"]
    for key, executor in kfp_spec["deploymentSpec"]["executors"].items():
        other = vertex_spec["deploymentSpec"]["executors"][key]["container"]
        image = executor["container"]["image"]
        assert image.startswith("localhost:5000/")
        assert other["image"] == image.replace("localhost:5000", "REGION-docker.pkg.dev/PROJECT/REPO")
        assert executor["container"]["command"] == other["command"]


def test_settings_file_not_code_chooses_the_values(tmp_path):
    """Another platform file (what a GKE user with a private registry would write) changes the YAML."""
    custom = yaml.safe_load((ROOT / "pipelines" / "platform.yaml").read_text())
    custom["steps"]["train"].update(cpu_limit="8", memory_limit="16Gi")
    custom["steps"]["train"]["retry"] = {"num_retries": 1}
    custom["steps"]["train"]["caching"] = False
    custom["kubernetes"]["image_pull_secrets"] = ["artifact-registry"]
    custom["kubernetes"]["pvcs"] = []
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(custom))
    out = tmp_path / "out"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tagifai_cli.main",
            "compile",
            "mlops",
            "--platform-config",
            str(path),
            "--output-dir",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    docs = list(yaml.safe_load_all((out / "mlops.yaml").read_text()))
    train = docs[0]["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert train["resourceCpuLimit"] == "8" and train["resourceMemoryLimit"] == "16Gi"
    tasks = all_tasks(docs[0])
    assert tasks["train"]["retryPolicy"]["maxRetryCount"] == 1
    assert tasks["train"]["cachingOptions"] == {} and tasks["optimize"]["cachingOptions"] == {"enableCache": True}
    k8s = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert [s["secretName"] for s in k8s["imagePullSecret"]] == ["artifact-registry"]
    assert "pvcMount" not in k8s


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_parallel_workers_fan_optimize_out_over_one_study(tmp_path, target):
    """Issue 13 part 4: optimize's ``parallel_workers: 3`` compiles a ParallelFor of 3 optimize-worker tasks,
    each with optimize's platform settings, and optimize (which then only chooses) waits for the loop. The
    committed pipelines (parallel_workers unset) have no loop."""
    custom = yaml.safe_load((ROOT / "pipelines" / "platform.yaml").read_text())
    custom["steps"]["optimize"]["parallel_workers"] = 3
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(custom))
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "tagifai_cli.main", "compile", "continual", "--target", target]
        + ["--platform-config", str(path), "--output-dir", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    spec = next(yaml.safe_load_all((out / "continual.yaml").read_text()))
    tasks = all_tasks(spec)
    (loop,) = [t for name, t in tasks.items() if name.startswith("for-loop")]
    assert loop["parameterIterator"]["items"]["raw"] == "[0, 1, 2]"
    worker = tasks["optimize-worker"]
    assert worker["inputs"]["parameters"]["worker"]["componentInputParameter"].startswith("pipelinechannel--loop-item")
    loop_name = next(name for name in tasks if name.startswith("for-loop"))
    assert loop_name in tasks["optimize"]["dependentTasks"]
    resources = spec["deploymentSpec"]["executors"]["exec-optimize-worker"]["container"]["resources"]
    assert resources["resourceCpuLimit"] == "2" and resources["resourceMemoryLimit"] == "4Gi"
    committed = next(yaml.safe_load_all((COMPILED / target / "continual.yaml").read_text()))
    assert not any(name.startswith("for-loop") for name in all_tasks(committed))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"steps": {"trian": {"cpu_limit": "1"}}}, "unknown step(s) trian"),
        ({"defaults": {"cpu_limt": "1"}}, "cpu_limt"),
        (
            {"kubernetes": {"secret_env": [{"secret": "s", "env": {"k": "K"}, "steps": ["nope"]}]}},
            "unknown step(s) nope",
        ),
        ({"kubernetes": {"image_pull_policy": "Sometimes"}}, "image_pull_policy"),
    ],
)
def test_a_wrong_settings_file_fails_compile_with_one_clear_line(tmp_path, bad, message):
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tagifai_cli.main",
            "compile",
            "dataops",
            "--platform-config",
            str(path),
            "--output-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_compiling_is_deterministic(tmp_path):
    from tagifai.config import get_settings
    from tagifai_cli.packaging import compile_package, step_images

    images = step_images(get_settings(image_tag="0.1.0"))  # the committed YAML's tag (make compile)
    a = compile_package("continual", "kubeflow", tmp_path / "a", images=images).read_bytes()
    b = compile_package("continual", "kubeflow", tmp_path / "b", images=images).read_bytes()
    assert a == b == (COMPILED / "kubeflow" / "continual.yaml").read_bytes()
