"""Every pipeline compiles, deterministically, to the YAML committed under pipelines/compiled/."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPILED = ROOT / "pipelines" / "compiled"
PIPELINES = ["continual", "dataops", "mlops"]
STEPS = {"sync", "validate", "transform", "extract", "optimize", "train", "evaluate"}


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGIFAI_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    subprocess.run([sys.executable, "-m", "tagifai_cli.main", "compile", "--output-dir", str(out)], check=True, cwd=ROOT, env=_clean_env(), capture_output=True)
    return out


@pytest.mark.parametrize("name", PIPELINES)
def test_committed_yaml_is_what_the_code_compiles_to(compiled, name):
    committed = COMPILED / f"{name}.yaml"
    assert committed.exists(), f"{committed} missing: run `make compile`"
    assert (compiled / f"{name}.yaml").read_text() == committed.read_text(), f"{committed} is stale: run `make compile`"


@pytest.mark.parametrize("name", PIPELINES)
def test_every_task_names_its_steps_image(compiled, name):
    spec = yaml.safe_load((compiled / f"{name}.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert executors
    for executor in executors.values():
        image = executor["container"]["image"]
        step = image.rsplit("/", 1)[-1].split(":")[0].removeprefix("tagifai-")
        assert step in STEPS, image
        assert image == f"localhost:5000/tagifai-{step}:0.1.0"
        # no pip install at run time: the image carries the project and kfp
        assert "pip install" not in " ".join(executor["container"].get("command", []))


def test_registry_and_tag_are_settings_not_code(tmp_path):
    subprocess.run([sys.executable, "-m", "tagifai_cli.main", "compile", "mlops", "--output-dir", str(tmp_path), "--registry", "europe-docker.pkg.dev/p/r", "--tag", "v9"], check=True, cwd=ROOT, env=_clean_env(), capture_output=True)
    images = {e["container"]["image"] for e in yaml.safe_load((tmp_path / "mlops.yaml").read_text())["deploymentSpec"]["executors"].values()}
    assert images == {f"europe-docker.pkg.dev/p/r/tagifai-{s}:v9" for s in ("extract", "validate", "optimize", "train", "evaluate")}


def test_compiled_yaml_loads_back_with_the_sdk(compiled):
    from kfp import components

    for name in PIPELINES:
        component = components.load_component_from_file(str(compiled / f"{name}.yaml"))
        assert component.name == name
