"""The images' hashed locks (images/requirements/*.txt, made by images/lock.sh) agree with the project.

No engine needed: these run with the fast tests. A failure here means: run `bash images/lock.sh`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tagifai import steps

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "images" / "requirements"
#: shared lock -> the steps that install it below their own lock (from the step table: ml -> optimize, train, evaluate)
SHARED = {lock: [s.name for s in steps.STEPS if s.shared_lock == lock] for lock in steps.SHARED_LOCKS}
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)((?:\s*\\\s*\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M)


def _pins(path: Path) -> dict[str, tuple[str, int]]:
    text = path.read_text()
    pins = {canonicalize_name(m.group(1)): (m.group(2), m.group(3).count("--hash=")) for m in _PIN.finditer(text)}
    requirement_lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(requirement_lines) == len(pins), f"{path.name}: a requirement without a pin or a hash"
    return pins


def _freeze() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            out[canonicalize_name(name)] = version.strip()
    return out


def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: [Requirement(r) for r in v] for k, v in project["optional-dependencies"].items()}
    extras[""] = [Requirement(r) for r in project["dependencies"]]
    return extras


@pytest.mark.parametrize("name", ["build", "base", *SHARED, *steps.NAMES])
def test_every_pin_is_hashed_and_matches_requirements_lock(name):
    freeze = _freeze()
    pins = _pins(LOCKS / f"{name}.txt")
    assert pins
    for package, (version, hashes) in pins.items():
        assert hashes >= 1, package
        if package in freeze:
            assert version == freeze[package], (
                f"{name}.txt pins {package}=={version}, requirements.lock {freeze[package]}"
            )


def _expand(extras: dict[str, list[Requirement]], names: list[str]) -> list[Requirement]:
    """The requirements of extras ``names``, with the project's own extras (tagifai-pipelines[x]) expanded."""
    out: list[Requirement] = []
    for name in names:
        for req in extras[name]:
            if canonicalize_name(req.name) == "tagifai-pipelines":
                out += _expand(extras, sorted(req.extras))
            else:
                out.append(req)
    return out


@pytest.mark.parametrize("step", steps.STEPS, ids=steps.NAMES)
def test_step_lock_holds_its_extras_and_the_core_and_kfp(step):
    extras = _extras()
    pins = _pins(LOCKS / f"{step.name}.txt")
    wanted = _expand(extras, ["", "kfp", step.extra])
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{step.name}.txt lacks {req}"
        assert req.specifier.contains(pins[name][0], prereleases=True), (
            f"{step.name}.txt: {name}=={pins[name][0]} not in {req}"
        )
    # the shared base is a subset of every step's lock, with the same versions
    base = _pins(LOCKS / "base.txt")
    assert all(pins.get(k, (None,))[0] == v[0] for k, v in base.items()), step.name


def test_steps_do_not_carry_other_steps_extras():
    pins = {step: _pins(LOCKS / f"{step}.txt") for step in steps.NAMES}
    assert "great-expectations" not in pins["sync"] and "dlt" not in pins["validate"]
    assert "mlflow" not in pins["transform"] and "dbt-core" not in pins["train"]
    assert "optuna" in pins["optimize"] and "optuna" not in pins["evaluate"]


@pytest.mark.parametrize("lock", sorted(SHARED))
def test_a_shared_lock_is_what_its_steps_locks_have_in_common(lock):
    """The shared layer is part of each image on top of it, and holds nothing only one of them needs."""
    shared = _pins(LOCKS / f"{lock}.txt")
    locks = {step: _pins(LOCKS / f"{step}.txt") for step in SHARED[lock]}
    for step, pins in locks.items():
        assert all(pins.get(k) == v for k, v in shared.items()), f"{lock}.txt pins what {step}.txt does not"
    common = set.intersection(*(set(p) for p in locks.values()))
    assert set(shared) == common, f"{lock}.txt lacks {sorted(common - set(shared))}: run bash images/lock.sh"


def test_the_embedding_tokenizer_is_in_the_steps_that_fit_or_score_the_model_only():
    """tokenizers (the embedding extra) lands in the ML layer and nowhere else."""
    embedding = {canonicalize_name(r.name) for r in _extras()["embedding"]} - {"tagifai-pipelines"}
    assert "tokenizers" in embedding
    with_embedding = {s.name for s in steps.STEPS if "embedding" in str(_extras()[s.extra])}
    assert with_embedding == {"optimize", "train", "evaluate", "drift"}
    for step in steps.NAMES:
        pins = _pins(LOCKS / f"{step}.txt")
        assert (embedding <= set(pins)) == (step in with_embedding), step
    assert embedding <= set(_pins(LOCKS / "ml.txt"))
    assert not embedding & set(_pins(LOCKS / "base.txt"))
