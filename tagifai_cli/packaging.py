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
    or with ``by_digest`` the ``<registry>/tagifai-<step>@sha256:...`` that ``tagifai images push`` recorded.
    """
    from tagifai import steps
    from tagifai.config import get_settings

    settings = settings or get_settings()
    steps.check_names(settings.images)
    if not by_digest:
        return {s.name: settings.images.get(s.name) or settings.image(s.name) for s in steps.STEPS}
    from tagifai_cli.images import pushed_reference

    refs = {s.name: pushed_reference(s.name, settings.registry, settings.image_tag) for s in steps.STEPS}
    missing = [name for name, ref in refs.items() if not ref]
    if missing:
        raise DeliveryError(
            f"--by-digest: no pushed digest for {', '.join(missing)}; run `tagifai images build` "
            "and `tagifai images push` first"
        )
    return refs


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
