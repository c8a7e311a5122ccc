"""The step table is complete: every step has a component module, an extra, a lock, an image and platform settings."""

import importlib
import tomllib
from pathlib import Path

import pytest

from tagifai import steps

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


@pytest.mark.parametrize("step", steps.STEPS, ids=steps.NAMES)
def test_every_step_has_its_components(step):
    module = importlib.import_module(step.module)
    for component in step.components:
        fn = getattr(module, component.name, None)
        assert fn is not None, f"{step.module} has no component {component.name}"
        assert fn.component_spec.name == component.task_prefix, "the task prefix the summary matches"
        assert fn.component_spec.implementation.container.image == steps.default_image(step.name)


@pytest.mark.parametrize("step", steps.STEPS, ids=steps.NAMES)
def test_every_step_has_an_extra_and_a_lock(step):
    assert step.extra in EXTRAS, f"pyproject.toml has no extra [{step.extra}]"
    assert step.extra in EXTRAS["all"][0], "the all extra installs every step"
    lock = ROOT / "images" / "requirements" / f"{step.name}.txt"
    assert lock.is_file(), f"no lock {lock.relative_to(ROOT)}: run bash images/lock.sh"
    assert f"[{step.extra}" in lock.read_text().splitlines()[1], "the lock says which extras it was compiled from"
    if step.shared_lock:
        assert (ROOT / "images" / "requirements" / f"{step.shared_lock}.txt").is_file()


@pytest.mark.parametrize("step", steps.STEPS, ids=steps.NAMES)
def test_every_step_has_an_image_and_platform_settings(step):
    from pipelines import platform

    assert (ROOT / "images" / "step.Dockerfile").is_file()
    assert step.image("r.example", "t") == f"r.example/tagifai-{step.name}:t"
    settings = platform.load()  # a step without its own entry gets the defaults
    for component in step.components:
        resolved = settings.step(component.name)
        assert resolved.memory_limit and resolved.cpu_limit and resolved.timeout_seconds, component.name


@pytest.mark.parametrize("step", steps.STEPS, ids=steps.NAMES)
def test_what_a_step_prepares_at_build_time_is_a_library_function(step):
    """``prepare`` is run by images/step.Dockerfile for every step (python -m tagifai.steps prepare STEP): it must
    name a library function (no component, CLI or pipeline code in an image build) or be empty."""
    if not step.prepare:
        assert steps.prepare(step.name) == ""
        return
    module, _, function = step.prepare.partition(":")
    assert module.startswith("tagifai.") and callable(getattr(importlib.import_module(module), function))


def test_transform_prepares_dbts_parse_and_the_module_runs_it(tmp_path, monkeypatch):
    import subprocess
    import sys

    assert steps.get("transform").prepare == "tagifai.transform:keep_parse"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TAGIFAI_HOME", str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "tagifai.steps", "prepare", "transform"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip().splitlines()[-1]).is_file()  # the kept parse
    assert list((tmp_path / "tagifai" / "dbt-parse").glob("local-*.msgpack"))
    done = subprocess.run([sys.executable, "-m", "tagifai.steps", "prepare", "sync"], capture_output=True, text=True)
    assert done.returncode == 0 and "nothing to prepare" in done.stdout
    done = subprocess.run([sys.executable, "-m", "tagifai.steps", "prepare"], capture_output=True, text=True)
    assert done.returncode != 0 and "usage" in done.stderr


def test_every_component_module_is_a_step():
    """No component module outside the table (a step is declared in one place)."""
    modules = {p.stem for p in (ROOT / "components").glob("*.py") if not p.name.startswith("_")}
    assert modules == set(steps.NAMES)


def test_platform_settings_name_only_steps_and_components(tmp_path):
    from pipelines import platform

    bad = tmp_path / "platform.yaml"
    bad.write_text("steps:\n  no-such-step: {caching: true}\n")
    with pytest.raises(ValueError, match="unknown step.*no-such-step"):
        platform.load(bad)


def test_component_settings_override_their_steps():
    from pipelines import platform

    settings = platform.load()
    assert settings.step("validate_table").retry.num_retries == 0  # a verdict on the data: never retried
    assert settings.step("validate_dataset").retry.num_retries == 0
    assert settings.step("validate_dataset").caching is True
    assert settings.step("validate_table").memory_limit == settings.step("validate_dataset").memory_limit == "2Gi"


def test_lookups_name_the_known_steps():
    with pytest.raises(KeyError, match="expected one of sync"):
        steps.get("no-such-step")
    with pytest.raises(ValueError, match="unknown step.*no-such-step"):
        steps.check_names(["train", "no-such-step"])
    assert steps.step_of_component("validate-dataset").name == "validate"
    assert steps.SHARED_LOCKS == {"ml": ("optimize", "train", "evaluate", "drift")}


def test_settings_doc_is_generated_from_the_settings_class():
    from tagifai.config import settings_table

    doc = ROOT / "docs" / "settings.md"
    assert doc.read_text() == settings_table(), "docs/settings.md is stale: python -m tagifai.config > docs/settings.md"


def test_secrets_never_print():
    from tagifai.config import get_settings

    settings = get_settings(kfp_token="sentinel-token-4411")
    assert "sentinel-token-4411" not in repr(settings) and "sentinel-token-4411" not in str(settings.model_dump())
    assert settings.kfp_token.get_secret_value() == "sentinel-token-4411"
