"""``tagifai report [RUN]`` and ``tagifai runs``: the report of a local run, and the list of all local runs.

``tagifai runs`` (and ``tagifai runs list``) lists the local runs; ``tagifai runs list --kubeflow`` (or with
``--host``) the runs on Kubeflow Pipelines, and ``tagifai runs get|cancel|retry RUN_ID`` look at, terminate or
retry one run there (:mod:`tagifai_cli.kubeflow`, with the same connection flags and settings as ``submit``).

Every ``tagifai run`` writes its report at the end (:func:`tagifai_cli.report.write_run_report`); these
commands write it again on demand (after a change, or for a run from before the reports) and list the runs
with ``runs/index.html`` beside their reports. A run from before the reports has no saved summary: one is
made from its folder (:func:`derived_summary`, the same summary code as a run's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from tagifai_cli.commands import help_of
from tagifai_cli.options import settings_from


class RunNotFound(Exception):
    """No such local run."""


def derived_summary(run_dir: Path) -> dict:
    """The summary of a run folder without a saved one: every task folder as a step (``succeeded`` when kfp
    wrote its ``executor_output.json``), the Show values of the step table, duration from the folder times."""
    from tagifai_cli.local_run import StepEvent, summarise
    from tagifai_cli.report.collect import OWN, pipeline_of, started_at

    folders = sorted((p for p in run_dir.iterdir() if p.is_dir() and p.name != OWN), key=lambda p: p.stat().st_mtime)
    steps = [
        StepEvent(p.name, label=p.name, status="succeeded" if (p / "executor_output.json").exists() else "failed")
        for p in folders
    ]
    seconds = 0.0
    start = started_at(run_dir)
    if start and folders:
        begun = dt.datetime.strptime(start, "%Y-%m-%d %H:%M:%S").timestamp()
        seconds = max(0.0, max(p.stat().st_mtime for p in folders) - begun)
    failed = any(s.status == "failed" for s in steps)
    summary = summarise(pipeline_of(run_dir) or "pipeline", "failed" if failed else "finished", steps, run_dir, seconds)
    for step in summary["steps"]:
        step["seconds"] = None
    summary["finished_at"] = None
    summary["derived"] = "from the run folder (the run saved no summary)"
    return summary


def resolve_run(home: Path, run: str | None) -> Path:
    """The folder of ``run`` (a folder name under ``home/runs``, or a path); default the last run."""
    from tagifai_cli.report.index import read_last_run, run_dirs

    root = home / "runs"
    if run:
        for candidate in (Path(run), root / run):
            if candidate.is_dir():
                return candidate.resolve()
        names = [p.name for p in run_dirs(root)][-5:]
        raise RunNotFound(f"no run {run!r} in {root}" + (f"; the latest: {', '.join(names)}" if names else ""))
    last = read_last_run(home)
    if last and last.get("run_dir"):  # the state folder may have moved since: its name under this one
        here = root / Path(last["run_dir"]).name
        if here.is_dir():
            return here.resolve()
    found = run_dirs(root)
    if not found:
        raise RunNotFound(f"no local runs in {root}: `tagifai run` makes one")
    return found[-1].resolve()


def _spec(summary: dict, settings) -> dict | None:
    """The compiled spec of the run's pipeline, built now (for a run whose report saved no graph)."""
    from pipelines import NAMES
    from pipelines.factory import build
    from tagifai_cli.packaging import step_images
    from tagifai_cli.report.build import spec_of

    if summary.get("pipeline") not in NAMES:
        return None
    try:
        return spec_of(build(summary["pipeline"], "local", images=step_images(settings)))
    except Exception:  # noqa: BLE001 - the graph then follows the order the steps ran in
        return None


def cmd_report(args: argparse.Namespace) -> int:
    from tagifai_cli.report import build, index
    from tagifai_cli.report.collect import OWN

    settings = settings_from(args)
    run_dir = resolve_run(settings.home, args.run)
    summary = index.run_summary(run_dir, index.read_last_run(settings.home), derived_summary)
    spec = None if (run_dir / OWN / "dag.json").exists() else _spec(summary, settings)
    path = build.write(run_dir, summary, spec=spec, optuna_storage=settings.optuna_storage)
    index.write_index(settings.home, index.summaries(settings.home, derived_summary))
    print(path)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from tagifai_cli.report import index

    settings = settings_from(args)
    runs = index.summaries(settings.home, derived_summary)
    path = index.write_index(settings.home, runs)
    if args.json:
        keys = ("run", "pipeline", "status", "seconds", "started", "rows", "metrics", "model_uri", "report")
        print(json.dumps([{k: r.get(k) for k in keys} for r in runs], indent=2, default=str))
        return 0
    header = f"{'run':<40}{'status':<11}{'seconds':>8}{'f1':>9}  {'model':<7}{'decision':<18}rows (extracted)"
    print(header)
    for r in runs:
        seconds = r.get("seconds")
        f1 = index.f1_of(r)
        print(
            f"{r['run']:<40}{(r.get('status') or 'unknown'):<11}"
            f"{(f'{seconds:.0f}' if isinstance(seconds, int | float) and seconds else '-'):>8}"
            f"{(f'{f1:.4f}' if f1 is not None else '-'):>9}  {index.model_version(r) or '-':<7}"
            f"{index.outcome_of(r) or '-':<18}{(r.get('rows') or {}).get('extracted', '-')}"
        )
    if not runs:
        print("(no runs yet: `tagifai run` makes one)")
    print(f"index: {path}")
    return 0


def cmd_runs_list(args: argparse.Namespace) -> int:
    """``runs list``: the local runs, or with ``--kubeflow``/``--host`` those on Kubeflow Pipelines."""
    if args.kubeflow or args.host:
        from tagifai_cli.kubeflow import cmd_runs_list as kubeflow_list

        return kubeflow_list(args)
    given = [flag for flag, value in (("--experiment", args.experiment), ("--pipeline", args.pipeline)) if value]
    if given or args.in_cluster or args.token_file or args.namespace:
        from tagifai_cli.packaging import DeliveryError

        raise DeliveryError(f"{', '.join(given) or 'a connection flag'}: for the runs on Kubeflow: add --kubeflow")
    return cmd_runs(args)


def add_parsers(sub) -> None:
    def state_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--home", help="state folder (TAGIFAI_HOME; default .tagifai in the project)")
        p.add_argument("--optuna-storage", help="Optuna storage URL (default sqlite in the state folder)")

    rep = sub.add_parser("report", help=help_of("report"))
    rep.add_argument("run", nargs="?", help="a run folder name under $TAGIFAI_HOME/runs, or its path")
    state_flags(rep)
    rep.set_defaults(func=cmd_report)

    lst = sub.add_parser("runs", help=help_of("runs"))
    lst.add_argument("--json", action="store_true", help="print the runs as JSON")
    state_flags(lst)
    lst.set_defaults(func=cmd_runs)
    from tagifai_cli import kubeflow

    rsub = lst.add_subparsers(dest="runs_command", metavar="{list,get,cancel,retry}")  # none: the local runs
    ls = rsub.add_parser("list", help="the local runs, or with --kubeflow (or --host) those on Kubeflow Pipelines")
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the runs as JSON")
    ls.add_argument("--home", default=argparse.SUPPRESS, help="state folder of the local runs (TAGIFAI_HOME)")
    kubeflow.add_list_arguments(ls)
    ls.set_defaults(func=cmd_runs_list)
    kubeflow.add_run_parsers(rsub)
