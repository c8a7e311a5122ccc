"""How each task runs: its image, and on a cluster its resources, retries, caching and Kubernetes settings.

The values are settings, not code: the step images come from the caller (``tagifai`` reads the
registry and tag from the settings), the rest from ``pipelines/platform.yaml`` or a file the caller
names. A :class:`TaskPlan` holds both for one target and is what the pipeline factories
(:func:`pipelines.build`) apply to every task with :meth:`TaskPlan.configure`:

- every target: the task's container image (``set_container_image``), from the step table
  (:mod:`tagifai.steps`) by the task's component;
- ``local`` (``tagifai run``): caching only (kfp.local's cache, keyed like KFP's); nothing else;
- ``kubeflow`` (``tagifai compile``, ``tagifai submit``): caching, retries with backoff, CPU/memory
  requests and limits (plain KFP) plus kfp-kubernetes: ConfigMap and secrets as environment
  variables, secret volumes, PVC mounts, image pull secrets and policy, pod timeouts, the container's
  user (security context: runAsUser/runAsGroup/runAsNonRoot; no fsGroup in kfp-kubernetes). The YAML then
  has a second document (``platforms: kubernetes:``);
- ``vertex`` (``tagifai compile --target vertex``, ``tagifai vertex run``): only what Vertex AI
  reads from a single-document pipeline spec: caching, retries, CPU/memory limits, and the static
  environment variables of the ``vertex:`` section.

Keys of the file's ``steps:`` are step names of the step table (``validate``) or component names
(``validate_dataset``): a component's values override its step's, which override ``defaults``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from tagifai import steps as step_table

TARGETS = ("local", "kubeflow", "vertex")
#: What the ``steps:`` keys of the settings file (and the ``steps:`` lists of its sections) may name.
KEYS = tuple(dict.fromkeys(step_table.NAMES + step_table.component_names()))
DEFAULT_CONFIG = Path(__file__).resolve().parent / "platform.yaml"


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
    # optimize only: Optuna workers fanned out with dsl.ParallelFor, sharing one study (pipelines/mlops.py)
    parallel_workers: int | None = Field(default=None, ge=1)


def _check_steps(steps: list[str] | None) -> list[str] | None:
    unknown = sorted(set(steps or ()) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown step(s) {', '.join(unknown)}; expected some of {', '.join(KEYS)}")
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


class SecurityContext(_Strict):
    """The container's identity (kfp-kubernetes' ``set_security_context``). kfp-kubernetes 2.17 sets no pod
    ``fsGroup``: the cluster makes a volume writable for this user (manifests/tagifai/data-permissions.yaml)."""

    run_as_user: int | None = Field(default=None, ge=0)
    run_as_group: int | None = Field(default=None, ge=0)
    run_as_non_root: bool | None = None


class KubernetesSettings(_Strict):
    image_pull_secrets: list[str] = []
    image_pull_policy: str | None = None
    config_map_env: list[ConfigMapEnv] = []
    secret_env: list[SecretEnv] = []
    secret_volumes: list[SecretVolume] = []
    pvcs: list[PvcMount] = []
    security_context: SecurityContext | None = None

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
    def _known_steps(self) -> PlatformSettings:
        _check_steps(list(self.steps))
        return self

    def step(self, component: str) -> StepSettings:
        """The defaults, then the values of the component's step, then the component's own values."""
        values = self.defaults.model_dump()
        keys = [step_table.step_of_component(component).name, component]
        for key in dict.fromkeys(keys):
            own = self.steps.get(key)
            if own is not None:
                values.update(own.model_dump(exclude_unset=True))
        return StepSettings.model_validate(values)


def load(path: str | Path | None = None) -> PlatformSettings:
    """Read and check a settings file (default: pipelines/platform.yaml)."""
    path = Path(path or DEFAULT_CONFIG).expanduser().resolve()
    return _load(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: str, _mtime: int) -> PlatformSettings:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    try:
        return PlatformSettings.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def default_images() -> dict[str, str]:
    """Every step's image under the default registry and tag (what a plain compile names)."""
    return {s.name: s.image() for s in step_table.STEPS}


@dataclass(frozen=True)
class TaskPlan:
    """How the tasks of pipelines built for ``target`` run: step images and (clusters) platform settings."""

    target: str = "local"
    images: Mapping[str, str] = field(default_factory=default_images)
    settings: PlatformSettings | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r}: expected one of {', '.join(TARGETS)}")
        missing = [s for s in step_table.NAMES if s not in self.images]
        if missing:
            raise ValueError(f"no image for step(s) {', '.join(missing)}")
        if self.settings is None:  # local runs take the caching settings from it too
            object.__setattr__(self, "settings", load())

    def workers(self, component: str) -> int:
        """How many workers a component fans out to (``parallel_workers``; 1 when unset). Read on every
        target: it shapes the compiled DAG, so a change needs a new compile."""
        return self.settings.step(component).parallel_workers or 1

    def configure(self, *tasks) -> None:
        """Give each task its step's image and, for a cluster target, its platform settings."""
        for task in tasks:
            component = task.component_spec.name.replace("-", "_")
            task.set_container_image(self.images[step_table.step_of_component(component).name])
            if self.target == "local":  # kfp.local's cache (tagifai run) follows the same settings
                caching = self.settings.step(component).caching
                if caching is not None:
                    task.set_caching_options(caching)
                continue
            _apply_kfp(task, self.settings.step(component), self.target)
            if self.target == "kubeflow":
                _apply_kubernetes(task, component, self.settings.step(component), self.settings.kubernetes)
            else:
                for key, value in self.settings.vertex.env.items():
                    task.set_env_variable(key, value)


def _apply_kfp(task, step: StepSettings, target: str) -> None:
    """Plain KFP settings (both targets; Vertex AI sizes machines from limits and ignores requests)."""
    if step.caching is not None:
        task.set_caching_options(step.caching)
    if step.retry is not None and step.retry.num_retries > 0:
        r = step.retry
        task.set_retry(
            r.num_retries,
            backoff_duration=r.backoff_duration,
            backoff_factor=r.backoff_factor,
            backoff_max_duration=r.backoff_max_duration,
        )
    if target == "kubeflow":
        if step.cpu_request:
            task.set_cpu_request(step.cpu_request)
        if step.memory_request:
            task.set_memory_request(step.memory_request)
    if step.cpu_limit:
        task.set_cpu_limit(step.cpu_limit)
    if step.memory_limit:
        task.set_memory_limit(step.memory_limit)


def _for(component: str, steps: list[str] | None) -> bool:
    """Whether an entry listing ``steps`` (step or component names; None: all) applies to ``component``."""
    return steps is None or component in steps or step_table.step_of_component(component).name in steps


def _apply_kubernetes(task, name: str, step: StepSettings, k8s: KubernetesSettings) -> None:
    from kfp import kubernetes

    if step.timeout_seconds:
        kubernetes.set_timeout(task, step.timeout_seconds)
    if k8s.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(k8s.image_pull_secrets))
    if k8s.image_pull_policy:
        kubernetes.set_image_pull_policy(task, k8s.image_pull_policy)
    if k8s.security_context is not None and k8s.security_context.model_dump(exclude_none=True):
        kubernetes.set_security_context(task, **k8s.security_context.model_dump(exclude_none=True))
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
