"""The step table: every step of the suite, declared once.

A step is one container image built from one pyproject extra, holding one component module
(``components/<name>.py``) with one or more KFP components. Everything that lists steps reads this
table: the image builder and the locks (``tagifai images``, ``images/lock.sh``), the platform
settings (``pipelines/platform.yaml`` is checked against it), the pipelines' image assignment, the
run summary of ``tagifai run`` and the tests (``tests/unit/test_steps.py`` walks it and checks that
every step has a component, an extra, a lock, an image and platform settings).

Plain data: no kfp, no heavy imports; the library's lowest layer can read it.

Adding a step: a library module, a component module, their tests, one :class:`Step` below and its
pyproject extra (docs/architecture.md walks through an example).
"""

from __future__ import annotations

from dataclasses import dataclass

from tagifai import __version__

#: The registry and tag a component names when no settings are applied (compiled pipelines always get
#: the settings' images from :func:`pipelines.build`).
DEFAULT_REGISTRY = "localhost:5000"


@dataclass(frozen=True)
class Show:
    """One value the run summary takes from a finished task's outputs.

    ``into`` is the summary key; ``rows/<name>`` puts it under ``rows``. It may hold ``{field}``
    placeholders filled from the artifact's metadata (``rows/raw.{table}``). The value is the metadata
    field ``field`` of the output artifact ``artifact``, the whole metadata when ``field`` is empty, the
    metadata fields ``fields`` as a dict, or the output parameter ``parameter`` (tried first).
    """

    into: str
    artifact: str = ""
    field: str = ""
    fields: tuple[str, ...] = ()
    parameter: str = ""
    as_int: bool = False


@dataclass(frozen=True)
class Component:
    """A KFP component of a step: the function ``name`` in ``components/<step>.py``.

    ``name`` is also the task key prefix in a compiled pipeline (``validate_table`` ->
    ``validate-table``, ``validate-table-2``) and may be a key of ``pipelines/platform.yaml`` to
    override the step's settings for this component alone.
    """

    name: str
    shows: tuple[Show, ...] = ()

    @property
    def task_prefix(self) -> str:
        return self.name.replace("_", "-")


@dataclass(frozen=True)
class Step:
    """One step: its image ``tagifai-<name>`` holds pyproject extra ``extra`` (plus kfp) and runs its components.

    ``shared_lock`` names a lock installed in its own layer before the step's lock, shared by the
    images that name it (``ml``: mlflow and scikit-learn of optimize, train and evaluate), so those
    images share that layer on disk.
    """

    name: str
    extra: str
    description: str
    components: tuple[Component, ...]
    shared_lock: str = ""
    #: ``module:function`` its image runs once when it is built (``python -m tagifai.steps prepare <step>``, the
    #: last layer of images/step.Dockerfile): what every task of the step would otherwise build for itself.
    prepare: str = ""

    @property
    def module(self) -> str:
        return f"components.{self.name}"

    @property
    def image_name(self) -> str:
        return f"tagifai-{self.name}"

    def image(self, registry: str = DEFAULT_REGISTRY, tag: str = __version__) -> str:
        return f"{registry.rstrip('/')}/{self.image_name}:{tag}"


STEPS: tuple[Step, ...] = (
    Step(
        "sync",
        extra="sync",
        description="extract-and-load of a source into the warehouse (dlt)",
        components=(
            Component("fingerprint"),
            Component("sync", shows=(Show("rows/raw.{table}", artifact="dataset", field="rows_after", as_int=True),)),
        ),
    ),
    Step(
        "validate",
        extra="validate",
        description="Great Expectations suites on a warehouse table or a Dataset",
        components=(Component("validate_table"), Component("validate_dataset")),
    ),
    Step(
        "transform",
        extra="transform",
        description="dbt build of dbt_transforms/ (dbt-core, dbt-duckdb, dbt-bigquery)",
        prepare="tagifai.transform:keep_parse",  # dbt's parse of the project, for every pod's new state folder
        components=(
            Component(
                "transform",
                shows=(Show("rows/labeled_projects", artifact="labeled_projects", field="rows", as_int=True),),
            ),
        ),
    ),
    Step(
        "extract",
        extra="extract",
        description="a warehouse table into a Parquet Dataset (core dependencies only)",
        components=(
            Component(
                "extract",
                shows=(
                    Show("rows/extracted", artifact="dataset", field="rows", as_int=True),
                    Show("dataset_hash", artifact="dataset", field="content_hash"),
                ),
            ),
        ),
    ),
    Step(
        "optimize",
        extra="optimize",
        shared_lock="ml",
        description="Optuna study of the training arguments, trials in MLflow (optuna, mlflow, scikit-learn)",
        components=(
            Component(
                "optimize",
                shows=(
                    Show("best_params", artifact="best_args", field="args"),
                    Show("best_validation_score", artifact="metrics", field="best_val_f1"),
                ),
            ),
            Component("optimize_worker"),
        ),
    ),
    Step(
        "train",
        extra="train",
        shared_lock="ml",
        description="training, MLflow run and model registration (mlflow, scikit-learn)",
        components=(
            Component(
                "train",
                shows=(
                    Show("metrics", artifact="metrics", fields=("precision", "recall", "f1")),
                    Show("model_uri", artifact="model", field="model_uri", parameter="model_uri"),
                ),
            ),
        ),
    ),
    Step(
        "evaluate",
        extra="evaluate",
        shared_lock="ml",
        description="evaluation, behavioral tests, champion promotion (mlflow, scikit-learn)",
        components=(Component("evaluate", shows=(Show("evaluation", artifact="metrics"),)),),
    ),
    Step(
        "drift",
        extra="drift",
        shared_lock="ml",
        description="drift of the new rows against the champion's training data, an offline HTML report (evidently)",
        components=(
            Component(
                "drift",
                shows=(
                    Show("drift", artifact="result", field="drifted"),
                    Show("drift_reasons", artifact="result", field="reasons"),
                ),
            ),
        ),
    ),
    Step(
        "sense",
        extra="sense",
        description="the continual loop's sensor: new source rows against the watermark (core dependencies only)",
        components=(
            Component(
                "sense",
                shows=(
                    Show("retrain", artifact="decision", field="retrain"),
                    Show("new_rows", artifact="decision", field="new_rows"),
                    Show("run_key", artifact="decision", field="run_key"),
                ),
            ),
            Component("advance_watermark"),
        ),
    ),
    Step(
        "notify",
        extra="notify",
        description="the first and exit tasks of every pipeline: the run lease of a DuckDB warehouse, and a run "
        "summary posted to a webhook (google-cloud-secret-manager)",
        components=(
            Component(
                "notify",
                shows=(
                    Show("notify_status", artifact="summary", field="status"),
                    Show("notify_webhook", artifact="summary", field="webhook"),
                ),
            ),
            Component("hold_warehouse"),
        ),
    ),
)

NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
#: Shared lock layers (``images/requirements/<name>.txt``) and the steps that install them first. A shared
#: lock holds the pins common to those steps' locks (images/lock.sh), never the union of their extras
#: (that would put optuna into the train and evaluate images).
SHARED_LOCKS: dict[str, tuple[str, ...]] = {
    lock: tuple(s.name for s in STEPS if s.shared_lock == lock)
    for lock in sorted({s.shared_lock for s in STEPS} - {""})
}


def get(name: str) -> Step:
    """The step ``name``; a clear error naming the known steps otherwise."""
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(f"unknown step {name!r}; expected one of {', '.join(NAMES)}")


def check_names(names) -> list[str]:
    """``names`` as a list, or a ValueError naming the unknown ones and the known steps."""
    names = list(names)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown step(s) {', '.join(unknown)}; expected {', '.join(NAMES)}")
    return names


def step_of_component(component: str) -> Step:
    """The step whose module holds ``component`` (a function name or a task prefix such as ``validate-table``)."""
    key = component.replace("-", "_")
    for step in STEPS:
        if any(c.name == key for c in step.components):
            return step
    raise KeyError(f"no step has a component {component!r}")


def component_names() -> tuple[str, ...]:
    return tuple(c.name for s in STEPS for c in s.components)


def default_image(step: str) -> str:
    """The image a component names before a pipeline assigns one (``pipelines.build`` always does)."""
    return get(step).image()


def prepare(name: str) -> str:
    """Run step ``name``'s :attr:`Step.prepare` (nothing when it has none); what it returned, as text."""
    import importlib

    step = get(name)
    if not step.prepare:
        return ""
    module, _, function = step.prepare.partition(":")
    return str(getattr(importlib.import_module(module), function)())


if __name__ == "__main__":  # images/step.Dockerfile: python -m tagifai.steps prepare <step>
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "prepare":
        sys.exit("usage: python -m tagifai.steps prepare STEP")
    print(prepare(sys.argv[2]) or f"step {sys.argv[2]}: nothing to prepare")
