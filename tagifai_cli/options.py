"""Command-line options shared by the commands: the settings flags and the settings object they make, and
the package options of the delivery commands (``tagifai submit/schedule/backfill`` for Kubeflow,
``tagifai vertex run/schedule``): which pipeline, compiled now or given as a file, and its typed parameters.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

#: Flags that only matter when the command compiles the pipeline itself (not with ``--package FILE``).
COMPILE_FLAGS = (
    ("registry", "--registry"),
    ("tag", "--tag"),
    ("platform_config", "--platform-config"),
    ("by_digest", "--by-digest"),
)


def settings_from(args: argparse.Namespace, export_secrets: bool = True):
    """The settings object: the environment (and .env), with the command's flags on top.

    Settings reach the steps as pipeline parameters (warehouse, state_dir, tracking URI ...), never by
    writing this process's environment. ``export_secrets``: give this process's MLflow client its token
    (a command that reads MLflow); the delivery commands pass False: they read no secret of the steps (a
    Secret Manager reference stays a reference, read inside the step).
    """
    from tagifai.config import get_settings

    overrides = {
        field: getattr(args, flag, None)
        for flag, field in (
            ("home", "home"),
            ("warehouse", "warehouse"),
            ("registry", "registry"),
            ("tag", "image_tag"),
            ("mlflow_tracking_uri", "mlflow_tracking_uri"),
            ("optuna_storage", "optuna_storage"),
            ("data_dir", "data_dir"),
            ("platform_config", "platform_config"),
        )
    }
    for key in ("home", "data_dir"):
        value = overrides[key]
        if value and "://" not in str(value):
            overrides[key] = str(Path(value).expanduser().resolve())
    return get_settings(export_secrets=export_secrets, **overrides)


def pipeline_arguments(
    pipeline: str,
    settings,
    *,
    projects: str | None = None,
    tags: str | None = None,
    num_trials: int | None = None,
    model_families: str | None = None,
    seed: int = 42,
    approval: str | None = None,
    sensed: bool = False,
) -> dict:
    """The arguments of a local run of ``pipeline`` (``tagifai run``, ``tagifai sense --run``) from the settings.

    Sources: ``projects``/``tags``, else the settings' (``DATA_DIR`` or the public ones); ``num_trials``,
    ``model_families`` and ``approval`` default to the settings'. ``sensor`` also gets the sensor's thresholds.
    A run the sensor starts (the ``sensor`` pipeline, or ``sensed``) waits for a person (approval ``manual``)
    unless ``approval`` or TAGIFAI_APPROVAL says otherwise.
    """
    families = model_families if model_families is not None else settings.model_families
    if families:  # a wrong name fails before anything runs, not minutes later inside the optimize step
        from tagifai.optimize import model_families as parse_families
        from tagifai.train import TrainArgs

        try:
            parse_families(families, TrainArgs())
        except ValueError as exc:
            raise ValueError(f"--model-families: {exc}") from None
    if approval is None:
        explicit = "approval" in settings.model_fields_set
        approval = settings.approval if explicit or not (sensed or pipeline == "sensor") else "manual"
    sources = settings.sources()
    arguments: dict = {"warehouse": settings.warehouse, "state_dir": str(settings.home)}
    if pipeline in ("continual", "dataops", "sensor"):
        arguments.update(projects_source=projects or sources["projects"], tags_source=tags or sources["tags"])
    if pipeline in ("continual", "mlops", "sensor"):
        arguments.update(
            mlflow_tracking_uri=settings.mlflow_tracking_uri,
            optuna_storage=settings.optuna_storage,
            num_trials=num_trials or settings.num_trials,
            model_families=families,
            approval=approval,
            seed=seed,
            experiment_name=settings.experiment_name,
            model_name=settings.model_name,
            promotion_margin=settings.promotion_margin,
            training_data=settings.training_data,
            window_days=settings.window_days,
            replay_share=settings.replay_share,
            replay_min_per_class=settings.replay_min_per_class,
        )
    if pipeline == "sensor":
        arguments.update(
            min_new_rows=settings.sensor_min_new_rows,
            max_age_days=settings.sensor_max_age_days,
            retrain_on=settings.retrain_on,
        )
    return arguments


# --- delivery: the package to send and its parameters -----------------------------------------------


def add_package_arguments(p: argparse.ArgumentParser, pipeline_names, target: str) -> None:
    """The pipeline, ``--package``, the compile flags, ``--param`` and ``--caching`` of a delivery command."""
    flavour = {"kubeflow": "for Kubeflow", "vertex": "with --target vertex"}[target]
    example = "" if target == "kubeflow" else ", one Vertex AI pulls from, e.g. REGION-docker.pkg.dev/PROJECT/REPO"
    p.add_argument(
        "pipeline", nargs="?", choices=pipeline_names, help="default continual, or the pipeline in --package"
    )
    p.add_argument(
        "--package", help=f"a compiled package to send as it is (default: compile the pipeline now {flavour})"
    )
    p.add_argument(
        "--platform-config",
        help="per-step settings file when compiling (TAGIFAI_PLATFORM_CONFIG; default pipelines/platform.yaml)",
    )
    p.add_argument("--registry", help=f"image registry when compiling{example} (TAGIFAI_REGISTRY)")
    p.add_argument(
        "--tag", help="image tag when compiling (TAGIFAI_IMAGE_TAG; default: each step's content tag c-<hash>)"
    )
    p.add_argument(
        "--by-digest",
        action="store_true",
        help="when compiling, name each step's image by its pushed digest (after `tagifai images push`)",
    )
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a pipeline parameter (repeat)")
    p.add_argument(
        "--caching",
        choices=("on", "off"),
        help="override every task's compiled caching option (pipelines/platform.yaml). off: nothing is reused; "
        "on: every task, the fingerprints and drift included, so only to replay a run on unchanged sources",
    )


@dataclass
class Package:
    """A compiled pipeline package ready to send."""

    name: str  # the pipeline's name in the spec (dataops, mlops, continual)
    path: Path
    spec: dict
    digest: str  # sha256 of the file: names the uploaded Kubeflow version


def load_package(
    pipeline: str | None,
    package: str | None,
    target: str,
    workdir: str | Path,
    images: dict[str, str] | None = None,
    platform_config: str | None = None,
) -> Package:
    """``package`` as given, else ``pipeline`` (default continual) compiled now for ``target`` into ``workdir``.

    A Vertex package must be one YAML document (Vertex AI cannot load kfp-kubernetes' second one).
    """
    from tagifai_cli.packaging import DeliveryError, compile_package, package_digest, pipeline_spec, read_documents

    if package:
        path = Path(package)
        if not path.exists():
            raise DeliveryError(f"{package}: no such file")
    else:
        path = compile_package(pipeline or "continual", target, workdir, platform_config, images=images)
    if target == "vertex":
        docs = read_documents(path)
        if len(docs) != 1:
            raise DeliveryError(
                f"{path}: {len(docs)} YAML documents (kfp-kubernetes settings); Vertex AI loads one: "
                "compile it with `tagifai compile --target vertex`"
            )
    spec = pipeline_spec(path)
    name = spec["pipelineInfo"]["name"]
    if pipeline and name != pipeline:
        raise DeliveryError(f"{path} holds pipeline {name!r}, not {pipeline!r}")
    return Package(name, path, spec, package_digest(path))


def package_from(args: argparse.Namespace, target: str, workdir: str | Path, settings=None) -> Package:
    """The package of a delivery command: ``--package FILE``, else the pipeline compiled with the settings'
    registry, tag and platform file (``--by-digest``: the pushed digests; a step without one is an error)."""
    from tagifai_cli.packaging import DeliveryError, step_images

    if args.package:
        given = [flag for attr, flag in COMPILE_FLAGS if getattr(args, attr, None)]
        if given:
            raise DeliveryError(f"{', '.join(given)}: only when compiling; --package {args.package} is sent as it is")
        return load_package(args.pipeline, args.package, target, workdir)
    settings = settings or settings_from(args)
    images = step_images(settings, by_digest=bool(getattr(args, "by_digest", False)))
    return load_package(
        args.pipeline, None, target, workdir, images=images, platform_config=settings.platform_config or None
    )


def given_parameters(args: argparse.Namespace) -> dict[str, str]:
    """The ``--param KEY=VALUE`` flags as a dict (values still strings; ``{start}``/``{end}`` not filled in)."""
    from tagifai_cli.packaging import parse_assignments

    return parse_assignments(getattr(args, "param", None))


def pipeline_parameters(spec: dict, given: dict, defaults: dict | None = None) -> dict:
    """Typed run parameters: ``given`` over ``defaults`` over the public Made With ML sources (the dbt
    target follows the warehouse in the transform step). An unknown, mistyped or missing parameter is an error."""
    from tagifai.config import PUBLIC_SOURCES
    from tagifai_cli.packaging import typed_parameters

    values = {"projects_source": PUBLIC_SOURCES["projects"], "tags_source": PUBLIC_SOURCES["tags"], **(defaults or {})}
    return typed_parameters(spec, given, values)
