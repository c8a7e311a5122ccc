"""Compiled pipeline packages for the delivery commands: compile, read inputs, type parameters, cron.

Shared by ``tagifai submit/schedule/backfill`` (Kubeflow) and ``tagifai vertex run/schedule``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ROOT / "pipelines" / "compiled"


class DeliveryError(Exception):
    """A delivery command cannot go on; the message says why and what to do."""


def step_images(settings=None, by_digest: bool = False) -> dict[str, str]:
    """Every step's image: ``<registry>/tagifai-<step>:<tag>`` from ``settings`` (default: the environment's),
    the tag being TAGIFAI_IMAGE_TAG / ``--tag`` when given, else each step's content tag (the one ``tagifai
    images build`` gives it, :func:`tagifai_cli.images.content_tags`); or with ``by_digest`` the
    ``<registry>/tagifai-<step>@sha256:...`` that ``tagifai images push`` recorded for that tag.
    """
    from tagifai import steps
    from tagifai.config import get_settings
    from tagifai_cli import images

    settings = settings or get_settings()
    steps.check_names(settings.images)
    registry = settings.registry.rstrip("/")
    if not by_digest:
        unpinned = [s.name for s in steps.STEPS if not settings.images.get(s.name)]
        tags = images.image_tags(unpinned, settings.image_tag) if unpinned else {}
        return {s.name: settings.images.get(s.name) or s.image(registry, tags[s.name]) for s in steps.STEPS}
    tags = images.image_tags(steps.NAMES, settings.image_tag)
    refs = {s.name: images.pushed_reference(s.name, registry, tags[s.name]) for s in steps.STEPS}
    missing = [name for name, ref in refs.items() if not ref]
    if missing:
        looked_up = f"tag {settings.image_tag}" if settings.image_tag else ", ".join(f"{n}:{tags[n]}" for n in missing)
        raise DeliveryError(
            f"--by-digest: no pushed digest for {', '.join(missing)}; run `tagifai images build` "
            f"and `tagifai images push` first (looked up in {registry}: {looked_up})"
        )
    return refs


# --- images Vertex AI can pull ------------------------------------------------------------------------
# Vertex AI pulls each step's image itself, from outside any machine or cluster of ours: a registry on this
# machine (localhost:5000, kind's registry) or one without a host (Docker Hub by default) is a job that
# fails minutes later with an image pull error. The delivery commands refuse such images before sending.

#: The registry of the committed Vertex flavour (pipelines/compiled/vertex) and of ``tagifai compile
#: --target vertex`` without a registry: an Artifact Registry path to fill in, refused by every submit.
PLACEHOLDER_REGISTRY = "REGION-docker.pkg.dev/PROJECT/REPO"
VERTEX_IMAGES_HINT = (
    f"--registry {PLACEHOLDER_REGISTRY} (your Artifact Registry repository), or --by-digest after "
    "`tagifai images push` to it"
)


def _repository(image: str) -> str:
    """``host/path/name`` of an image reference, without its tag or digest."""
    name = image.split("@")[0]
    return name[: name.rfind(":")] if name.rfind(":") > name.rfind("/") else name


def registry_host(image: str) -> str | None:
    """The registry host (with its port) an image reference names, or None when it names none
    (``tagifai-train:0.1.0``, ``user/tagifai-train``: Docker Hub by default)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first.lower() == "localhost"):
        return first
    return None


def vertex_pull_problem(image: str) -> str | None:
    """Why Vertex AI cannot pull ``image`` (a short phrase), or None when it names a registry it can reach."""
    import ipaddress

    if any(c.isupper() for c in _repository(image)):  # repository names are lower case
        return "a placeholder (upper case) to fill in"
    host = registry_host(image)
    if host is None:
        return "no registry host"
    name = host.lower()
    name = name[1 : name.index("]")] if name.startswith("[") else name.rsplit(":", 1)[0]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        if address.is_loopback or address.is_unspecified or address.is_link_local:
            return "a registry on this machine"
        if address.is_private:
            return "a private address Vertex AI does not reach"
        return None
    if name == "localhost" or name.endswith(".localhost"):
        return "a registry on this machine"
    if name.endswith((".local", ".internal")):
        return "a name only this machine or its network resolves"
    if "." not in name:
        return "a local host name (no domain), e.g. kind's registry"
    return None


def spec_images(spec: dict) -> dict[str, str]:
    """Step -> image of every task of a compiled pipeline spec (the executor label when an image is not
    ``.../tagifai-<step>...``)."""
    from tagifai import steps

    out: dict[str, str] = {}
    for label, executor in sorted(spec.get("deploymentSpec", {}).get("executors", {}).items()):
        image = executor.get("container", {}).get("image", "")
        last = _repository(image).rsplit("/", 1)[-1]
        out.setdefault(last.removeprefix("tagifai-") if last.startswith("tagifai-") else label, image)
    order = {name: i for i, name in enumerate(steps.NAMES)}  # the step table's order, then the others
    return dict(sorted(out.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def check_vertex_images(images: dict[str, str], package: str | None = None, placeholder_ok: bool = False) -> None:
    """Raise DeliveryError (one line) naming the steps whose image Vertex AI cannot pull, and what to give.

    ``package``: the file the images come from (``--package``), said in the message; ``placeholder_ok``:
    accept :data:`PLACEHOLDER_REGISTRY` (compiling the template, not sending it)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for step, image in images.items():
        if placeholder_ok and image.startswith(PLACEHOLDER_REGISTRY + "/"):
            continue
        problem = vertex_pull_problem(image)
        if problem:
            where = _repository(image).rpartition("/")[0] or image
            groups.setdefault((where, problem), []).append(step)
    if not groups:
        return
    found = "; ".join(f"{', '.join(steps)} ({where}: {problem})" for (where, problem), steps in groups.items())
    if package:
        remedy = f"compile {package} again with `tagifai compile --target vertex` and {VERTEX_IMAGES_HINT}"
    else:
        remedy = f"give {VERTEX_IMAGES_HINT}"
    raise DeliveryError(f"Vertex AI cannot pull the images of {found}; {remedy}")


def vertex_images(settings, images: dict[str, str], by_digest: bool = False) -> tuple[dict[str, str], bool]:
    """The images of a Vertex compile, and whether they are the placeholder template.

    No registry given (no --registry, TAGIFAI_REGISTRY or --by-digest): the steps not pinned by
    TAGIFAI_IMAGES get :data:`PLACEHOLDER_REGISTRY` (what ``make compile`` commits; ``tagifai vertex run``
    refuses it). Otherwise ``images``, refused when Vertex AI cannot pull one of them.
    """
    if not by_digest and "registry" not in settings.model_fields_set:
        placeholder = step_images(settings.model_copy(update={"registry": PLACEHOLDER_REGISTRY}))
        check_vertex_images(placeholder, placeholder_ok=True)
        return placeholder, True
    check_vertex_images(images)
    return images, False


def compile_package(
    name: str,
    target: str,
    out_dir: str | Path,
    platform_config: str | None = None,
    images: dict[str, str] | None = None,
) -> Path:
    """Compile pipeline ``name`` for ``target`` (kubeflow or vertex) to ``out_dir/<name>.yaml``.

    ``images``: step -> image (default :func:`step_images` of the environment's settings); per-step
    execution settings from ``platform_config`` (default: the settings' platform_config, else
    pipelines/platform.yaml).
    """
    from kfp import compiler

    from pipelines import platform
    from pipelines.factory import build
    from tagifai.config import get_settings

    config = platform_config or get_settings().platform_config or None
    pipeline = build(name, target, images=images or step_images(), settings=platform.load(config))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return path


def read_documents(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def pipeline_spec(path: str | Path) -> dict:
    """The pipeline spec (first YAML document) of a compiled package."""
    docs = read_documents(path)
    if not docs or "pipelineInfo" not in docs[0]:
        raise DeliveryError(f"{path}: not a compiled KFP pipeline (no pipelineInfo)")
    return docs[0]


def package_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def input_types(spec: dict) -> dict[str, dict]:
    """name -> {"type": parameterType, "default": value or absent} of the pipeline's parameters."""
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {
        name: {
            "type": d.get("parameterType", "STRING"),
            **({"default": d["defaultValue"]} if "defaultValue" in d else {}),
            "optional": bool(d.get("isOptional")),
        }
        for name, d in params.items()
    }


def parse_assignments(items: list[str] | None, what: str = "--param") -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}`` (the value may hold ``=``)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DeliveryError(f"{what} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _coerce(name: str, value, kind: str):
    if not isinstance(value, str):
        return value
    try:
        if kind == "NUMBER_INTEGER":
            return int(value)
        if kind == "NUMBER_DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if kind in ("LIST", "STRUCT"):
            return yaml.safe_load(value)
    except ValueError:
        raise DeliveryError(f"parameter {name}={value!r}: expected {kind.lower().replace('number_', '')}") from None
    return value


def typed_parameters(spec: dict, given: dict, defaults: dict | None = None) -> dict:
    """Check ``given`` against the pipeline's inputs, type the values, add ``defaults`` where not given.

    Raises DeliveryError for an unknown parameter or a required one that has no value.
    """
    types = input_types(spec)
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise DeliveryError(
            f"unknown parameter(s) {', '.join(unknown)} for pipeline "
            f"{spec['pipelineInfo']['name']}; it takes {', '.join(sorted(types))}"
        )
    values = {k: v for k, v in (defaults or {}).items() if k in types and k not in given}
    values.update(given)
    missing = sorted(n for n, t in types.items() if "default" not in t and not t["optional"] and n not in values)
    if missing:
        raise DeliveryError(f"missing required parameter(s) {', '.join(missing)} (give --param NAME=VALUE)")
    return {k: _coerce(k, v, types[k]["type"]) for k, v in sorted(values.items())}


# --- cron --------------------------------------------------------------------------------------------
# Users write standard 5-field cron ("minute hour day-of-month month day-of-week", UTC). Kubeflow's
# scheduler (robfig/cron) takes 6 fields with seconds first; Vertex AI takes the 5 fields as they are.


def _fields(cron: str) -> list[str]:
    fields = cron.split()
    if len(fields) != 5:
        raise DeliveryError(f"cron {cron!r}: expected 5 fields (minute hour day-of-month month day-of-week)")
    return fields


def check_cron(cron: str) -> str:
    from croniter import croniter

    fields = _fields(cron)
    if not croniter.is_valid(" ".join(fields)):
        raise DeliveryError(f"cron {cron!r}: not a valid cron expression")
    return " ".join(fields)


def kfp_cron(cron: str) -> str:
    """The Kubeflow form of a 5-field cron: seconds first (``0 <cron>``)."""
    return "0 " + check_cron(cron)


def parse_time(value: str) -> dt.datetime:
    """An ISO date or date-time; naive values are UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DeliveryError(f"time {value!r}: expected ISO 8601 (2024-01-31 or 2024-01-31T06:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def intervals(cron: str, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The schedule's intervals ``[tick, next tick)`` that lie within ``[start, end]``, in order."""
    from croniter import croniter

    if end <= start:
        raise DeliveryError(f"--end {iso(end)} is not after --start {iso(start)}")
    it = croniter(check_cron(cron), start - dt.timedelta(seconds=1), ret_type=dt.datetime)
    out = []
    tick = it.get_next(dt.datetime)
    while True:
        following = it.get_next(dt.datetime)
        if following > end:
            return out
        out.append((tick, following))
        tick = following


class _Stamp:
    """A time for ``str.format``: ISO 8601 by default, ``{start:%Y-%m-%d}`` for a strftime format."""

    def __init__(self, t: dt.datetime):
        self.t = t

    def __format__(self, spec: str) -> str:
        return self.t.strftime(spec) if spec else iso(self.t)


def render_interval(params: dict, start: dt.datetime, end: dt.datetime) -> dict:
    """Parameter values with ``{start}`` / ``{end}`` (optionally ``{start:%Y%m%d}``) filled in."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and "{" in value:
            try:
                value = value.format(start=_Stamp(start), end=_Stamp(end))
            except (KeyError, IndexError, ValueError) as exc:
                raise DeliveryError(
                    f"parameter {key}={value!r}: only {{start}} and {{end}} can be filled in ({exc})"
                ) from None
        out[key] = value
    return out
