"""Pipelines: wiring only.

The components read their image names (registry, tag settings) when their modules are imported, and
a pipeline is built for one target (``local``, ``kubeflow``, ``vertex``; see :mod:`pipelines.platform`)
when its module is imported: :func:`get_pipeline` re-imports what is stale when another target, settings
file, registry or tag is asked for.
"""

import importlib
import sys

from pipelines import platform

NAMES = ("continual", "dataops", "mlops")
#: Import order: continual nests dataops and mlops.
_MODULES = ("pipelines.dataops", "pipelines.mlops", "pipelines.continual")
_built_for: tuple | None = None


def get_pipeline(name: str, target: str | None = None):
    """The pipeline function of ``name`` (one of NAMES), built for ``target``.

    ``target`` defaults to TAGIFAI_TARGET, else ``local`` (no platform settings: what ``tagifai run``
    runs). ``kubeflow`` and ``vertex`` apply :mod:`pipelines.platform`'s settings file to every task.
    """
    global _built_for
    if name not in NAMES:
        raise ValueError(f"unknown pipeline {name!r}; expected one of {', '.join(NAMES)}")
    with platform.building(target or platform.current_target()):
        key = (platform.current_target(), platform.config_identity(), _forget_stale_components())
        if _built_for != key:
            for module in _MODULES:
                sys.modules.pop(module, None)
            for module in _MODULES:
                importlib.import_module(module)
            _built_for = key
        return getattr(sys.modules[f"pipelines.{name}"], name)


def _forget_stale_components() -> str:
    """Drop the imported component modules when the registry or tag setting changed since their import."""
    from components._images import image

    current = image("sync")
    imported = sys.modules.get("components.sync")
    if imported is not None and imported.sync.component_spec.implementation.container.image != current:
        for module in [m for m in sys.modules if m.startswith("components.") and m != "components._images"]:
            sys.modules.pop(module)
    return current
