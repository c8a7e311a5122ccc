"""How each step runs on a cluster: resources, retries, caching and, on Kubeflow, Kubernetes settings.

The values are settings, not code: ``pipelines/platform.yaml`` (or the file named by
``TAGIFAI_PLATFORM_CONFIG``). The pipelines call :func:`configure` on each task; what it applies
depends on the target the pipeline is built for:

- ``local`` (the default, ``tagifai run``): nothing, the local runner runs the plain components.
- ``kubeflow`` (``tagifai compile``, ``tagifai submit``): caching, retries with backoff, CPU/memory
  requests and limits (plain KFP) plus kfp-kubernetes: ConfigMap and secrets as environment
  variables, secret volumes, PVC mounts, image pull secrets and policy, pod timeouts. The YAML then
  has a second document (``platforms: kubernetes:``).
- ``vertex`` (``tagifai compile --target vertex``, ``tagifai vertex run``): only what Vertex AI
  reads from a single-document pipeline spec: caching, retries, CPU/memory limits, and the static
  environment variables of the ``vertex:`` section.

Pipelines are built when their module is imported, so the target is chosen by
:func:`pipelines.get_pipeline` (``target=``) or the ``TAGIFAI_TARGET`` variable before the import.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Iterator

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

TARGETS = ("local", "kubeflow", "vertex")
#: Component names (the ``steps:`` keys of the settings file).
STEPS = ("sync", "airbyte_sync", "validate_table", "validate_dataset", "transform", "extract", "optimize", "train",
         "evaluate")
DEFAULT_CONFIG = Path(__file__).resolve().parent / "platform.yaml"
TARGET_ENV = "TAGIFAI_TARGET"
CONFIG_ENV = "TAGIFAI_PLATFORM_CONFIG"

_target_override: str | None = None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    num_retries: int = Field(ge=0)
    backoff_duration: str = "30s"
    backoff_factor: float = 2.0
    backoff_max_duration: str = "3600s"


class StepSettings(_Strict):
    caching: bool | None = None
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    retry: Retry | None = None
    timeout_seconds: int | None = Field(default=None, gt=0)


def _check_steps(steps: list[str] | None) -> list[str] | None:
    unknown = sorted(set(steps or ()) - set(STEPS))
    if unknown:
        raise ValueError(f"unknown step(s) {', '.join(unknown)}; expected some of {', '.join(STEPS)}")
    return steps


StepList = Annotated[list[str] | None, AfterValidator(_check_steps)]


class ConfigMapEnv(_Strict):
    config_map: str
    env: dict[str, str]  # ConfigMap key -> environment variable
    optional: bool = False
    steps: StepList = None  # None: every step


class SecretEnv(_Strict):
    secret: str
    env: dict[str, str]  # secret key -> environment variable
    optional: bool = False
    steps: StepList = None


class SecretVolume(_Strict):
    secret: str
    mount_path: str
    optional: bool = False
    steps: StepList = None


class PvcMount(_Strict):
    pvc: str
    mount_path: str
    sub_path: str = ""
    steps: StepList = None


class KubernetesSettings(_Strict):
    image_pull_secrets: list[str] = []
    image_pull_policy: str | None = None
    config_map_env: list[ConfigMapEnv] = []
    secret_env: list[SecretEnv] = []
    secret_volumes: list[SecretVolume] = []
    pvcs: list[PvcMount] = []

    @field_validator("image_pull_policy")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value not in (None, "Always", "IfNotPresent", "Never"):
            raise ValueError(f"image_pull_policy {value!r}: expected Always, IfNotPresent or Never")
        return value


class VertexSettings(_Strict):
    env: dict[str, str] = {}  # static environment variables of every step (no ConfigMaps on Vertex AI)


class PlatformSettings(_Strict):
    defaults: StepSettings = StepSettings()
    steps: dict[str, StepSettings] = {}
    kubernetes: KubernetesSettings = KubernetesSettings()
    vertex: VertexSettings = VertexSettings()

    @model_validator(mode="after")
    def _known_steps(self) -> "PlatformSettings":
        _check_steps(list(self.steps))
        return self

    def step(self, name: str) -> StepSettings:
        """The defaults with ``name``'s own values on top."""
        own = self.steps.get(name)
        if own is None:
            return self.defaults
        return StepSettings.model_validate({**self.defaults.model_dump(), **own.model_dump(exclude_unset=True)})


def load(path: str | Path | None = None) -> PlatformSettings:
    """Read and check a settings file (default: TAGIFAI_PLATFORM_CONFIG, else pipelines/platform.yaml)."""
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser().resolve()
    return _load(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: str, _mtime: int) -> PlatformSettings:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    try:
        return PlatformSettings.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def current_target() -> str:
    target = _target_override or os.environ.get(TARGET_ENV) or "local"
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    return target


@contextlib.contextmanager
def building(target: str) -> Iterator[None]:
    """Build (import) pipelines for ``target`` inside this block."""
    global _target_override
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    previous, _target_override = _target_override, target
    try:
        yield
    finally:
        _target_override = previous


def step_name(task) -> str:
    return task.component_spec.name.replace("-", "_")


def configure(*tasks) -> None:
    """Apply the settings of each task's step for the current target (nothing for ``local``)."""
    target = current_target()
    if target == "local":
        return
    settings = load()
    for task in tasks:
        name = step_name(task)  # a component not listed in STEPS gets the defaults and the all-step entries
        _apply_kfp(task, settings.step(name), target)
        if target == "kubeflow":
            _apply_kubernetes(task, name, settings.step(name), settings.kubernetes)
        else:
            for key, value in settings.vertex.env.items():
                task.set_env_variable(key, value)


def _apply_kfp(task, step: StepSettings, target: str) -> None:
    """Plain KFP settings (both targets; Vertex AI sizes machines from limits and ignores requests)."""
    if step.caching is not None:
        task.set_caching_options(step.caching)
    if step.retry is not None and step.retry.num_retries > 0:
        r = step.retry
        task.set_retry(r.num_retries, backoff_duration=r.backoff_duration, backoff_factor=r.backoff_factor,
                       backoff_max_duration=r.backoff_max_duration)
    if target == "kubeflow":
        if step.cpu_request:
            task.set_cpu_request(step.cpu_request)
        if step.memory_request:
            task.set_memory_request(step.memory_request)
    if step.cpu_limit:
        task.set_cpu_limit(step.cpu_limit)
    if step.memory_limit:
        task.set_memory_limit(step.memory_limit)


def _for(step: str, steps: list[str] | None) -> bool:
    return steps is None or step in steps


def _apply_kubernetes(task, name: str, step: StepSettings, k8s: KubernetesSettings) -> None:
    from kfp import kubernetes

    if step.timeout_seconds:
        kubernetes.set_timeout(task, step.timeout_seconds)
    if k8s.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(k8s.image_pull_secrets))
    if k8s.image_pull_policy:
        kubernetes.set_image_pull_policy(task, k8s.image_pull_policy)
    for item in k8s.config_map_env:
        if _for(name, item.steps):
            kubernetes.use_config_map_as_env(task, item.config_map, dict(item.env), optional=item.optional)
    for item in k8s.secret_env:
        if _for(name, item.steps):
            kubernetes.use_secret_as_env(task, item.secret, dict(item.env), optional=item.optional)
    for item in k8s.secret_volumes:
        if _for(name, item.steps):
            kubernetes.use_secret_as_volume(task, item.secret, item.mount_path, optional=item.optional)
    for item in k8s.pvcs:
        if _for(name, item.steps):
            kubernetes.mount_pvc(task, item.pvc, item.mount_path, sub_path=item.sub_path)


def config_identity() -> tuple:
    """What a built pipeline depends on besides the target: the settings file and its contents."""
    path = Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser().resolve()
    return (str(path), path.stat().st_mtime_ns if path.exists() else None)
