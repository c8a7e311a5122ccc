"""Pipelines: wiring only. Build them with :func:`pipelines.factory.build` from explicit arguments."""

NAMES = ("continual", "dataops", "mlops", "sensor")


def forward(pipeline, values: dict, **overrides) -> dict:
    """The arguments of nested ``pipeline``: each of its inputs taken from ``values`` (the caller's
    ``locals()``, its own pipeline parameters) under the same name, then ``overrides``. A nested pipeline's
    input the caller lacks is a KeyError naming it, at compile time."""
    names = [n for n in pipeline.component_spec.inputs or {} if n not in overrides]
    missing = [n for n in names if n not in values]
    if missing:
        raise KeyError(f"{pipeline.name}: the calling pipeline has no parameter(s) {', '.join(missing)}")
    return {**{n: values[n] for n in names}, **overrides}
