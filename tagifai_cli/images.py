"""Build, push and list the step images with the Docker SDK for Python (the ``docker`` package).

Every step has its own image, ``<registry>/tagifai-<step>:<tag>`` (registry and tag from settings:
TAGIFAI_REGISTRY, TAGIFAI_IMAGE_TAG), built from ``images/<step>.Dockerfile`` on top of a shared base,
``<registry>/tagifai-base:<tag>`` (``images/base.Dockerfile``: Python, the venv with the core
dependencies and kfp, the non-root user). ``BASE_IMAGE`` (default ``python:3.11-slim``) is what the
shared base starts from; a host with no registry builds one from Debian packages
(``images/debootstrap-base.sh``, or ``--debootstrap`` here).

The build context is made here, not read from the working tree as a whole: a tar of exactly the
files the Dockerfiles copy (Dockerfiles, hashed requirement locks, the project's packages, the dbt and
Great Expectations projects), with fixed timestamps and owners, so it is small, fast to send and the
same bytes for the same sources. Dependencies are installed before the source is copied, so a rebuild
after a source change reuses every dependency layer.

    python -m tagifai_cli.images build [STEP ...] [--base-image IMAGE | --debootstrap] [--no-cache]
    python -m tagifai_cli.images push [STEP ...]
    python -m tagifai_cli.images list
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "images"
STEPS = ("sync", "validate", "transform", "extract", "optimize", "train", "evaluate")
DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEBOOTSTRAP_BASE_IMAGE = "tagifai-python:3.11-bookworm"
STEP_LABEL = "org.tagifai.step"

#: What the build context holds (paths relative to the project root). Everything else stays out.
CONTEXT_PATHS = ("images", "pyproject.toml", "tagifai", "components", "pipelines", "tagifai_cli",
                 "dbt_transforms", "great_expectations")
_EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", "target", "logs", "dbt_packages", "uncommitted", ".ipynb_checkpoints",
                  "compiled"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")


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
    steps: int = 0  # Dockerfile instructions run
    cached: int = 0  # of which taken from the layer cache
    log: list[str] = field(default_factory=list, repr=False)


# ------------------------------------------------------------------------------------------------
# names


def registry_and_tag(registry: str | None = None, tag: str | None = None) -> tuple[str, str]:
    """The registry and tag from settings (TAGIFAI_REGISTRY, TAGIFAI_IMAGE_TAG), with overrides."""
    from tagifai.config import get_settings

    settings = get_settings(registry=registry, image_tag=tag)
    return settings.registry.rstrip("/"), settings.image_tag


def image_name(step: str, registry: str | None = None, tag: str | None = None) -> str:
    """``<registry>/tagifai-<step>:<tag>``; the same name the components are compiled with."""
    reg, t = registry_and_tag(registry, tag)
    return f"{reg}/tagifai-{step}:{t}"


def base_name(registry: str | None = None, tag: str | None = None) -> str:
    return image_name("base", registry, tag)


def default_base_image() -> str:
    return os.environ.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE


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
# build


def _stream_build(api, *, context: io.BytesIO, dockerfile: str, tag: str, buildargs: dict, labels: dict,
                  nocache: bool, network_mode: str | None, echo) -> BuildResult:
    result = BuildResult(name="", image=tag)
    context.seek(0)
    stream = api.build(
        fileobj=context, custom_context=True, dockerfile=dockerfile, tag=tag, buildargs=buildargs,
        labels=labels, nocache=nocache, rm=True, forcerm=True, pull=False, decode=True,
        network_mode=network_mode,
    )
    for chunk in stream:
        if "error" in chunk:
            tail = "".join(result.log[-25:])
            hint = ""
            if result.steps <= 2 and buildargs.get("BASE_IMAGE"):
                hint = (f"\n(the base image {buildargs['BASE_IMAGE']} could not be found or pulled; where no registry "
                        f"is reachable, build from Debian packages: --debootstrap or BASE_IMAGE={DEBOOTSTRAP_BASE_IMAGE})")
            raise ImageError(f"building {tag} from {dockerfile}: {chunk['error'].strip()}{hint}\n{tail}")
        if "stream" in chunk:
            text = chunk["stream"]
            result.log.append(text)
            for line in text.splitlines():
                if line.startswith("Step "):
                    result.steps += 1
                elif "Using cache" in line:
                    result.cached += 1
            if echo:
                echo(text)
        elif "aux" in chunk and "ID" in chunk["aux"]:
            result.image_id = chunk["aux"]["ID"]
    if not result.image_id:
        raise ImageError(f"building {tag}: the engine reported no image id\n{''.join(result.log[-25:])}")
    return result


def build(names: list[str] | None = None, *, base_image: str | None = None, registry: str | None = None,
          tag: str | None = None, nocache: bool = False, network_mode: str | None = None,
          root: Path = ROOT, verbose: bool = False, out=sys.stdout) -> list[BuildResult]:
    """Build the shared base and the step images ``names`` (default: all). Returns one result each.

    ``base_image`` (default BASE_IMAGE, else python:3.11-slim) must exist locally or be pullable by
    the engine; the shared base is rebuilt (from cache when nothing changed) before the steps.
    """
    steps = list(names or STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ImageError(f"unknown step(s) {', '.join(unknown)}; expected {', '.join(STEPS)}")
    base_image = base_image or default_base_image()
    c = client()
    try:
        c.images.get(base_image)
    except Exception:
        if base_image == DEBOOTSTRAP_BASE_IMAGE:
            build_debootstrap_base(base_image, out=out)
        # otherwise the engine pulls it (FROM), or fails saying why
    context = build_context(root)
    reg, t = registry_and_tag(registry, tag)
    labels = {"org.opencontainers.image.version": t, "org.tagifai.base-image": base_image}
    echo = (lambda text: out.write(text)) if verbose else None
    results: list[BuildResult] = []
    plan = [("base", "images/base.Dockerfile", base_name(reg, t), {"BASE_IMAGE": base_image})]
    plan += [(s, f"images/{s}.Dockerfile", image_name(s, reg, t), {"TAGIFAI_BASE": base_name(reg, t)}) for s in steps]
    base_size = 0
    for name, dockerfile, image, buildargs in plan:
        start = time.perf_counter()
        res = _stream_build(c.api, context=context, dockerfile=dockerfile, tag=image, buildargs=buildargs,
                            labels={**labels, **({STEP_LABEL: name} if name != "base" else {})},
                            nocache=nocache, network_mode=network_mode, echo=echo)
        res.name = name
        res.seconds = round(time.perf_counter() - start, 1)
        res.size = int(c.images.get(image).attrs["Size"])
        if name == "base":
            base_size = res.size
            try:
                res.own_size = res.size - int(c.images.get(base_image).attrs["Size"])
            except Exception:
                res.own_size = res.size
        else:
            res.own_size = res.size - base_size
        results.append(res)
        out.write(f"built {image:<48} {res.size / 1e6:7.0f} MB (+{res.own_size / 1e6:.0f} MB)  "
                  f"{res.seconds:6.1f} s  {res.cached}/{res.steps} steps cached\n")
        out.flush()
    _write_record("build", results, base_image)
    return results


def build_debootstrap_base(name: str = DEBOOTSTRAP_BASE_IMAGE, force: bool = False, out=sys.stdout) -> str:
    """Build the air-gapped base from Debian packages (images/debootstrap-base.sh); needs root."""
    env = dict(os.environ, **({"FORCE": "1"} if force else {}))
    proc = subprocess.run(["bash", str(IMAGES_DIR / "debootstrap-base.sh"), name], env=env, capture_output=True, text=True)
    out.write(proc.stdout)
    if proc.returncode != 0:
        raise ImageError(f"images/debootstrap-base.sh failed:\n{proc.stderr.strip()}")
    return name


# ------------------------------------------------------------------------------------------------
# push, list


def push(names: list[str] | None = None, *, registry: str | None = None, tag: str | None = None,
         out=sys.stdout) -> dict[str, str]:
    """Push the step images to their registry. Returns image -> ``<repository>@sha256:...``."""
    unknown = [s for s in names or () if s not in STEPS]
    if unknown:
        raise ImageError(f"unknown step(s) {', '.join(unknown)}; expected {', '.join(STEPS)}")
    c = client()
    digests: dict[str, str] = {}
    for step in names or STEPS:
        image = image_name(step, registry, tag)
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

    For compiling against digests (``tagifai compile``) after ``make push``; needs the engine.
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
    for name in ("base", *STEPS):
        image = image_name(name, registry, tag)
        try:
            img = c.images.get(image)
        except Exception:
            rows.append({"name": name, "image": image, "present": False})
            continue
        size = int(img.attrs["Size"])
        if name == "base":
            base_size = size
        rows.append({"name": name, "image": image, "present": True, "id": img.short_id, "size": size,
                     "own_size": size - base_size if (base_size and name != "base") else None,
                     "user": img.attrs["Config"].get("User", ""), "created": img.attrs.get("Created", "")[:19]})
    return rows


def _write_record(kind: str, data, base_image: str | None = None) -> None:
    """Keep the last build's timings and sizes (and pushed digests) in build/images.json."""
    path = ROOT / "build" / "images.json"
    try:
        record = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        record = {}
    if kind == "build":
        record["build"] = {"base_image": base_image, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "images": [{k: v for k, v in asdict(r).items() if k != "log"} for r in data]}
    else:
        record.setdefault("pushed", {}).update(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tagifai_cli.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", help="image registry (TAGIFAI_REGISTRY)")
    parser.add_argument("--tag", help="image tag (TAGIFAI_IMAGE_TAG)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the shared base and the step images")
    b.add_argument("steps", nargs="*", metavar="STEP", help=f"default: all of {', '.join(STEPS)}")
    b.add_argument("--base-image", help=f"BASE_IMAGE (default: $BASE_IMAGE, else {DEFAULT_BASE_IMAGE})")
    b.add_argument("--debootstrap", action="store_true",
                   help=f"use (and build if missing) the Debian-packages base {DEBOOTSTRAP_BASE_IMAGE}")
    b.add_argument("--no-cache", action="store_true", help="build every layer again")
    b.add_argument("--network", help="network of the build containers (e.g. host); default: the engine's bridge")
    b.add_argument("-v", "--verbose", action="store_true", help="show the engine's build output")
    p = sub.add_parser("push", help="push the step images to the registry")
    p.add_argument("steps", nargs="*", metavar="STEP", help="default: all")
    sub.add_parser("list", help="list the images with their sizes")
    sub.add_parser("base", help=f"build the Debian-packages base {DEBOOTSTRAP_BASE_IMAGE} (images/debootstrap-base.sh)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            base = args.base_image or (DEBOOTSTRAP_BASE_IMAGE if args.debootstrap else None)
            start = time.perf_counter()
            results = build(args.steps or None, base_image=base, registry=args.registry, tag=args.tag,
                            nocache=args.no_cache, network_mode=args.network, verbose=args.verbose)
            print(f"{len(results)} images in {time.perf_counter() - start:.1f} s (record: build/images.json)")
        elif args.command == "push":
            push(args.steps or None, registry=args.registry, tag=args.tag)
        elif args.command == "base":
            build_debootstrap_base(DEBOOTSTRAP_BASE_IMAGE)
        else:
            rows = list_images(args.registry, args.tag)
            for r in rows:
                if not r["present"]:
                    print(f"{r['image']:<48} (not built)")
                else:
                    own = f"(+{r['own_size'] / 1e6:.0f} MB)" if r["own_size"] is not None else ""
                    print(f"{r['image']:<48} {r['id']:<20} {r['size'] / 1e6:7.0f} MB {own:<12} user={r['user'] or 'root'}")
    except ImageError as exc:
        print(f"images: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
