"""Every ``tagifai`` subcommand: its name, the function that adds its parser, and its help line.

``tagifai COMMAND ...`` builds the complete parser of COMMAND only, importing only the module that defines it
(``tagifai predict`` imports neither kfp nor the delivery modules); the other commands are listed by name and
help line from this table, so ``tagifai --help`` lists them all without importing any
(:func:`tagifai_cli.main.build_parser`). The modules take their help lines from here (:func:`help_of`), so the
two never differ.

This module imports nothing: it is read on every start of the command.
"""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    """Where a subcommand's parser comes from: ``module.adder(subparsers)`` adds it (and the other commands of
    the table with the same adder, which follow it), and the one line ``tagifai --help`` shows for it."""

    module: str
    adder: str
    help: str


#: The subcommands in the order ``tagifai --help`` lists them.
COMMANDS: dict[str, Command] = {
    "run": Command("tagifai_cli.main", "add_run_parser", "run a pipeline locally with kfp.local"),
    "compile": Command("tagifai_cli.main", "add_compile_parser", "compile the pipelines to YAML"),
    "predict": Command("tagifai_cli.main", "add_predict_parser", "tag projects with the registered model"),
    "evaluate": Command(
        "tagifai_cli.main",
        "add_evaluate_parser",
        "evaluate the registered model on a CSV with title, description, tag",
    ),
    "submit": Command(
        "tagifai_cli.kubeflow", "add_parsers", "upload a pipeline (version) to Kubeflow Pipelines and run it"
    ),
    "schedule": Command("tagifai_cli.kubeflow", "add_parsers", "create a recurring run on Kubeflow Pipelines"),
    "backfill": Command(
        "tagifai_cli.kubeflow", "add_parsers", "run past intervals of a cron, oldest first, one at a time"
    ),
    "vertex": Command("tagifai_cli.vertex", "add_parser", "run or schedule a pipeline on Vertex AI Pipelines"),
    "images": Command("tagifai_cli.images", "add_parser", "build, push and list the step images (Docker SDK)"),
    "cluster": Command(
        "tagifai_cli.cluster", "add_parser", "a local Kubeflow Pipelines on kind; deploy manifests/ to a cluster"
    ),
    "models": Command(
        "tagifai_cli.models", "add_parser", "registered model versions: list, approve, rollback, alias history"
    ),
    "sense": Command(
        "tagifai_cli.sensor",
        "add_parser",
        "is there enough new data to retrain? (prints the decision as JSON; --run acts on it)",
    ),
    "watch": Command("tagifai_cli.sensor", "add_parser", "sense --run in a loop (Ctrl-C stops it)"),
    "report": Command(
        "tagifai_cli.runs",
        "add_parsers",
        "write the HTML report of a local run (default the last): runs/<run>/report.html; prints its path",
    ),
    "runs": Command(
        "tagifai_cli.runs",
        "add_parsers",
        "list the local runs (status, duration, f1, model) and write runs/index.html; "
        "list|get|cancel|retry the runs on Kubeflow Pipelines",
    ),
    "ui": Command(
        "tagifai_cli.ui",
        "add_parsers",
        "the MLflow UI and optuna-dashboard on the local stores; prints their addresses, Ctrl-C stops both",
    ),
    "docs": Command(
        "tagifai_cli.ui",
        "add_parsers",
        "build dbt's documentation site of dbt_transforms/ as one page: $TAGIFAI_HOME/dbt-docs/index.html",
    ),
}


def help_of(name: str) -> str:
    """The help line of subcommand ``name``."""
    return COMMANDS[name].help
