"""MLflow tracking and model registry: configure, log a training run, load models, the champion alias.

- :func:`configure` points MLflow (tracking and registry) at a URI and makes sure the experiment exists,
  with its artifacts under ``artifact_root`` (with a local database such as ``sqlite:///...`` MLflow
  would otherwise write them to ``./mlruns`` of whatever the current directory is).
- :func:`log_training` logs params, metrics and the model (sklearn flavor, cloudpickle; its pyfunc
  calls :meth:`TagifaiModel.predict`, so the threshold travels with the model) and registers a new
  version. :func:`load_model` loads it back (in any process that can import ``tagifai``).
- :func:`get_champion` reads the registry alias ``champion`` and :func:`resolve_model_uri` picks the model
  to serve; every alias move goes through :class:`tagifai.registry.Registry`, which records it.
- :class:`Tracker` is what a study logs to: :class:`MlflowTracker`, or :class:`NullTracker` when nothing is
  tracked (:func:`tracker_for` picks one).

Settings (:func:`tagifai.config.get_settings`) fill whatever is not passed. mlflow is imported inside
the functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from tagifai.seeds import sqlite_from_template

CHAMPION = "champion"
#: Artifact path (``name``) of the logged model inside its run.
MODEL_NAME_IN_RUN = "model"
#: Longest dataset digest MLflow stores (its ``datasets.digest`` column): a longer one is cut to it.
DATASET_DIGEST_CHARS = 36

_state: dict[str, Any] = {}  # the last configure(): tracking_uri, experiment_name, experiment_id
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
_REMOTE_SCHEMES = ("http://", "https://", "databricks")


class _DropPickleWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pickle or cloudpickle format" not in record.getMessage()


_PICKLE_WARNING = _DropPickleWarning()


def _settings():
    from tagifai.config import get_settings

    return get_settings()


def _as_uri(location: str | Path) -> str:
    text = str(location)
    if "://" in text or text.startswith("file:"):
        return text.rstrip("/")
    return Path(text).expanduser().resolve().as_uri()


def _artifact_location(tracking_uri: str, artifact_root: str | Path | None, experiment_name: str) -> str | None:
    """Where the new experiment keeps its artifacts: ``<artifact_root>/<experiment name>``.

    None (the server's default) for a remote tracking server when no root is given or the root is a
    local ``file:`` path, which a remote server could not use.
    """
    if artifact_root in (None, ""):
        if tracking_uri.startswith(_REMOTE_SCHEMES):
            return None
        artifact_root = _settings().mlflow_artifact_root
    root = _as_uri(artifact_root)
    if tracking_uri.startswith(_REMOTE_SCHEMES) and root.startswith("file:"):
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment_name).strip("_") or "experiment"
    return f"{root}/{safe}"


def configure(
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    artifact_root: str | Path | None = None,
) -> str:
    """Set MLflow's tracking and registry URI and the active experiment (created if missing). Returns its id.

    A new experiment gets ``artifact_location=<artifact_root>/<experiment name>`` (``artifact_root``
    defaults to the settings' ``mlflow_artifact_root`` for a local store). A deleted experiment of that
    name is restored. Safe to call again and from concurrent processes.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if not tracking_uri or not experiment_name:
        settings = _settings()
        tracking_uri = tracking_uri or settings.mlflow_tracking_uri
        experiment_name = experiment_name or settings.experiment_name
    # a local SQLite store: its folder, and a new store's tables copied from an empty one of this MLflow version
    sqlite_from_template(tracking_uri, "mlflow", mlflow.__version__, _create_mlflow_tables)  # (migrations: ~2 s)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = _artifact_location(tracking_uri, artifact_root, experiment_name)
        try:
            experiment_id = client.create_experiment(experiment_name, artifact_location=location)
        except MlflowException:  # created concurrently by another process
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    _state.update(tracking_uri=tracking_uri, experiment_name=experiment_name, experiment_id=experiment_id)
    return experiment_id


def _create_mlflow_tables(url: str) -> None:
    """MLflow's tables at the latest schema, as its SQL store creates them in a new database, and nothing
    else: the default experiment, whose artifact location is the store's, is made by the store that opens it."""
    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine

    engine = create_sqlalchemy_engine(url)
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()


def _ensure_configured(tracking_uri: str | None, experiment_name: str | None, artifact_root: str | Path | None) -> str:
    """Configure when asked to (or never done in this process); returns the experiment id."""
    if tracking_uri or experiment_name or not _state:
        return configure(tracking_uri, experiment_name, artifact_root)
    return _state["experiment_id"]


def _client(tracking_uri: str | None = None):
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or _state.get("tracking_uri") or _settings().mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def flatten_metrics(metrics: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested metrics dict, keys joined with "_" (``{"test": {"f1": .9}}`` -> ``test_f1``).

    None, booleans, strings and lists (e.g. a confusion matrix) are left out.
    """
    flat: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        name = _METRIC_KEY.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, prefix=f"{name}_"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
        elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
            try:
                flat[name] = float(value.item())
            except (TypeError, ValueError):
                pass
    return flat


def _params(args: Any, threshold: float | None) -> dict[str, str]:
    if args is None:
        raw: dict[str, Any] = {}
    elif hasattr(args, "to_dict"):
        raw = args.to_dict()
    elif isinstance(args, Mapping):
        raw = dict(args)
    else:
        raise TypeError(f"args: expected TrainArgs or a dict, got {type(args).__name__}")
    if threshold is not None:
        raw["threshold_chosen"] = threshold
    return {k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v) for k, v in raw.items()}


def _default_input_example():
    import pandas as pd

    return pd.DataFrame(
        {"title": ["Transformers for text classification"], "description": ["Fine-tuning BERT on news articles."]}
    )


def pip_requirements(model: Any = None) -> list[str]:
    """Pins of what loading ``model`` needs; with a sentence embedding, onnxruntime and the model package too."""
    from importlib.metadata import PackageNotFoundError, version

    dists = ["mlflow", "scikit-learn", "numpy", "pandas", "scipy", "cloudpickle"]
    if getattr(getattr(model, "args", None), "embedding", "none") != "none":
        from tagifai.embeddings import DISTRIBUTIONS

        dists += list(DISTRIBUTIONS)
    reqs = []
    for dist in dists:
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            pass
    return reqs


def _log_dataset_input(df: Any, name: str, digest: str | None, context: str) -> None:
    """Log ``df`` as a pandas dataset input of the active run (source: the code that logged it), its
    digest cut to what MLflow stores."""
    import warnings

    import mlflow
    import mlflow.data

    with warnings.catch_warnings():  # its hint about integer columns is for model signatures, not datasets
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        dataset = mlflow.data.from_pandas(df, name=name, digest=digest[:DATASET_DIGEST_CHARS] if digest else None)
        mlflow.log_input(dataset, context=context)


def log_training(
    model: Any,
    args: Any = None,
    metrics: Mapping[str, Any] | None = None,
    registered_model_name: str | None = None,
    input_example: Any = None,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    artifacts: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    artifact_root: str | Path | None = None,
    inputs: Sequence[tuple[Any, str, str | None, str]] | None = None,
) -> dict[str, Any]:
    """Log one training run and register the model. Returns ``{run_id, model_uri, version, experiment_id, model_id}``.

    - params: the fields of ``args`` (TrainArgs or dict) plus ``threshold_chosen`` (the model's);
    - metrics: the numeric leaves of ``metrics`` (:func:`flatten_metrics`), plus ``metrics.json``;
    - ``artifacts``: extra files, name -> str (text) or JSON-serialisable value;
    - ``inputs``: datasets the run used, ``(dataframe, name, digest, context)`` each (context e.g.
      ``"training"``), logged with ``mlflow.log_input`` as pandas datasets; the digest is cut to the
      :data:`DATASET_DIGEST_CHARS` MLflow stores (None: MLflow computes one);
    - the model, sklearn flavor in cloudpickle format (a process that loads it must be able to import
      ``tagifai``), with a signature inferred from ``input_example`` (default: one title/description
      row), and pinned pip requirements (no slow inference);
    - registered as a new version of ``registered_model_name`` (None: not registered; ``model_uri``
      is then ``models:/<model id>`` and ``version`` None).

    ``model_uri`` is ``models:/<name>/<version>``. Uses the tracking URI/experiment given, else the
    last :func:`configure` of this process, else the settings.
    """
    import mlflow
    import mlflow.sklearn

    experiment_id = _ensure_configured(tracking_uri, experiment_name, artifact_root)
    if input_example is None:
        input_example = _default_input_example()
    threshold = getattr(model, "threshold", None)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        if tags:
            mlflow.set_tags(dict(tags))
        params = _params(args, float(threshold) if threshold is not None else None)
        if params:
            mlflow.log_params(params)
        flat = flatten_metrics(metrics)
        if flat:
            mlflow.log_metrics(flat)
        if metrics:
            mlflow.log_dict(json.loads(json.dumps(metrics, default=_json_default)), "metrics.json")
        if args is not None and hasattr(args, "to_dict"):
            mlflow.log_dict(args.to_dict(), "args.json")
        for frame, name, digest, context in inputs or ():
            _log_dataset_input(frame, name, digest, context)
        for name, value in (artifacts or {}).items():
            if isinstance(value, str):
                mlflow.log_text(value, name)
            else:
                mlflow.log_dict(json.loads(json.dumps(value, default=_json_default)), name)
        # cloudpickle on purpose: skops would need every tagifai/sklearn type listed as trusted, and
        # loading any format executes code from the artifact anyway (MLflow says so). Its warning
        # about it is filtered out.
        sk_logger = logging.getLogger("mlflow.sklearn")
        sk_logger.addFilter(_PICKLE_WARNING)
        try:
            info = mlflow.sklearn.log_model(
                model,
                name=MODEL_NAME_IN_RUN,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                registered_model_name=registered_model_name,
                input_example=input_example,
                pip_requirements=pip_requirements(model),
            )
        finally:
            sk_logger.removeFilter(_PICKLE_WARNING)
        run_id = run.info.run_id
    version = getattr(info, "registered_model_version", None)
    if registered_model_name and version is None:  # older servers: look it up by run
        versions = _client().search_model_versions(f"name='{registered_model_name}' and run_id='{run_id}'")
        version = max(int(v.version) for v in versions) if versions else None
    model_uri = f"models:/{registered_model_name}/{version}" if registered_model_name and version else info.model_uri
    return {
        "run_id": run_id,
        "model_uri": model_uri,
        "version": int(version) if version is not None else None,
        "experiment_id": experiment_id,
        "model_id": getattr(info, "model_id", None),
    }


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def load_model(uri: str, tracking_uri: str | None = None) -> Any:
    """Load a logged model (``models:/<name>/<version>``, ``models:/<name>@champion``, ``runs:/...``).

    Returns the :class:`~tagifai.model.TagifaiModel` itself (sklearn flavor), so ``predict`` applies the
    same threshold as before saving.
    """
    import mlflow
    import mlflow.sklearn

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    elif not _state:
        uri_setting = _settings().mlflow_tracking_uri
        mlflow.set_tracking_uri(uri_setting)
        mlflow.set_registry_uri(uri_setting)
    return mlflow.sklearn.load_model(uri)


def model_version_by_alias(client, name: str, alias: str):
    """The registry's model version behind ``alias`` of ``name``, or None (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def get_champion(
    name: str, alias: str = CHAMPION, tracking_uri: str | None = None
) -> tuple[int, dict[str, float]] | None:
    """``(version, metrics of its run)`` of the model version behind ``alias``, or None (no model or no alias)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    mv = model_version_by_alias(client, name, alias)
    if mv is None:
        return None
    metrics: dict[str, float] = {}
    if mv.run_id:
        try:
            metrics = dict(client.get_run(mv.run_id).data.metrics)
        except MlflowException:
            metrics = {}
    return int(mv.version), metrics


def champion_uri(name: str, alias: str = CHAMPION) -> str:
    """``models:/<name>@<alias>``."""
    return f"models:/{name}@{alias}"


def resolve_model_uri(model_name: str, tracking_uri: str | None = None, alias: str = CHAMPION) -> str:
    """``models:/<name>@champion`` when the alias is set, else the latest version (LookupError when none)."""
    if get_champion(model_name, alias=alias, tracking_uri=tracking_uri) is not None:
        return champion_uri(model_name, alias)
    client = _client(tracking_uri)
    versions = client.search_model_versions(f"name='{model_name}'")
    if not versions:
        uri = tracking_uri or _state.get("tracking_uri") or _settings().mlflow_tracking_uri
        raise LookupError(f"no registered model {model_name!r} at {uri}")
    return f"models:/{model_name}/{max(int(v.version) for v in versions)}"


# --------------------------------------------------------------------------- trackers


class Tracker(Protocol):
    """Where a process logs runs, params, metrics and small artifacts: :class:`MlflowTracker`, or
    :class:`NullTracker` when nothing is tracked (callers never ask which)."""

    def run(self, name: str, nested: bool | None = None) -> AbstractContextManager[Any]:
        """A context in which the other calls log to the run ``name`` (nested: a child of the active
        run; None: nested when a run is active)."""
        ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_params(self, params: Mapping[str, str]) -> None: ...

    def log_metric(self, key: str, value: float, step: int | None = None) -> None: ...

    def log_dict(self, value: Mapping[str, Any], artifact_file: str) -> None: ...


class NullTracker:
    """Logs nothing: runs are empty contexts, every call a no-op."""

    def run(self, name: str, nested: bool | None = None) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def log_params(self, params: Mapping[str, str]) -> None:
        pass

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        pass

    def log_dict(self, value: Mapping[str, Any], artifact_file: str) -> None:
        pass


class MlflowTracker:
    """Logs to MLflow: :func:`configure` (URI, experiment, artifact root) when created, then the
    ``mlflow`` fluent API on the active run."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        artifact_root: str | Path | None = None,
    ):
        self.experiment_id = configure(tracking_uri, experiment_name, artifact_root)

    def run(self, name: str, nested: bool | None = None) -> AbstractContextManager[Any]:
        import mlflow

        if nested is None:
            nested = mlflow.active_run() is not None
        return mlflow.start_run(run_name=name, nested=nested)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    def log_params(self, params: Mapping[str, str]) -> None:
        import mlflow

        mlflow.log_params(dict(params))

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        import mlflow

        mlflow.log_metric(key, value, step=step)

    def log_dict(self, value: Mapping[str, Any], artifact_file: str) -> None:
        import mlflow

        mlflow.log_dict(value, artifact_file)


def tracker_for(
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    artifact_root: str | Path | None = None,
) -> Tracker:
    """An :class:`MlflowTracker` when a tracking URI or an experiment name is given, else a :class:`NullTracker`."""
    if tracking_uri is None and experiment_name is None:
        return NullTracker()
    return MlflowTracker(tracking_uri, experiment_name, artifact_root)
