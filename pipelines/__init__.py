"""Pipelines: wiring only.

Import a pipeline after settings (registry, tag) are in the environment: the components read their
image names when their modules are imported.
"""

import importlib

NAMES = ("continual", "dataops", "mlops")


def get_pipeline(name: str):
    """The pipeline function of ``name`` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"unknown pipeline {name!r}; expected one of {', '.join(NAMES)}")
    return getattr(importlib.import_module(f"pipelines.{name}"), name)
