"""Image tags: by default each image's tag is a hash of what goes into it (``c-<12 hex>``), computed from
the files without a container engine; an explicit tag (``--tag``, TAGIFAI_IMAGE_TAG) wins.

The changes are made in a copy of the build context's files (``tmp_path``), never in the checkout.
"""

from __future__ import annotations

import io
import re
import shutil
import time

import pytest

from tagifai import steps
from tagifai_cli import images

ML = {s.name for s in steps.STEPS if s.shared_lock == "ml"}


@pytest.fixture
def root(tmp_path):
    """A copy of the files of the build context (what `tagifai images build` sends), and nothing else."""
    for top in images.CONTEXT_PATHS:
        src = images.ROOT / top
        if src.is_dir():
            shutil.copytree(src, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
        else:
            shutil.copy2(src, tmp_path / top)
    return tmp_path


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


def _append(path, text="\n# changed\n"):
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def test_a_tag_per_image_stable_and_computed_fast():
    start = time.perf_counter()
    first = images.content_tags()
    seconds = time.perf_counter() - start
    assert list(first) == ["base", *steps.NAMES]
    assert all(re.fullmatch(r"c-[0-9a-f]{12}", tag) for tag in first.values()), first
    assert images.content_tags() == first
    assert len(set(first.values())) == len(first), "two images share a content tag"
    assert seconds < 2, f"{seconds:.2f} s to hash the build context"  # about 10 ms here


def test_the_tag_depends_on_the_content_not_on_where_the_tree_is(root):
    assert images.content_tags(root=root) == images.content_tags()


def test_a_step_s_lock_re_tags_that_step_only(root):
    before = images.content_tags(root=root)
    _append(root / "images" / "requirements" / "optimize.txt")
    assert _changed(before, images.content_tags(root=root)) == {"optimize"}


def test_a_shared_lock_re_tags_the_steps_on_top_of_it(root):
    before = images.content_tags(root=root)
    _append(root / "images" / "requirements" / "ml.txt")
    assert _changed(before, images.content_tags(root=root)) == ML
    assert ML and set(steps.NAMES) != ML


def test_the_project_files_re_tag_every_step_and_not_the_base(root):
    before = images.content_tags(root=root)
    _append(root / "tagifai" / "__init__.py")
    assert _changed(before, images.content_tags(root=root)) == set(steps.NAMES)
    again = images.content_tags(root=root)
    (root / "dbt_transforms" / "models" / "new.sql").parent.mkdir(parents=True, exist_ok=True)
    (root / "dbt_transforms" / "models" / "new.sql").write_text("select 1\n")  # a new file counts too
    assert _changed(again, images.content_tags(root=root)) == set(steps.NAMES)


@pytest.mark.parametrize(
    "rel", ["images/base.Dockerfile", "images/requirements/base.txt", "images/requirements/build.txt"]
)
def test_the_base_s_inputs_re_tag_the_base_and_every_step(root, rel):
    before = images.content_tags(root=root)
    _append(root / rel)
    assert _changed(before, images.content_tags(root=root)) == {"base", *steps.NAMES}


def test_the_step_dockerfile_re_tags_every_step(root):
    before = images.content_tags(root=root)
    _append(root / images.STEP_DOCKERFILE)
    assert _changed(before, images.content_tags(root=root)) == set(steps.NAMES)


def test_the_executable_bit_counts(root):
    before = images.content_tags(root=root)
    script = root / "images" / "pip-install.sh"
    script.chmod(script.stat().st_mode ^ 0o111)
    assert _changed(before, images.content_tags(root=root)) == {"base", *steps.NAMES}


@pytest.mark.parametrize(
    "rel",
    [
        "images/README.md",  # in the context's folder, in no image
        "images/lock.sh",
        "images/debootstrap-base.sh",
        "pipelines/compiled/kubeflow/new.yaml",  # excluded from the context
        "tagifai/__pycache__/x.cpython-311.pyc",
        "tagifai/notes.swp",
        "docs/deploy.md",  # outside the context
        "tests/test_new.py",
        "README.md",
    ],
)
def test_a_file_outside_every_image_changes_no_tag(root, rel):
    before = images.content_tags(root=root)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    _append(path)
    assert images.content_tags(root=root) == before


def test_another_step_s_lock_leaves_a_step_without_a_shared_lock_alone(root):
    plain = next(s.name for s in steps.STEPS if not s.shared_lock)
    before = images.content_tags(root=root)
    for name in [*steps.NAMES, "ml"]:
        if name != plain:
            _append(root / "images" / "requirements" / f"{name}.txt")
    assert _changed(before, images.content_tags(root=root)) == set(steps.NAMES) - {plain}


# --- explicit tags win; "unset" is the empty setting


def test_the_setting_is_empty_by_default_meaning_content_tags(monkeypatch):
    from tagifai.config import Settings

    monkeypatch.delenv("TAGIFAI_IMAGE_TAG", raising=False)
    assert Settings.model_fields["image_tag"].default == ""
    assert images.registry_and_tag("r.example")[1] == ""
    assert images.image_tags() == {n: t for n, t in images.content_tags().items() if n != "base"}


def test_an_explicit_tag_wins_for_every_image(monkeypatch):
    monkeypatch.delenv("TAGIFAI_IMAGE_TAG", raising=False)
    assert images.image_tags(["base", "train"], "0.1.0") == {"base": "0.1.0", "train": "0.1.0"}
    assert images.image_name("train", "r.example", "v1") == "r.example/tagifai-train:v1"
    monkeypatch.setenv("TAGIFAI_IMAGE_TAG", "from-env")
    assert images.image_name("train", "r.example") == "r.example/tagifai-train:from-env"
    assert images.image_name("train", "r.example", "flag") == "r.example/tagifai-train:flag"  # a flag over the env


def test_compiled_and_run_images_name_the_content_tags_unless_a_tag_is_given(monkeypatch):
    from tagifai.config import get_settings
    from tagifai_cli.packaging import step_images

    monkeypatch.delenv("TAGIFAI_IMAGE_TAG", raising=False)
    monkeypatch.delenv("TAGIFAI_IMAGES", raising=False)
    tags = images.content_tags()
    assert step_images(get_settings(registry="r.example")) == {
        s.name: f"r.example/tagifai-{s.name}:{tags[s.name]}" for s in steps.STEPS
    }
    explicit = step_images(get_settings(registry="r.example", image_tag="0.1.0"))
    assert explicit == {s.name: f"r.example/tagifai-{s.name}:0.1.0" for s in steps.STEPS}


def test_the_build_plan_tags_each_image_with_its_content_tag(monkeypatch):
    monkeypatch.delenv("TAGIFAI_IMAGE_TAG", raising=False)
    tags = images.content_tags()
    base, *step_specs = images.plan(base_image="python:3.11-slim", registry="r.example")
    assert base.image == f"r.example/tagifai-base:{tags['base']}"
    assert base.labels["org.opencontainers.image.version"] == tags["base"]
    for spec in step_specs:
        assert spec.image == f"r.example/tagifai-{spec.name}:{tags[spec.name]}"
        assert spec.buildargs["TAGIFAI_BASE"] == base.image  # on top of the base of these sources
        assert spec.labels["org.opencontainers.image.version"] == tags[spec.name]
    # the base chosen at build time is a build argument, not part of the tags the compile computes
    other = images.plan(base_image=images.DEBOOTSTRAP_BASE_IMAGE, registry="r.example")
    assert [s.image for s in other] == [base.image, *(s.image for s in step_specs)]
    assert other[0].buildargs == {"BASE_IMAGE": images.DEBOOTSTRAP_BASE_IMAGE}


def test_push_and_list_use_the_content_tags(monkeypatch):
    """`tagifai images push` pushes, and `images list` looks up, the tags `images build` made."""
    monkeypatch.delenv("TAGIFAI_IMAGE_TAG", raising=False)
    tags = images.content_tags()
    pushed, looked_up = [], []

    class Images:
        def get(self, image):
            looked_up.append(image)
            raise LookupError(image)

    class API:
        def push(self, repository, tag, **kw):
            pushed.append(f"{repository}:{tag}")
            return iter([{"aux": {"Digest": "sha256:" + "d" * 64}}])

    class Client:
        images = Images()
        api = API()

    monkeypatch.setattr(images, "client", lambda timeout=600: Client())
    monkeypatch.setattr(images, "_write_record", lambda *a, **k: None)
    images.push(["train", "sync"], registry="r.example", out=io.StringIO())
    assert pushed == [f"r.example/tagifai-train:{tags['train']}", f"r.example/tagifai-sync:{tags['sync']}"]
    rows = images.list_images("r.example")
    assert (
        [r["image"] for r in rows] == looked_up == [f"r.example/tagifai-{n}:{tags[n]}" for n in ("base", *steps.NAMES)]
    )
    assert images.pushed_reference("train", "r.example") is None
    assert looked_up[-1] == f"r.example/tagifai-train:{tags['train']}"
