"""The ``tagifai`` command: run pipelines locally, compile them, predict and evaluate with the model."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from tagifai_cli.commands import COMMANDS, help_of
from tagifai_cli.options import pipeline_arguments, settings_from


class CLIError(Exception):
    """An error to show as one line."""


def cmd_run(args: argparse.Namespace) -> int:
    from tagifai_cli.local_run import print_summary, run_local
    from tagifai_cli.packaging import step_images

    settings = settings_from(args)
    arguments = pipeline_arguments(  # a wrong model family fails here, not minutes later in the optimize step
        args.pipeline,
        settings,
        projects=args.projects,
        tags=args.tags,
        num_trials=args.num_trials,
        model_families=args.model_families,
        seed=args.seed,
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    if not args.quiet:
        print(f"state: {settings.home}\nwarehouse: {settings.warehouse}\nmlflow: {settings.mlflow_tracking_uri}")
        if "projects_source" in arguments:
            print(f"sources: {arguments['projects_source']}, {arguments['tags_source']}")
    summary = run_local(
        args.pipeline,
        arguments,
        settings.home,
        runner=args.runner,
        quiet=args.quiet,
        images=step_images(settings),
        wait=args.wait,
        cache=not args.no_cache,
    )
    print_summary(summary)
    print(f"summary: {settings.home / 'last_run.json'}")
    if summary.get("report"):
        print(f"report: {summary['report']}")
    return 0 if summary["status"] == "succeeded" else 1


def cmd_compile(args: argparse.Namespace) -> int:
    from pipelines import NAMES
    from tagifai_cli.packaging import COMPILED, PLACEHOLDER_REGISTRY, compile_package, step_images, vertex_images

    settings = settings_from(args)
    images = step_images(settings, by_digest=args.by_digest)
    targets = ["kubeflow", "vertex"] if args.target == "all" else [args.target]
    names = [args.pipeline] if args.pipeline else list(NAMES)
    per_target = {target: images for target in targets}
    if "vertex" in targets:  # before writing anything: images Vertex AI cannot pull are refused
        per_target["vertex"], placeholder = vertex_images(settings, images, by_digest=args.by_digest)
        if placeholder:
            print(
                f"vertex: no registry given, so the images name {PLACEHOLDER_REGISTRY}, a template that "
                "`tagifai vertex run/schedule` refuses; to send it, compile with --registry (or --by-digest)",
                file=sys.stderr,
            )
    for target in targets:
        if args.output_dir:
            out = Path(args.output_dir) / target if len(targets) > 1 else Path(args.output_dir)
        else:
            out = COMPILED / target
        for name in names:
            print(compile_package(name, target, out, settings.platform_config or None, images=per_target[target]))
    return 0


def _model(args: argparse.Namespace, lookup=None):
    """``(uri, model)``: the champion's serving copy when it is current (no MLflow import), else through MLflow.
    ``lookup``: the serving copy's :class:`~tagifai.predict.ServingLookup` when the caller has read it already."""
    settings = settings_from(args)
    if not args.model_uri:
        from tagifai.predict import load_serving_copy

        if lookup is None:
            lookup = load_serving_copy(settings.mlflow_tracking_uri, settings.model_name)
        if lookup.used:
            return lookup.uri, lookup.model
        if lookup.warning:
            print(f"tagifai {args.command}: warning: {lookup.warning}; loading from MLflow", file=sys.stderr)
    from tagifai.tracking import CHAMPION, champion_uri, load_model, resolve_model_uri

    uri = args.model_uri or resolve_model_uri(settings.model_name, settings.mlflow_tracking_uri)
    model = load_model(uri, tracking_uri=settings.mlflow_tracking_uri)
    if lookup is not None and uri == champion_uri(settings.model_name, CHAMPION) and lookup.reason != "current":
        _refresh_serving_copy(args, settings)
    return uri, model


def _refresh_serving_copy(args: argparse.Namespace, settings) -> None:
    """Rewrite a missing, stale or broken serving copy of the champion, so the next call is fast again."""
    from tagifai.predict import serving_dir
    from tagifai.registry import Registry

    if serving_dir(settings.mlflow_tracking_uri, settings.model_name) is None:
        return
    try:
        Registry(settings.model_name, settings.mlflow_tracking_uri).export_serving_copy()
    except Exception as exc:  # only speed is lost: the next call loads through MLflow again
        print(f"tagifai {args.command}: warning: could not write the serving copy: {exc}", file=sys.stderr)


def _read_input(path: str, required: tuple[str, ...]):
    """The user's input file (CSV with any common separator, JSON or Parquet; see tagifai.sources.read_input)."""
    from tagifai.sources import SourceError, read_input

    try:
        return read_input(str(path), required)
    except SourceError as exc:
        raise CLIError(str(exc)) from exc


def _serving_lookup_compiled(args: argparse.Namespace):
    """The champion's serving copy, its compiled form when it has a sound one (see tagifai.predict): a single
    prediction then imports neither scikit-learn, SciPy nor pandas. A broken compiled form is a warning."""
    from tagifai.predict import load_serving_copy

    settings = settings_from(args)
    lookup = load_serving_copy(settings.mlflow_tracking_uri, settings.model_name, compiled=True)
    if lookup.used and lookup.warning:
        print(f"tagifai {args.command}: warning: {lookup.warning}; using the pickled model", file=sys.stderr)
    return lookup


def cmd_predict(args: argparse.Namespace) -> int:
    if not args.input and args.title is None:
        raise CLIError("give --title (and --description), or --input CSV")
    lookup = None
    if not args.input and not args.output and not args.model_uri:
        lookup = _serving_lookup_compiled(args)
        if lookup.compiled:  # one project, printed as the frame's records below would be, without pandas
            from tagifai.serving import predict_records

            records = predict_records(lookup.model, args.title, args.description or "")
            print(json.dumps(records, indent=2, default=str))
            return 0
    import pandas as pd

    from tagifai.predict import predict

    if args.input:
        df = _read_input(args.input, ("title", "description"))
    else:
        df = pd.DataFrame([{"title": args.title, "description": args.description or ""}])
    uri, model = _model(args, lookup)
    result = predict(model, df)
    if args.output:
        result.to_csv(args.output, index=False)
        print(f"{len(result)} predictions from {uri} -> {args.output}")
    else:
        print(json.dumps(result.to_dict(orient="records"), indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tagifai.evaluate import evaluate_csv_frame

    df = _read_input(args.input, ("title", "description", "tag"))
    uri, model = _model(args)
    metrics = evaluate_csv_frame(model, df)
    report = {k: v for k, v in metrics.items() if k in ("overall", "per_class", "slices", "confusion_matrix")}
    report["model_uri"] = uri
    print(json.dumps(report, indent=2, default=float))
    if args.report:
        from tagifai.evaluate import report_markdown

        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(report_markdown(metrics, title=f"Evaluation of {uri} on {args.input}"))
        print(f"report: {args.report}", file=sys.stderr)
    return 0


def _settings_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="state folder (TAGIFAI_HOME; default .tagifai in the project)")
    p.add_argument("--warehouse", help="duckdb:///file.duckdb or bigquery://project/dataset")
    p.add_argument("--mlflow-tracking-uri", help="MLflow tracking URI (default sqlite in the state folder)")


def add_run_parser(sub) -> None:
    from pipelines import NAMES as PIPELINE_NAMES

    run = sub.add_parser("run", help=help_of("run"))
    run.add_argument("pipeline", nargs="?", default="continual", choices=PIPELINE_NAMES)
    run.add_argument("--runner", default="subprocess", choices=("subprocess", "docker"))
    run.add_argument("--data-dir", help="folder or URL prefix with projects.csv and tags.csv (DATA_DIR)")
    run.add_argument("--projects", help="projects source (path or URL; CSV, JSON or Parquet)")
    run.add_argument("--tags", help="tags source (path or URL; CSV, JSON or Parquet)")
    run.add_argument("--optuna-storage", help="Optuna storage URL (default sqlite in the state folder)")
    run.add_argument("--num-trials", type=int, help="Optuna trials (TAGIFAI_NUM_TRIALS; default 20)")
    run.add_argument(
        "--model-families",
        help="model families Optuna searches, comma-separated (of linear_svc, logreg, sgd, complement_nb); "
        "default: the default family only",
    )
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--quiet", action="store_true")
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step, reusing nothing from earlier runs on the same inputs (default: steps cached "
        "per pipelines/platform.yaml are reused when their inputs are unchanged; docs/deploy.md, Caching)",
    )
    run.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="when another run holds the state folder, wait up to this long for it (default: fail at once)",
    )
    _settings_flags(run)
    run.set_defaults(func=cmd_run)


def add_compile_parser(sub) -> None:
    from pipelines import NAMES as PIPELINE_NAMES

    comp = sub.add_parser("compile", help=help_of("compile"))
    comp.add_argument("pipeline", nargs="?", choices=PIPELINE_NAMES)
    comp.add_argument(
        "--target",
        default="kubeflow",
        choices=("kubeflow", "vertex", "all"),
        help="kubeflow: with kfp-kubernetes settings (two YAML documents); vertex: one document; all: both",
    )
    comp.add_argument(
        "--platform-config", help="per-step settings file (TAGIFAI_PLATFORM_CONFIG; default pipelines/platform.yaml)"
    )
    comp.add_argument(
        "--output-dir", help="default pipelines/compiled/<target>/ (with --target all: OUTPUT_DIR/<target>/)"
    )
    comp.add_argument(
        "--registry",
        help="image registry (TAGIFAI_REGISTRY); vertex: one Vertex AI pulls from, e.g. REGION-docker.pkg.dev/"
        "PROJECT/REPO (none given: that placeholder, refused when sent; localhost or no host: refused)",
    )
    comp.add_argument(
        "--tag", help="image tag (TAGIFAI_IMAGE_TAG; default: each step's content tag, as `tagifai images build`)"
    )
    comp.add_argument(
        "--by-digest", action="store_true", help="name each step's image by its pushed digest (after make push)"
    )
    comp.set_defaults(func=cmd_compile)


def add_predict_parser(sub) -> None:
    pred = sub.add_parser("predict", help=help_of("predict"))
    pred.add_argument("--title")
    pred.add_argument("--description")
    pred.add_argument(
        "--input",
        help="file of projects with title and description (CSV with , ; tab or |, JSON, Parquet; local or URL)",
    )
    pred.add_argument("--output", help="CSV to write (predicted_tag and one probability column per class)")
    pred.add_argument("--model-uri", help="default: the registry's champion, else its latest version")
    _settings_flags(pred)
    pred.set_defaults(func=cmd_predict)


def add_evaluate_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help=help_of("evaluate"))
    ev.add_argument(
        "--input",
        required=True,
        help="file with title, description and tag (CSV with , ; tab or |, JSON, Parquet; local or URL); "
        "tags outside the model's classes count as other",
    )
    ev.add_argument("--report", help="also write a Markdown report (overall, per class, slices, confusion matrix) here")
    ev.add_argument("--model-uri", help="default: the registry's champion, else its latest version")
    _settings_flags(ev)
    ev.set_defaults(func=cmd_evaluate)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``tagifai`` parser, with every subcommand of :data:`tagifai_cli.commands.COMMANDS` in its order.

    ``command``: only the parser of that subcommand (and of the others its module adds with it) is complete,
    and only its module is imported; every other subcommand is its name and help line, which is all ``tagifai
    --help`` and argparse's errors show. None: every parser complete (imports every module).
    """
    parser = argparse.ArgumentParser(prog="tagifai", description=__doc__)
    # Flags only (no option takes a value): the first argument that is not an option names the subcommand
    # (_command_in; a test keeps it so).
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = COMMANDS[command][:2] if command in COMMANDS else None
    added: set[str] = set()
    for name, (module, adder, help_line) in COMMANDS.items():
        if name in added:
            continue
        if command is None or (module, adder) == wanted:
            before = set(sub.choices)
            # this module's own adders from this very copy of it (also when it runs as __main__, even under runpy)
            adders = globals() if module == "tagifai_cli.main" else vars(importlib.import_module(module))
            adders[adder](sub)
            added |= set(sub.choices) - before
        else:
            sub.add_parser(name, help=help_line)
    return parser


def _command_in(argv: list[str]) -> str:
    """The subcommand ``argv`` names: its first argument that is not an option ("" when there is none), which is
    the one argparse takes, since the top-level options are flags only."""
    return next((arg for arg in argv if not arg.startswith("-")), "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, not a traceback (--debug shows it)
        if args.debug:
            raise
        message = str(exc).strip().splitlines()
        print(f"tagifai {args.command}: error: {type(exc).__name__}: {message[0] if message else ''}", file=sys.stderr)
        for line in message[1:6]:
            print(f"  {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
