"""Every pipeline compiles, deterministically, to the YAML committed under pipelines/compiled/<target>/.

Two flavours: ``kubeflow`` (with kfp-kubernetes settings: a second YAML document) and ``vertex`` (one
document, which Vertex AI can load). tests/delivery/ checks what the flavours hold.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tagifai import steps as step_table

ROOT = Path(__file__).resolve().parents[1]
COMPILED = ROOT / "pipelines" / "compiled"
PIPELINES = ["continual", "dataops", "mlops", "sensor"]
TARGETS = ["kubeflow", "vertex"]
STEPS = set(step_table.NAMES)


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGIFAI_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    subprocess.run(
        # the committed YAML's explicit tag (make compile): content tags would change with every edit
        [
            sys.executable,
            "-m",
            "tagifai_cli.main",
            "compile",
            "--target",
            "all",
            "--tag",
            "0.1.0",
            "--output-dir",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
    )
    return out


def _spec(path: Path) -> dict:
    return next(yaml.safe_load_all(path.read_text()))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", PIPELINES)
def test_committed_yaml_is_what_the_code_compiles_to(compiled, target, name):
    committed = COMPILED / target / f"{name}.yaml"
    assert committed.exists(), f"{committed} missing: run `make compile`"
    assert (compiled / target / f"{name}.yaml").read_text() == committed.read_text(), (
        f"{committed} is stale: run `make compile`"
    )


def test_no_stale_yaml_beside_the_flavours():
    assert sorted(p.name for p in COMPILED.iterdir()) == TARGETS
    for target in TARGETS:
        assert sorted(p.stem for p in (COMPILED / target).glob("*.yaml")) == PIPELINES


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", PIPELINES)
def test_every_task_names_its_steps_image(compiled, target, name):
    executors = _spec(compiled / target / f"{name}.yaml")["deploymentSpec"]["executors"]
    assert executors
    for executor in executors.values():
        image = executor["container"]["image"]
        step = image.rsplit("/", 1)[-1].split(":")[0].removeprefix("tagifai-")
        assert step in STEPS, image
        # Kubeflow: kind's local registry; Vertex AI cannot pull that: the placeholder to fill in
        registry = "localhost:5000" if target == "kubeflow" else "REGION-docker.pkg.dev/PROJECT/REPO"
        assert image == f"{registry}/tagifai-{step}:0.1.0"
        # no pip install at run time: the image carries the project and kfp
        assert "pip install" not in " ".join(executor["container"].get("command", []))


@pytest.mark.parametrize("target", TARGETS)
def test_registry_and_tag_are_settings_not_code(tmp_path, target):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tagifai_cli.main",
            "compile",
            "mlops",
            "--target",
            target,
            "--output-dir",
            str(tmp_path),
            "--registry",
            "europe-docker.pkg.dev/p/r",
            "--tag",
            "v9",
        ],
        check=True,
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
    )
    images = {e["container"]["image"] for e in _spec(tmp_path / "mlops.yaml")["deploymentSpec"]["executors"].values()}
    assert images == {
        f"europe-docker.pkg.dev/p/r/tagifai-{s}:v9"
        for s in ("extract", "validate", "optimize", "train", "evaluate", "notify")
    }


def test_compiled_yaml_loads_back_with_the_sdk(compiled):
    from kfp import components

    for target in TARGETS:
        for name in PIPELINES:
            component = components.load_component_from_file(str(compiled / target / f"{name}.yaml"))
            assert component.name == name
            assert bool(component.platform_spec.platforms) == (target == "kubeflow")


def _images(pipeline) -> dict[str, str]:
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    return {k: e["container"]["image"] for k, e in spec["deploymentSpec"]["executors"].items()}


def test_local_runs_get_the_plain_pipeline():
    """`tagifai run` builds for the local target: images, no platform settings (kfp.local would honour retries)."""
    from pipelines.factory import build

    pipeline = build("dataops")
    spec = pipeline.pipeline_spec
    tasks = spec.root.dag.tasks
    assert not pipeline.platform_spec.platforms
    assert all(not t.HasField("retry_policy") for t in tasks.values())
    assert build("dataops", "kubeflow").platform_spec.platforms["kubernetes"]


def test_builds_take_their_arguments_and_nothing_else():
    """Two builds with different images in one process: each gets its own (no module state between builds)."""
    from pipelines.factory import build
    from pipelines.platform import default_images

    mine = {step: image.replace("localhost:5000", "example.org/x") for step, image in default_images().items()}
    first = _images(build("mlops", "vertex", images=mine))
    second = _images(build("mlops", "vertex"))
    assert set(first.values()) == {mine[s] for s in ("extract", "validate", "optimize", "train", "evaluate", "notify")}
    assert all(image.startswith("localhost:5000/") for image in second.values())
    with pytest.raises(ValueError, match="no image for step"):
        build("mlops", images={"train": "x"})


def test_local_docker_runs_take_the_task_image():
    """kfp.local runs a pipeline from its compiled spec: the image set on the task is the executor's image,
    which is what DockerRunner starts (tests/docker run it for real)."""
    from pipelines.factory import build
    from pipelines.platform import default_images

    images = dict(default_images(), train="registry.test/tagifai-train:abc")
    executors = _images(build("mlops", "local", images=images))
    assert executors["exec-train"] == "registry.test/tagifai-train:abc"


def _compile(out, *flags, **env):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tagifai_cli.main",
            "compile",
            "mlops",
            "--tag",
            "0.1.0",
            "--output-dir",
            str(out),
            *flags,
        ],
        cwd=ROOT,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_one_steps_image_can_be_pinned_by_digest(tmp_path, target):
    """TAGIFAI_IMAGES pins single steps (what `--by-digest` does for every step after `tagifai images push`)."""
    registry = "localhost:5000" if target == "kubeflow" else "europe-docker.pkg.dev/p/r"
    pinned = f"{registry}/tagifai-train@sha256:" + "a" * 64
    _compile(tmp_path, "--target", target, TAGIFAI_IMAGES=f'{{"train": "{pinned}"}}').check_returncode()
    images = {e["container"]["image"] for e in _spec(tmp_path / "mlops.yaml")["deploymentSpec"]["executors"].values()}
    assert pinned in images
    # the others keep their tags (no registry given: Vertex's get the placeholder)
    other = "localhost:5000" if target == "kubeflow" else "REGION-docker.pkg.dev/PROJECT/REPO"
    assert f"{other}/tagifai-evaluate:0.1.0" in images


@pytest.mark.parametrize(
    "flags, env, named",
    [
        (
            ["--registry", "localhost:5000"],
            {},
            "of sync, validate, transform, extract, optimize, train, evaluate, drift, sense, notify "
            "(localhost:5000: a registry on this machine);",
        ),
        ([], {"TAGIFAI_REGISTRY": "kind-registry:5000"}, "(kind-registry:5000: a local host name (no domain)"),
        (["--registry", "127.0.0.1:5000/ml"], {}, "(127.0.0.1:5000/ml: a registry on this machine)"),
        (["--registry", "registry.local"], {}, "(registry.local: a name only this machine or its network resolves)"),
        ([], {"TAGIFAI_IMAGES": '{"train": "tagifai-train:0.1.0"}'}, "train (tagifai-train:0.1.0: no registry host)"),
    ],
)
def test_a_vertex_compile_refuses_images_vertex_cannot_pull(tmp_path, flags, env, named):
    """Given a registry Vertex AI cannot pull from: one error line naming the steps and what to give;
    nothing written. Without a registry the Vertex flavour names the placeholder (what `make compile` commits)."""
    proc = _compile(tmp_path, "--target", "vertex", *flags, **env)
    assert proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.startswith("tagifai compile: error: DeliveryError: Vertex AI cannot pull the images of ")
    assert named in line
    assert line.endswith(
        "give --registry REGION-docker.pkg.dev/PROJECT/REPO (your Artifact Registry repository), "
        "or --by-digest after `tagifai images push` to it"
    )
    assert not list(tmp_path.iterdir())
    assert _compile(tmp_path, "--target", "kubeflow", *flags, **env).returncode == 0  # kind pulls from it


def test_a_vertex_compile_without_a_registry_writes_the_placeholder_template(tmp_path):
    proc = _compile(tmp_path, "--target", "vertex")
    assert proc.returncode == 0
    assert "the images name REGION-docker.pkg.dev/PROJECT/REPO, a template that" in proc.stderr
    images = {e["container"]["image"] for e in _spec(tmp_path / "mlops.yaml")["deploymentSpec"]["executors"].values()}
    assert all(i.startswith("REGION-docker.pkg.dev/PROJECT/REPO/tagifai-") for i in images)


def test_by_digest_without_a_push_names_the_missing_images(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tagifai_cli.main",
            "compile",
            "mlops",
            "--by-digest",
            "--registry",
            "nowhere.invalid:1",
            "--output-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=_clean_env(DOCKER_HOST="unix:///nonexistent.sock"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "no pushed digest for sync, validate, transform, extract, optimize, train, evaluate" in proc.stderr


def test_a_task_builder_gets_every_input_from_the_caller_or_a_named_error():
    """continual and sensor add the dataops and mlops tasks with their builders (one DAG, so artifacts flow);
    ``forward`` hands each builder the caller's pipeline parameters by name."""
    import inspect

    from pipelines import forward, mlops

    params = inspect.signature(mlops.tasks).parameters
    required = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
    assert {"warehouse", "num_trials", "window_days", "promotion_margin"} <= required
    values = {name: f"value of {name}" for name in required} | {"unrelated": 1}
    assert forward(mlops.tasks, values) == {name: f"value of {name}" for name in required}
    assert forward(mlops.tasks, values, approval="manual")["approval"] == "manual"
    assert forward(mlops.tasks, values, curated="c")["curated"] == "c"  # optional: only when given
    del values["window_days"]
    with pytest.raises(KeyError, match="mlops.tasks: the calling pipeline has no parameter.*window_days"):
        forward(mlops.tasks, values)


def test_continual_is_one_dag_whose_artifacts_trace_the_model_to_the_source_batches():
    """Issue 12 part 4: transform's Dataset feeds extract, train's Model feeds evaluate, and the sync
    Datasets feed transform, in one DAG (no nested pipeline, which kfp.local cannot pass artifacts into)."""
    for name in ("continual", "sensor"):
        path = COMPILED / "kubeflow" / f"{name}.yaml"
        spec = next(yaml.safe_load_all(path.read_text()))
        assert not any(c.startswith(("comp-dataops", "comp-mlops")) for c in spec["components"]), name

    spec = next(yaml.safe_load_all((COMPILED / "kubeflow" / "continual.yaml").read_text()))
    assert set(spec["root"]["dag"]["tasks"]) == {"exit-handler-1", "notify"}  # the run, then its notice
    tasks = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]

    def producer(task: str, artifact: str) -> tuple[str, str]:
        source = tasks[task]["inputs"]["artifacts"][artifact]["taskOutputArtifact"]
        return source["producerTask"], source["outputArtifactKey"]

    assert producer("evaluate", "model") == ("train", "model")
    assert producer("train", "dataset") == ("extract", "dataset")
    assert producer("extract", "curated") == ("transform", "labeled_projects")
    assert {producer("transform", "projects"), producer("transform", "tags")} == {
        ("sync", "dataset"),
        ("sync-2", "dataset"),
    }
    assert producer("validate-table-3", "upstream") == ("transform", "labeled_projects")
    # each sync's cache key: its source's fingerprint, a parameter from the fingerprint task
    fp = tasks["sync"]["inputs"]["parameters"]["source_fingerprint"]["taskOutputParameter"]
    assert fp["producerTask"] == "fingerprint"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_ends_with_the_notify_exit_task(target, name):
    """Issue 12 part 6: the whole run is one exit handler group, and notify runs after it whatever its state,
    with the group's final status; no webhook URL is a parameter (it comes from a Secret at run time)."""
    spec = next(yaml.safe_load_all((COMPILED / target / f"{name}.yaml").read_text()))
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "notify"}
    notice = root["notify"]
    assert notice["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert notice["inputs"]["parameters"]["status"] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}
    assert notice["inputs"]["parameters"]["pipeline"]["runtimeValue"]["constant"] == name
    assert not notice.get("cachingOptions", {}).get("enableCache")
    assert not any("webhook" in p.lower() for p in spec["root"].get("inputDefinitions", {}).get("parameters", {}))
