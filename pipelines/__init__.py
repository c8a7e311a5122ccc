"""Pipelines: wiring only. Import ``PIPELINES`` after settings (registry, tag) are in the environment."""

from pipelines.continual import continual
from pipelines.dataops import dataops
from pipelines.mlops import mlops

PIPELINES = {"dataops": dataops, "mlops": mlops, "continual": continual}
