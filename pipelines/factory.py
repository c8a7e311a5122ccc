"""Build a pipeline from explicit arguments: the target, the step images and the platform settings.

Nothing is read from the environment here and nothing is cached between builds, so two builds with
different arguments never see each other. Each pipeline module exposes ``build(plan)``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelines import NAMES, continual, dataops, mlops, sensor
from pipelines.platform import PlatformSettings, TaskPlan

_BUILDERS = {
    "continual": continual.build,
    "dataops": dataops.build,
    "mlops": mlops.build,
    "sensor": sensor.build,
}


def build(
    name: str, target: str = "local", images: Mapping[str, str] | None = None, settings: PlatformSettings | None = None
):
    """The pipeline ``name`` (one of NAMES) built for ``target``.

    ``images``: step name -> image (default: every step under the default registry and tag).
    ``settings``: the platform settings of a cluster target (default: pipelines/platform.yaml);
    ``local`` applies images only.
    """
    if name not in NAMES:
        raise ValueError(f"unknown pipeline {name!r}; expected one of {', '.join(NAMES)}")
    plan = TaskPlan(target, **({"images": dict(images)} if images else {}), settings=settings)
    return _BUILDERS[name](plan)
