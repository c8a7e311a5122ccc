"""Build, push and list the step images with the Docker SDK for Python (the ``docker`` package).

Every step of the step table (:mod:`tagifai.steps`) has its own image, ``<registry>/tagifai-<step>:<tag>``
(registry from TAGIFAI_REGISTRY; tag from ``--tag`` or TAGIFAI_IMAGE_TAG, else the image's content tag
``c-<12 hex>``, a hash of the files that go into it: :func:`content_tags`), built from the one parameterized
``images/step.Dockerfile`` (build arguments ``STEP`` and ``SHARED_LOCK``) on top of a shared base,
``<registry>/tagifai-base:<tag>`` (``images/base.Dockerfile``: Python, the venv with the core dependencies
and kfp, the non-root user). ``BASE_IMAGE`` (default ``python:3.11-slim``) is what the shared base starts
from; a host with no registry builds one from Debian packages (``images/debootstrap-base.sh``, or
``--debootstrap`` here).

The build context is made here, not read from the working tree as a whole: a tar of exactly the
files the Dockerfiles copy (Dockerfiles, hashed requirement locks, the project's packages, the dbt and
Great Expectations projects), with fixed timestamps and owners, so it is small, fast to send and the
same bytes for the same sources. Dependencies are installed before the source is copied, so a rebuild
after a source change reuses every dependency layer.

    tagifai images build [STEP ...] [--base-image IMAGE | --debootstrap] [--no-cache]   # make images
    tagifai images push [STEP ...]                                                      # make push
    tagifai images list
    tagifai images base        # only the Debian-packages base

The locks (``images/requirements/<step>.txt`` and the shared ``<lock>.txt``) are made by ``images/lock.sh``,
which reads the step table through :func:`lock_plan` and :func:`common_pins`. This module imports nothing
but the standard library and :mod:`tagifai.steps` at the top, so lock.sh can use it with any Python 3.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tagifai import steps as step_table
from tagifai_cli.commands import help_of

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "images"
LOCKS_DIR = IMAGES_DIR / "requirements"
#: The one Dockerfile of every step image, and the shared base's (paths in the build context).
STEP_DOCKERFILE = "images/step.Dockerfile"
BASE_DOCKERFILE = "images/base.Dockerfile"
#: The SHARED_LOCK build argument of a step without a shared lock (the stage ``deps-none``: the base alone).
NO_SHARED_LOCK = "none"
DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEBOOTSTRAP_BASE_IMAGE = "tagifai-python:3.11-bookworm"
STEP_LABEL = "org.tagifai.step"
#: The extras every image holds besides its step's (the core dependencies come with any extra).
COMMON_EXTRAS = ("kfp",)

#: What the build context holds (paths relative to the project root). Everything else stays out.
CONTEXT_PATHS = (
    "images",
    "pyproject.toml",
    "tagifai",
    "components",
    "pipelines",
    "tagifai_cli",
    "dbt_transforms",
    "great_expectations",
)
_EXCLUDED_DIRS = {
    "__pycache__",
    ".pytest_cache",
    "target",
    "logs",
    "dbt_packages",
    "uncommitted",
    ".ipynb_checkpoints",
    "compiled",
}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
TAG_HELP = "image tag for every image (TAGIFAI_IMAGE_TAG; default: each image's content tag c-<hash>)"


class ImageError(RuntimeError):
    """A build or push failed; the message has the engine's error and the last lines of its output."""


@dataclass
class BuildResult:
    name: str  # "base" or a step
    image: str  # the tag
    image_id: str = ""
    seconds: float = 0.0
    size: int = 0  # bytes, the whole image
    own_size: int = 0  # bytes added on top of its parent image (the shared base for a step)
    steps: int = 0  # Dockerfile instructions the engine could take from its cache (not FROM, not a global ARG)
    cached: int = 0  # of which taken from the layer cache
    log: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class BuildSpec:
    """One image to build: ``name`` ("base" or a step), its Dockerfile, tag, build arguments and labels."""

    name: str
    dockerfile: str
    image: str
    buildargs: dict[str, str]
    labels: dict[str, str]


# ------------------------------------------------------------------------------------------------
# names


def registry_and_tag(registry: str | None = None, tag: str | None = None) -> tuple[str, str]:
    """The registry and the explicit tag from settings (TAGIFAI_REGISTRY, TAGIFAI_IMAGE_TAG), with overrides.

    The tag is ``""`` when none is given: each image then gets its content tag (:func:`image_tags`).
    """
    from tagifai.config import get_settings

    settings = get_settings(registry=registry, image_tag=tag)
    return settings.registry.rstrip("/"), settings.image_tag


def image_names(
    names: list[str] | None = None,
    registry: str | None = None,
    tag: str | None = None,
    *,
    root: Path = ROOT,
) -> dict[str, str]:
    """name -> ``<registry>/tagifai-<name>:<tag>`` of steps (or "base"; default every step), the tags computed once."""
    names = list(names or step_table.NAMES)
    reg, explicit = registry_and_tag(registry, tag)
    tags = image_tags(names, explicit, root=root)
    return {n: f"{reg}/tagifai-base:{tags[n]}" if n == "base" else step_table.get(n).image(reg, tags[n]) for n in names}


def image_name(name: str, registry: str | None = None, tag: str | None = None) -> str:
    """``<registry>/tagifai-<name>:<tag>`` of a step (or "base"); the name the components are compiled with."""
    return image_names([name], registry, tag)[name]


def base_name(registry: str | None = None, tag: str | None = None) -> str:
    return image_name("base", registry, tag)


def default_base_image() -> str:
    return os.environ.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE


def _steps(names) -> list[str]:
    """``names`` (default: every step of the table), or an ImageError naming the unknown ones."""
    try:
        return step_table.check_names(names or step_table.NAMES)
    except ValueError as exc:
        raise ImageError(str(exc)) from None


def client(timeout: int = 600):
    """A Docker SDK client for the engine of DOCKER_HOST (default: the local socket)."""
    import docker

    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
    except Exception as exc:  # DockerException, requests errors, FileNotFoundError of the socket
        raise ImageError(
            f"no Docker engine answers ({type(exc).__name__}: {exc}); start one (bash .ci/docker.sh as root) "
            "or set DOCKER_HOST"
        ) from exc
    return c


# ------------------------------------------------------------------------------------------------
# the build plan and the locks, from the step table


def lock_path(name: str) -> Path:
    """``images/requirements/<name>.txt``: a step's lock, a shared lock, ``base`` or ``build``."""
    return LOCKS_DIR / f"{name}.txt"


def plan(
    names: list[str] | None = None,
    *,
    base_image: str | None = None,
    registry: str | None = None,
    tag: str | None = None,
    root: Path = ROOT,
) -> list[BuildSpec]:
    """What :func:`build` builds, in order: the shared base, then one image per step of ``names`` (default all).

    Every step image comes from :data:`STEP_DOCKERFILE` with ``STEP=<step>`` and ``SHARED_LOCK=<its shared
    lock>`` (``none`` when it has none), on top of the shared base (``TAGIFAI_BASE``). Each image is tagged
    ``tag`` (else TAGIFAI_IMAGE_TAG), else with its own content tag (:func:`content_tags`).
    """
    steps = _steps(names)
    base_image = base_image or default_base_image()
    names_ = image_names(["base", *steps], registry, tag, root=root)
    base = names_["base"]

    def labels(image: str) -> dict[str, str]:
        return {"org.opencontainers.image.version": image.rpartition(":")[2], "org.tagifai.base-image": base_image}

    specs = [BuildSpec("base", BASE_DOCKERFILE, base, {"BASE_IMAGE": base_image}, labels(base))]
    for name in steps:
        step = step_table.get(name)
        specs.append(
            BuildSpec(
                name,
                STEP_DOCKERFILE,
                names_[name],
                {"TAGIFAI_BASE": base, "STEP": name, "SHARED_LOCK": step.shared_lock or NO_SHARED_LOCK},
                {**labels(names_[name]), STEP_LABEL: name},
            )
        )
    return specs


def lock_plan() -> str:
    """What images/lock.sh compiles, one line each, steps first, then the shared locks made from them.

    ``step <name> <extra> <extra>...``: ``<name>.txt`` from those pyproject extras (the step's and kfp);
    ``shared <lock> <step> <step>...``: ``<lock>.txt``, the pins common to those steps' locks.
    """
    lines = [" ".join(("step", s.name, s.extra, *COMMON_EXTRAS)) for s in step_table.STEPS]
    lines += [" ".join(("shared", lock, *names)) for lock, names in sorted(step_table.SHARED_LOCKS.items())]
    return "\n".join(lines)


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _lock_entries(text: str) -> dict[str, tuple[str, str]]:
    """A hashed lock as {canonical name: (the entry with that name, the entry as written)}, in file order.

    An entry is a pin line and its ``--hash`` lines; the first form compares entries whatever the
    spelling of the name (``PyYAML``, ``pyyaml``).
    """
    entries: dict[str, tuple[list[str], list[str]]] = {}
    current: tuple[list[str], list[str]] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            if current is None:
                raise ValueError(f"a continuation line without a requirement: {line.strip()[:60]}")
            current[0].append(line.strip())
            current[1].append(line)
            continue
        match = _REQUIREMENT_NAME.match(line)
        if match is None:
            raise ValueError(f"not a requirement: {line[:60]}")
        name = re.sub(r"[-_.]+", "-", match.group()).lower()
        current = entries[name] = ([name + line[match.end() :]], [line])
    return {name: ("\n".join(key), "\n".join(written)) for name, (key, written) in entries.items()}


def common_pins(texts: list[str]) -> str:
    """The entries (same version, same hashes) that every lock of ``texts`` holds, in the first lock's order.

    A shared lock is this for the locks of the steps that share it: what each of them needs, and
    nothing that only one of them needs (optuna stays in optimize.txt), so the shared layer is a part
    of every image on top of it.
    """
    if not texts:
        raise ValueError("common_pins needs at least one lock")
    first, *others = [_lock_entries(t) for t in texts]
    common = [text for name, (key, text) in first.items() if all(o.get(name, ("",))[0] == key for o in others)]
    return "\n".join(common) + "\n"


# ------------------------------------------------------------------------------------------------
# build context


def _included(rel: Path) -> bool:
    if any(part in _EXCLUDED_DIRS for part in rel.parts):
        return False
    return not rel.name.endswith(_EXCLUDED_SUFFIXES)


def _context_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for top in CONTEXT_PATHS:
        path = root / top
        if path.is_file():
            files.append(Path(top))
        elif path.is_dir():
            for p in sorted(path.rglob("*")):
                rel = p.relative_to(root)
                if p.is_file() and not p.is_symlink() and _included(rel):
                    files.append(rel)
    return sorted(set(files))


def build_context(root: Path = ROOT) -> io.BytesIO:
    """The build context as an uncompressed tar: fixed mtime/owner, sorted, so equal sources give equal bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in _context_files(root):
            path = root / rel
            info = tarfile.TarInfo(str(rel))
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    buf.seek(0)
    return buf


# ------------------------------------------------------------------------------------------------
# content tags: the default tag of each image is a hash of what goes into it


#: A content tag: this prefix and the first hex digits of the sha256 of the image's inputs.
CONTENT_TAG_PREFIX = "c-"
CONTENT_TAG_DIGITS = 12
#: What the shared base's image holds from the context (images/base.Dockerfile's COPY lines).
BASE_INPUTS = (
    BASE_DOCKERFILE,
    "images/pip-install.sh",
    "images/requirements/build.txt",
    "images/requirements/base.txt",
)
#: The project files every step image copies (images/step.Dockerfile); the rest of images/ is not in it.
PROJECT_PATHS = tuple(p for p in CONTEXT_PATHS if p != "images")


def _file_digest(path: Path) -> str:
    """sha256 of a file's bytes and its executable bit (the build context keeps the mode)."""
    digest = hashlib.sha256(b"x" if os.access(path, os.X_OK) else b"-")
    with open(path, "rb") as fh:
        digest.update(fh.read())
    return digest.hexdigest()


def _tag_of(parts: list[str]) -> str:
    return CONTENT_TAG_PREFIX + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:CONTENT_TAG_DIGITS]


def content_tags(names: list[str] | None = None, *, root: Path = ROOT) -> dict[str, str]:
    """name -> ``c-<12 hex>`` of the shared base ("base") and of steps ``names`` (default every step).

    The hash of what goes into each image, read from the files (no engine, standard library only): the
    base's from :data:`BASE_INPUTS` and the default base image reference (:data:`DEFAULT_BASE_IMAGE`); a
    step's from the base's tag, images/step.Dockerfile, its lock, its shared lock and the project files of
    the build context (:data:`PROJECT_PATHS`, with the context's exclusions: no __pycache__, no
    pipelines/compiled). Each file counts with its path, its bytes and its executable bit. A file outside
    an image (tests, docs, images/README.md, another step's lock) leaves its tag as it is.

    A base chosen at build time (``--base-image``, ``--debootstrap``, BASE_IMAGE) is not part of the tag:
    ``tagifai compile``, ``submit`` and ``run --runner docker`` compute the same tags without that flag and
    must name the images the build made. To keep builds from two bases apart, give them a ``--tag``.
    """
    steps = _steps(names)
    cache: dict[str, str] = {}

    def entry(rel: str) -> str:
        if rel not in cache:
            path = root / rel
            cache[rel] = f"{rel} {_file_digest(path) if path.is_file() else 'missing'}"
        return cache[rel]

    base = _tag_of(["base", f"BASE_IMAGE={DEFAULT_BASE_IMAGE}", *(entry(f) for f in BASE_INPUTS)])
    project = [str(rel) for rel in _context_files(root) if rel.parts[0] in PROJECT_PATHS]
    tags = {"base": base}
    for name in steps:
        shared = step_table.get(name).shared_lock
        locks = [f"images/requirements/{lock}.txt" for lock in (shared, name) if lock]
        inputs = [STEP_DOCKERFILE, *locks, *project]
        tags[name] = _tag_of(
            [f"step {name}", f"TAGIFAI_BASE=tagifai-base:{base}", f"SHARED_LOCK={shared or NO_SHARED_LOCK}"]
            + [entry(f) for f in inputs]
        )
    return tags


def image_tags(names: list[str] | None = None, tag: str | None = None, *, root: Path = ROOT) -> dict[str, str]:
    """name -> the tag of each image of ``names`` (steps or "base"; default every step): ``tag`` for every one
    when given (``--tag``, TAGIFAI_IMAGE_TAG), else each one's content tag (:func:`content_tags`)."""
    names = list(names or step_table.NAMES)
    if tag:
        return dict.fromkeys(names, tag)
    tags = content_tags([n for n in names if n != "base"] or None, root=root)
    return {n: tags[n] for n in names}


# ------------------------------------------------------------------------------------------------
# build


def _write_log(name: str, log: list[str]) -> Path:
    path = ROOT / "build" / "logs" / f"image-{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(log))
    return path


def _stream_build(
    api, spec: BuildSpec, *, context: io.BytesIO, nocache: bool, network_mode: str | None, echo
) -> BuildResult:
    """Run one build through the engine's classic builder (what docker-py's ``api.build`` talks to)."""
    result = BuildResult(name=spec.name, image=spec.image)
    context.seek(0)
    stream = api.build(
        fileobj=context,
        custom_context=True,
        dockerfile=spec.dockerfile,
        tag=spec.image,
        buildargs=spec.buildargs,
        labels=spec.labels,
        nocache=nocache,
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
        network_mode=network_mode,
    )
    in_stage = False
    for chunk in stream:
        if "error" in chunk:
            log = _write_log(spec.name, result.log)
            tail = [line for line in "".join(result.log).splitlines() if line.strip()][-4:]
            hint = []
            if not in_stage and spec.buildargs.get("BASE_IMAGE"):
                hint = [
                    f"the base image {spec.buildargs['BASE_IMAGE']} could not be found or pulled; where no "
                    f"registry is reachable, build from Debian packages: --debootstrap or "
                    f"BASE_IMAGE={DEBOOTSTRAP_BASE_IMAGE}"
                ]
            raise ImageError(
                "\n".join(
                    [
                        f"building {spec.image} from {spec.dockerfile}: {chunk['error'].strip()} "
                        f"(whole output: {log.relative_to(ROOT)})",
                        *hint,
                        *tail,
                    ]
                )
            )
        if "stream" in chunk:
            text = chunk["stream"]
            result.log.append(text)
            for line in text.splitlines():
                if line.startswith("Step "):
                    instruction = line.split(" : ", 1)[-1].split(" ", 1)[0].upper()
                    if instruction == "FROM":
                        in_stage = True
                    elif in_stage:  # a global ARG (before the first FROM) and FROM never hit the cache
                        result.steps += 1
                elif "Using cache" in line:
                    result.cached += 1
            if echo:
                echo(text)
        elif "aux" in chunk and "ID" in chunk["aux"]:
            result.image_id = chunk["aux"]["ID"]
    if not result.image_id:
        raise ImageError(f"building {spec.image}: the engine reported no image id\n{''.join(result.log[-5:])}")
    return result


def build(
    names: list[str] | None = None,
    *,
    base_image: str | None = None,
    registry: str | None = None,
    tag: str | None = None,
    nocache: bool = False,
    network_mode: str | None = None,
    root: Path = ROOT,
    verbose: bool = False,
    out=sys.stdout,
) -> list[BuildResult]:
    """Build the shared base and the step images ``names`` (default: all). Returns one result each.

    ``base_image`` (default BASE_IMAGE, else python:3.11-slim) must exist locally or be pullable by
    the engine; the shared base is rebuilt (from cache when nothing changed) before the steps.
    """
    specs = plan(names, base_image=base_image, registry=registry, tag=tag, root=root)
    base_image = specs[0].buildargs["BASE_IMAGE"]
    c = client()
    try:
        c.images.get(base_image)
    except Exception:
        if base_image == DEBOOTSTRAP_BASE_IMAGE:
            build_debootstrap_base(base_image, out=out)
        # otherwise the engine pulls it (FROM), or fails saying why
    context = build_context(root)
    echo = (lambda text: out.write(text)) if verbose else None
    results: list[BuildResult] = []
    base_size = 0
    for spec in specs:
        start = time.perf_counter()
        res = _stream_build(c.api, spec, context=context, nocache=nocache, network_mode=network_mode, echo=echo)
        res.seconds = round(time.perf_counter() - start, 1)
        res.size = int(c.images.get(spec.image).attrs["Size"])
        if spec.name == "base":
            base_size = res.size
            try:
                res.own_size = res.size - int(c.images.get(base_image).attrs["Size"])
            except Exception:
                res.own_size = res.size
        else:
            res.own_size = res.size - base_size
        results.append(res)
        out.write(
            f"built {spec.image:<48} {res.size / 1e6:7.0f} MB (+{res.own_size / 1e6:.0f} MB)  "
            f"{res.seconds:6.1f} s  {res.cached}/{res.steps} steps cached\n"
        )
        out.flush()
    _write_record("build", results, base_image)
    return results


def build_debootstrap_base(name: str = DEBOOTSTRAP_BASE_IMAGE, force: bool = False, out=sys.stdout) -> str:
    """Build the air-gapped base from Debian packages (images/debootstrap-base.sh); needs root."""
    env = dict(os.environ, **({"FORCE": "1"} if force else {}))
    proc = subprocess.run(
        ["bash", str(IMAGES_DIR / "debootstrap-base.sh"), name], env=env, capture_output=True, text=True
    )
    out.write(proc.stdout)
    if proc.returncode != 0:
        raise ImageError(f"images/debootstrap-base.sh failed:\n{proc.stderr.strip()}")
    return name


# ------------------------------------------------------------------------------------------------
# push, list


def push(
    names: list[str] | None = None, *, registry: str | None = None, tag: str | None = None, out=sys.stdout
) -> dict[str, str]:
    """Push the step images (their content tags, or ``tag``) to their registry. Returns image ->
    ``<repository>@sha256:...``."""
    steps = _steps(names)
    images = image_names(steps, registry, tag)
    c = client()
    digests: dict[str, str] = {}
    for step in steps:
        image = images[step]
        repository, _, t = image.rpartition(":")
        start = time.perf_counter()
        digest = ""
        for chunk in c.api.push(repository, tag=t, stream=True, decode=True):
            if "error" in chunk:
                raise ImageError(f"pushing {image}: {chunk['error'].strip()}")
            aux = chunk.get("aux") or {}
            digest = aux.get("Digest", digest)
        if not digest:
            raise ImageError(f"pushing {image}: the engine reported no digest")
        digests[image] = f"{repository}@{digest}"
        out.write(f"pushed {image} -> {digests[image]} in {time.perf_counter() - start:.1f} s\n")
    _write_record("push", digests)
    return digests


def pushed_reference(step: str, registry: str | None = None, tag: str | None = None) -> str | None:
    """``<registry>/tagifai-<step>@sha256:...`` when the engine knows a pushed digest of the image, else None.

    The image is ``<registry>/tagifai-<step>:<tag>`` (no tag: its content tag, what ``tagifai images build``
    made from these sources). For compiling against digests (``--by-digest``) after ``make push``; needs the engine.
    """
    image = image_name(step, registry, tag)
    repository = image.rpartition(":")[0]
    try:
        attrs = client(timeout=30).images.get(image).attrs
    except Exception:
        return None
    return next((d for d in attrs.get("RepoDigests") or [] if d.startswith(f"{repository}@")), None)


def list_images(registry: str | None = None, tag: str | None = None) -> list[dict]:
    """The base and step images present in the engine: name, id, size, size on top of the base, created."""
    c = client()
    rows = []
    base_size = None
    for name, image in image_names(["base", *step_table.NAMES], registry, tag).items():
        try:
            img = c.images.get(image)
        except Exception:
            rows.append({"name": name, "image": image, "present": False})
            continue
        size = int(img.attrs["Size"])
        if name == "base":
            base_size = size
        rows.append(
            {
                "name": name,
                "image": image,
                "present": True,
                "id": img.short_id,
                "size": size,
                "own_size": size - base_size if (base_size and name != "base") else None,
                "user": img.attrs["Config"].get("User", ""),
                "created": img.attrs.get("Created", "")[:19],
            }
        )
    return rows


def _write_record(kind: str, data, base_image: str | None = None) -> None:
    """Keep the last build's timings and sizes (and pushed digests) in build/images.json."""
    path = ROOT / "build" / "images.json"
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        record = {}
    if kind == "build":
        record["build"] = {
            "base_image": base_image,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "images": [{k: v for k, v in asdict(r).items() if k != "log"} for r in data],
        }
    else:
        record.setdefault("pushed", {}).update(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------
# command line: `tagifai images ...` (tagifai_cli.main wires add_parser in; errors are raised, main prints them)


def cmd_build(args: argparse.Namespace) -> int:
    base = args.base_image or (DEBOOTSTRAP_BASE_IMAGE if args.debootstrap else None)
    start = time.perf_counter()
    results = build(
        args.steps or None,
        base_image=base,
        registry=args.registry,
        tag=args.tag,
        nocache=args.no_cache,
        network_mode=args.network,
        verbose=args.verbose,
    )
    print(f"{len(results)} images in {time.perf_counter() - start:.1f} s (record: build/images.json)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    push(args.steps or None, registry=args.registry, tag=args.tag)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for r in list_images(args.registry, args.tag):
        if not r["present"]:
            print(f"{r['image']:<48} (not built)")
        else:
            own = f"(+{r['own_size'] / 1e6:.0f} MB)" if r["own_size"] is not None else ""
            print(f"{r['image']:<48} {r['id']:<20} {r['size'] / 1e6:7.0f} MB {own:<12} user={r['user'] or 'root'}")
    return 0


def cmd_base(args: argparse.Namespace) -> int:
    build_debootstrap_base(DEBOOTSTRAP_BASE_IMAGE, force=args.force)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``tagifai images build|push|list|base``."""
    parser = subparsers.add_parser("images", help=help_of("images"), description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="images_command", required=True)
    names = ", ".join(step_table.NAMES)

    def names_flags(p: argparse.ArgumentParser, help_text: str) -> None:
        p.add_argument("steps", nargs="*", metavar="STEP", help=help_text)
        p.add_argument("--registry", help="image registry (TAGIFAI_REGISTRY)")
        p.add_argument("--tag", help=TAG_HELP)

    b = sub.add_parser("build", help="build the shared base and the step images")
    names_flags(b, f"default: all of {names}")
    b.add_argument("--base-image", help=f"BASE_IMAGE (default: $BASE_IMAGE, else {DEFAULT_BASE_IMAGE})")
    b.add_argument(
        "--debootstrap",
        action="store_true",
        help=f"use (and build if missing) the Debian-packages base {DEBOOTSTRAP_BASE_IMAGE}",
    )
    b.add_argument("--no-cache", action="store_true", help="build every layer again")
    b.add_argument("--network", help="network of the build containers (e.g. host); default: the engine's bridge")
    b.add_argument("-v", "--verbose", action="store_true", help="show the engine's build output")
    b.set_defaults(func=cmd_build)

    p = sub.add_parser("push", help="push the step images to the registry; prints each pushed digest")
    names_flags(p, "default: all")
    p.set_defaults(func=cmd_push)

    ls = sub.add_parser("list", help="list the images with their sizes")
    ls.add_argument("--registry", help="image registry (TAGIFAI_REGISTRY)")
    ls.add_argument("--tag", help=TAG_HELP)
    ls.set_defaults(func=cmd_list)

    base = sub.add_parser(
        "base", help=f"build the Debian-packages base {DEBOOTSTRAP_BASE_IMAGE} (images/debootstrap-base.sh)"
    )
    base.add_argument("--force", action="store_true", help="rebuild it when it exists")
    base.set_defaults(func=cmd_base)
    return parser
