"""The image build plan comes from the step table: one image per step, all from images/step.Dockerfile.

No engine needed: the plan, the Dockerfile's stages, the locks' files and the `tagifai images` and
`tagifai cluster` parsers, checked without building or running anything.
"""

from __future__ import annotations

import argparse
import re

import pytest

from tagifai import steps
from tagifai_cli import cluster, images

REGISTRY, TAG = "registry.example/team", "t1"


@pytest.fixture
def plan():
    return images.plan(base_image="python:3.11-slim", registry=REGISTRY, tag=TAG)


def test_one_entry_per_step_of_the_table_after_the_shared_base(plan):
    assert [spec.name for spec in plan] == ["base", *steps.NAMES]
    base, *step_specs = plan
    assert base.dockerfile == images.BASE_DOCKERFILE == "images/base.Dockerfile"
    assert base.image == f"{REGISTRY}/tagifai-base:{TAG}"
    assert base.buildargs == {"BASE_IMAGE": "python:3.11-slim"}
    assert len({spec.image for spec in step_specs}) == len(steps.STEPS), "two steps share one image"


@pytest.mark.parametrize("step", steps.STEPS, ids=steps.NAMES)
def test_each_step_builds_from_the_one_dockerfile_with_its_build_args(plan, step):
    spec = next(s for s in plan if s.name == step.name)
    assert spec.dockerfile == images.STEP_DOCKERFILE == "images/step.Dockerfile"
    assert spec.image == step.image(REGISTRY, TAG) == images.image_name(step.name, REGISTRY, TAG)
    assert spec.buildargs == {
        "TAGIFAI_BASE": f"{REGISTRY}/tagifai-base:{TAG}",
        "STEP": step.name,
        "SHARED_LOCK": step.shared_lock or "none",
    }
    assert spec.labels[images.STEP_LABEL] == step.name
    assert spec.labels["org.tagifai.base-image"] == "python:3.11-slim"


@pytest.mark.parametrize("step", steps.STEPS, ids=steps.NAMES)
def test_every_step_has_its_lock_and_its_shared_lock(step):
    lock = images.lock_path(step.name)
    assert lock.is_file(), f"no {lock.relative_to(images.ROOT)}: run bash images/lock.sh"
    assert "--hash=sha256:" in lock.read_text()
    if step.shared_lock:
        assert images.lock_path(step.shared_lock).is_file(), f"no shared lock {step.shared_lock}.txt"


def test_the_shared_locks_are_the_table_s():
    assert steps.SHARED_LOCKS == {"ml": ("optimize", "train", "evaluate", "drift")}
    for lock, names in steps.SHARED_LOCKS.items():
        assert set(names) == {s.name for s in steps.STEPS if s.shared_lock == lock}


def test_no_lock_outside_the_table():
    """Every lock file is base, build, a step's or a shared one (a removed step leaves no stale lock), or the
    MLflow server's (manifests/tagifai/mlflow: not a step; `tagifai cluster mlflow-image`)."""
    known = {"base", "build", *steps.NAMES, *steps.SHARED_LOCKS, "mlflow-server"}
    assert {p.stem for p in images.LOCKS_DIR.glob("*.txt")} == known


def test_the_dockerfile_has_a_stage_for_every_shared_lock_and_no_step_names():
    text = (images.ROOT / images.STEP_DOCKERFILE).read_text()
    assert "FROM ${TAGIFAI_BASE} AS deps-none" in text
    for lock in steps.SHARED_LOCKS:
        assert f"AS deps-{lock}\n" in text, f"step.Dockerfile has no stage deps-{lock}"
        assert f"COPY images/requirements/{lock}.txt" in text
    assert "FROM deps-${SHARED_LOCK}" in text
    code = [line for line in text.splitlines() if line and not line.startswith("#")]
    for name in steps.NAMES:  # the steps come from the build arguments, not from the file
        assert not any(re.search(rf"\b{name}\b", line) for line in code), (name, "step.Dockerfile")
    # layer order: shared lock, the step's lock, then the project, then the non-root user
    order = [
        text.index(s)
        for s in (
            "requirements/ml.txt",
            "FROM deps-${SHARED_LOCK}",
            "requirements/${STEP}.txt",
            "COPY tagifai ",
            "USER 10001:10001",
        )
    ]
    assert order == sorted(order)
    assert 'LABEL org.tagifai.step="${STEP}"' in text


def test_only_the_base_and_step_dockerfiles_are_left():
    names = sorted(p.name for p in images.IMAGES_DIR.glob("*Dockerfile"))
    assert names == ["base.Dockerfile", "mlflow.Dockerfile", "step.Dockerfile"]  # mlflow: the server, not a step


def test_lock_plan_lists_every_step_with_its_extra_then_the_shared_locks():
    lines = [line.split() for line in images.lock_plan().splitlines()]
    assert lines[: len(steps.STEPS)] == [["step", s.name, s.extra, "kfp"] for s in steps.STEPS]
    assert lines[len(steps.STEPS) :] == [["shared", "ml", "optimize", "train", "evaluate", "drift"]]


def test_common_pins_keeps_what_every_lock_pins_the_same_way():
    a = "# header\nx==1 \\\n    --hash=sha256:aa\nY_z==2 \\\n    --hash=sha256:bb\nonly-a==3 \\\n    --hash=sha256:cc\n"
    b = "y-z==2 \\\n    --hash=sha256:bb\nx==1 \\\n    --hash=sha256:aa\n"
    c = "x==1 \\\n    --hash=sha256:aa\nY_z==2 \\\n    --hash=sha256:other\n"
    assert images.common_pins([a, b]) == "x==1 \\\n    --hash=sha256:aa\nY_z==2 \\\n    --hash=sha256:bb\n"
    assert images.common_pins([a, b, c]) == "x==1 \\\n    --hash=sha256:aa\n"


def test_the_shared_lock_is_the_pins_common_to_its_steps_locks():
    for lock, names in steps.SHARED_LOCKS.items():
        texts = [images.lock_path(n).read_text() for n in names]
        shared = images.lock_path(lock).read_text()
        body = "".join(line + "\n" for line in shared.splitlines() if not line.startswith("#"))
        assert body == images.common_pins(texts), f"{lock}.txt is stale: run bash images/lock.sh"


def test_unknown_steps_are_refused_naming_the_known_ones():
    with pytest.raises(images.ImageError, match="unknown step.*no-such-step.*sync"):
        images.plan(["no-such-step"], base_image="b", registry=REGISTRY, tag=TAG)
    assert [s.name for s in images.plan(["train"], base_image="b", registry=REGISTRY, tag=TAG)] == ["base", "train"]


def _cli() -> argparse.ArgumentParser:
    """The shape of `tagifai`'s parser: subcommands that set ``func``."""
    parser = argparse.ArgumentParser(prog="tagifai")
    sub = parser.add_subparsers(dest="command", required=True)
    images.add_parser(sub)
    cluster.add_parser(sub)
    return parser


def test_images_subcommands_parse_to_their_functions():
    args = _cli().parse_args(["images", "build", "train", "evaluate", "--debootstrap", "--registry", "r", "--tag", "t"])
    assert args.func is images.cmd_build and args.steps == ["train", "evaluate"]
    assert args.debootstrap and args.registry == "r" and args.tag == "t" and args.base_image is None
    args = _cli().parse_args(["images", "build", "--base-image", "tagifai-python:3.11-bookworm", "--no-cache"])
    assert args.steps == [] and args.base_image == "tagifai-python:3.11-bookworm" and args.no_cache
    assert _cli().parse_args(["images", "push", "extract"]).func is images.cmd_push
    assert _cli().parse_args(["images", "list"]).func is images.cmd_list
    assert _cli().parse_args(["images", "base"]).func is images.cmd_base
    with pytest.raises(SystemExit):
        _cli().parse_args(["images"])


def test_cluster_subcommands_parse_to_their_functions():
    args = _cli().parse_args(["cluster", "deploy", "--overlay", "cluster", "--dry-run"])
    assert args.func is cluster.cmd_deploy and args.overlay == "cluster" and args.dry_run
    assert _cli().parse_args(["cluster", "kind-up", "--no-deploy"]).func is cluster.cmd_kind_up
    assert _cli().parse_args(["cluster", "kind-down", "--keep-registry"]).keep_registry
    with pytest.raises(SystemExit):
        _cli().parse_args(["cluster", "deploy", "--overlay", "nowhere"])


def test_cluster_dry_run_prints_the_commands_and_returns_0(capsys):
    args = _cli().parse_args(["cluster", "kind-down", "--dry-run"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "$ kind delete cluster --name tagifai" in out and "$ docker rm -f tagifai-registry" in out


def test_images_errors_are_raised_not_printed(monkeypatch):
    """`tagifai images` raises (tagifai_cli.main prints one line); an unknown step fails before the engine."""
    monkeypatch.setattr(images, "client", lambda *a, **k: pytest.fail("no engine for an unknown step"))
    args = _cli().parse_args(["images", "push", "no-such-step"])
    with pytest.raises(images.ImageError, match="unknown step"):
        args.func(args)
