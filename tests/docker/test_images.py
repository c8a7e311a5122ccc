"""The step images: one per step, each with only its step's extras, non-root, no host-specific files."""

from __future__ import annotations

import contextlib
import time

import pytest

from tagifai import steps
from tagifai_cli import images

pytestmark = pytest.mark.docker

#: A module that must import in the step's image, and modules of other steps' extras that must not be there
#: (one entry per step of the table: test_every_step_has_expectations fails for a step added without one).
EXPECTED = {
    "sync": ("dlt", ("great_expectations", "dbt.cli", "mlflow", "optuna", "sklearn")),
    "validate": ("great_expectations", ("dlt", "dbt.cli", "mlflow", "optuna", "sklearn")),
    "transform": ("dbt.adapters.duckdb", ("dlt", "great_expectations", "mlflow", "optuna", "sklearn")),
    "extract": ("duckdb", ("dlt", "great_expectations", "dbt.cli", "mlflow", "optuna", "sklearn")),
    "sense": ("duckdb", ("dlt", "great_expectations", "dbt.cli", "mlflow", "optuna", "sklearn")),
    "optimize": ("optuna", ("dlt", "great_expectations", "dbt.cli")),
    "train": ("mlflow.sklearn", ("dlt", "great_expectations", "dbt.cli", "optuna")),
    "evaluate": ("mlflow.sklearn", ("dlt", "great_expectations", "dbt.cli", "optuna")),
    # plotly: Evidently's own dependency (importing evidently itself needs tagifai.drift's pandas-3 shim)
    "drift": ("plotly", ("dlt", "great_expectations", "dbt.cli", "optuna")),
    # the notice's Secret Manager client; MLflow is read over its REST API, so no mlflow here
    "notify": ("google.cloud.secretmanager", ("dlt", "great_expectations", "dbt.cli", "mlflow", "optuna", "sklearn")),
}

PROBE = """
import importlib.util, json, os, sys
present, extra = sys.argv[1], sys.argv[2].split(",")
import kfp, tagifai, tagifai.config
from tagifai.config import get_settings
print(json.dumps({
    "uid": os.getuid(),
    "present": importlib.util.find_spec(present.split(".")[0]) is not None and bool(__import__(present)),
    "absent": [m for m in extra if importlib.util.find_spec(m.split(".")[0]) is not None],
    "project_dir": str(get_settings().project_dir),
    "dbt": os.path.isfile("/app/dbt_transforms/dbt_project.yml"),
    "gx": os.path.isdir("/app/great_expectations/gx/expectations"),
    "python": sys.version.split()[0], "kfp": kfp.__version__,
}))
"""


def test_every_step_has_expectations():
    assert set(EXPECTED) == set(steps.NAMES)


def test_every_step_has_its_own_image_with_its_step_label(built_images):
    assert set(built_images) == {"base", *steps.NAMES}
    ids = {built_images[s].image_id for s in steps.NAMES}
    assert len(ids) == len(steps.STEPS), "two steps share one image"
    for step in steps.STEPS:
        result = built_images[step.name]
        tag = images.image_tags([step.name])[step.name]  # the content tag (no TAGIFAI_IMAGE_TAG here)
        assert result.image == images.image_name(step.name) == step.image(images.registry_and_tag()[0], tag)
        assert result.image.endswith(f"/{step.image_name}:{tag}") and tag.startswith("c-")


@pytest.mark.parametrize("step", steps.NAMES)
def test_image_runs_as_non_root_with_only_its_extras(docker_client, built_images, step):
    import json

    image = docker_client.images.get(built_images[step].image)
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Labels"][images.STEP_LABEL] == step
    present, absent = EXPECTED[step]
    out = docker_client.containers.run(
        image.id, ["python3", "-c", PROBE, present, ",".join(absent)], remove=True, network_disabled=True
    )
    probe = json.loads(out.decode().strip().splitlines()[-1])
    assert probe["uid"] == 10001
    assert probe["present"], f"{present} missing in {step}"
    assert probe["absent"] == [], f"{step} has other steps' packages: {probe['absent']}"
    assert probe["project_dir"] == "/app" and probe["dbt"] and probe["gx"]
    assert probe["python"].startswith("3.11.") and probe["kfp"].startswith("2.17")


def test_build_context_holds_only_the_project_and_no_secrets():
    files = [str(p) for p in images._context_files(images.ROOT)]
    assert "images/base.Dockerfile" in files and "pyproject.toml" in files
    allowed = images.CONTEXT_PATHS
    assert all(any(f == a or f.startswith(a + "/") for a in allowed) for f in files)
    assert not any("__pycache__" in f or f.endswith(".pyc") or "/compiled/" in f for f in files)
    suspicious = [
        f for f in files if f.endswith((".crt", ".pem", ".key", ".p12", ".env")) or "/.env" in f or "credentials" in f
    ]
    assert suspicious == []
    # the same sources give the same bytes (fixed mtimes and owners): a cache-friendly context
    assert images.build_context().getvalue() == images.build_context().getvalue()


def test_default_base_is_the_official_slim_image_and_dockerfiles_add_no_certificates():
    base = (images.IMAGES_DIR / "base.Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in base
    paths = sorted(images.IMAGES_DIR.glob("*.Dockerfile"))
    # one Dockerfile for every step, and the MLflow server's (manifests/tagifai/mlflow; not a step)
    assert [p.name for p in paths] == ["base.Dockerfile", "mlflow.Dockerfile", "step.Dockerfile"]
    for path in paths:
        text = path.read_text().lower()
        assert "ca-certificates.crt" not in text and "/etc/ssl" not in text and "secret" not in text, path.name
        assert "--require-hashes" in text or "tagifai-pip-install" in text, path.name
    text = (images.ROOT / images.STEP_DOCKERFILE).read_text()
    assert "COPY images/requirements/${STEP}.txt" in text
    # dependencies are installed before the project's source is copied (cached rebuilds)
    assert text.index("requirements/${STEP}.txt") < text.index("COPY tagifai ")
    for lock in steps.SHARED_LOCKS:  # a shared lock layer comes first
        assert text.index(f"requirements/{lock}.txt") < text.index("requirements/${STEP}.txt")
    assert "USER 10001:10001" in text


def _layers(client, image: str) -> list[str]:
    return client.images.get(image).attrs["RootFS"]["Layers"]


def _history(client, image: str) -> str:
    return "\n".join(entry.get("CreatedBy", "") for entry in client.api.history(image))


@pytest.mark.parametrize("lock", sorted(steps.SHARED_LOCKS))
def test_a_shared_lock_layer_is_shared_by_its_steps_and_absent_from_the_others(docker_client, built_images, lock):
    """ml.txt is one layer on disk for optimize, train and evaluate, and no layer of the other images.

    The classic builder builds every stage of step.Dockerfile (deps-ml too) for every step; what counts
    is which stage the final image starts from.
    """
    sharing = [s.name for s in steps.STEPS if s.shared_lock == lock]
    others = [s.name for s in steps.STEPS if s.shared_lock != lock]
    base = _layers(docker_client, built_images["base"].image)
    above_base = {}
    for name in steps.NAMES:
        layers = _layers(docker_client, built_images[name].image)
        assert layers[: len(base)] == base, f"{name} is not built on the shared base"
        above_base[name] = layers[len(base) :]
    # the layers the sharing images have in common above the base: the shared lock's COPY and RUN
    shared = []
    for layer_of_each in zip(*(above_base[n] for n in sharing), strict=False):
        if len(set(layer_of_each)) != 1:
            break
        shared.append(layer_of_each[0])
    assert len(shared) == 2, f"{sharing} share {len(shared)} layers above the base, expected {lock}.txt's COPY and RUN"
    for name in sharing:
        assert f"/opt/tagifai/requirements/{lock}.txt" in _history(docker_client, built_images[name].image), name
    for name in others:
        assert not set(shared) & set(above_base[name]), f"{name} carries the {lock} layer"
        assert f"requirements/{lock}.txt" not in _history(docker_client, built_images[name].image), name
    sizes = {e["CreatedBy"]: e["Size"] for e in docker_client.api.history(built_images[sharing[0]].image)}
    ml_size = sum(size for created, size in sizes.items() if f"requirements/{lock}.txt" in created)
    print(f"\n{lock} layer: {ml_size / 1e6:.0f} MB, once on disk for {', '.join(sharing)}")
    assert ml_size > 50e6


def test_rebuild_with_nothing_changed_is_all_cache(built_images, base_image):
    again = images.build(base_image=base_image)
    for result in again:
        assert result.image_id == built_images[result.name].image_id, result.name
        # every RUN/COPY/ENV/ARG in a stage comes from the cache (FROM and global ARGs are not counted)
        assert result.steps and result.cached == result.steps, f"{result.name}: {result.cached}/{result.steps} cached"


@pytest.fixture
def local_registry(tmp_path):
    """Debian's docker-registry (the CNCF distribution registry) on a free loopback port, for `make push`."""
    import shutil
    import socket
    import subprocess
    import urllib.request

    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry not installed (apt-get install docker-registry; .ci/docker.sh does)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_push_gives_the_digest_the_registry_serves(docker_client, built_images, base_image, local_registry):
    """`make push` to another registry: the same layers tagged for it (cache only), pushed, pinned by digest."""
    import urllib.request

    step = "extract"  # the smallest image: the shared base and the project
    results = images.build([step], base_image=base_image, registry=local_registry)
    try:
        assert all(r.cached == r.steps for r in results)  # retagging for a registry rebuilds nothing
        digests = images.push([step], registry=local_registry)
        image = images.image_name(step, registry=local_registry)
        reference = digests[image]
        assert reference.startswith(f"{local_registry}/tagifai-{step}@sha256:")
        assert images.pushed_reference(step, registry=local_registry) == reference
        request = urllib.request.Request(
            f"http://{local_registry}/v2/tagifai-{step}/manifests/{images.image_tags([step])[step]}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["Docker-Content-Digest"] == reference.split("@", 1)[1]
    finally:
        for r in results:
            with contextlib.suppress(Exception):
                docker_client.images.remove(r.image)  # the extra tags only; the layers stay
