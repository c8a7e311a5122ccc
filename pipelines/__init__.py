"""Pipelines: wiring only. Build them with :func:`pipelines.factory.build` from explicit arguments."""

NAMES = ("continual", "dataops", "mlops", "sensor")
