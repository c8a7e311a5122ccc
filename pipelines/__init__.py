"""Pipelines: wiring only. Build them with :func:`pipelines.factory.build` from explicit arguments.

Each pipeline module has a task builder (``dataops.tasks``, ``mlops.tasks``) that adds its tasks to the
pipeline being defined, and ``build(plan)``, the pipeline of those tasks alone. ``continual`` and
``sensor`` call the builders in one DAG, so artifacts flow across what used to be the dataops/mlops
boundary (transform's Dataset into extract, train's Model into evaluate): the model traces back to the
source batches in the KFP UI and in ML Metadata, and under kfp.local (which cannot pass an artifact
into a nested pipeline).
"""

import inspect

NAMES = ("continual", "dataops", "mlops", "sensor")


def forward(builder, values: dict, **overrides) -> dict:
    """The keyword arguments of task builder ``builder``: each of its keyword-only parameters taken from
    ``values`` (the caller's ``locals()``, its own pipeline parameters) under the same name, then
    ``overrides``. A parameter the caller lacks is a KeyError naming it, at compile time."""
    params = inspect.signature(builder).parameters.values()
    names = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in overrides]
    required = {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
    missing = [n for n in names if n not in values and n in required]
    if missing:
        name = f"{builder.__module__}.{builder.__name__}"
        raise KeyError(f"{name}: the calling pipeline has no parameter(s) {', '.join(missing)}")
    return {**{n: values[n] for n in names if n in values}, **overrides}
