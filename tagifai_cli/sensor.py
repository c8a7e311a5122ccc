"""``tagifai sense`` and ``tagifai watch``: the continual loop's sensor on this machine.

``tagifai sense`` reads the ``id`` and ``created_on`` of the projects source and the watermark in the
warehouse and prints the decision as JSON (tagifai.sensor). With ``--run`` it also runs the continual
pipeline locally when ``retrain`` is true (approval manual unless ``--approval`` or TAGIFAI_APPROVAL), and advances
the watermark only when that run succeeded and the source still gives the decision's run key. The run is
recorded as ``$TAGIFAI_HOME/sensor/<run key>.json`` (the decision, the run's status and summary file).

``tagifai watch --every 10m`` repeats ``sense --run`` until Ctrl-C (``--max-iterations N`` stops after N).
On a cluster, schedule the ``sensor`` pipeline instead (``tagifai schedule sensor``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

from tagifai_cli.options import pipeline_arguments, settings_from

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``10m``, ``1h``, ``1d`` as seconds; ValueError naming the expected form."""
    match = _DURATION.match(str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--every {text!r}: expected a positive duration such as 30s, 10m, 1h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def sense_once(args: argparse.Namespace, out=None) -> int:
    """One sense (and with ``--run`` the run and the advance); 0 unless a triggered run failed."""
    out = out or sys.stdout
    from tagifai.sensor import sense

    settings = settings_from(args)
    arguments = pipeline_arguments(
        "continual",
        settings,
        projects=args.projects,
        tags=args.tags,
        num_trials=args.num_trials,
        model_families=args.model_families,
        seed=args.seed,
        approval=args.approval,
        sensed=True,
    )
    min_new_rows = args.min_new_rows or settings.sensor_min_new_rows
    max_age_days = args.max_age_days or settings.sensor_max_age_days
    decision = sense(arguments["projects_source"], settings.warehouse, min_new_rows, max_age_days)
    out.write(json.dumps(decision.to_dict(), indent=2, default=str) + "\n")
    out.flush()
    if not args.run or not decision.retrain:
        return 0
    return _run(args, settings, arguments, decision, out)


def _run(args, settings, arguments: dict, decision, out) -> int:
    from tagifai.sensor import advance_for
    from tagifai_cli.local_run import print_summary, run_local
    from tagifai_cli.packaging import step_images

    settings.home.mkdir(parents=True, exist_ok=True)
    out.write(f"retrain: running continual as {decision.run_key} (approval {arguments['approval']})\n")
    summary = run_local(
        "continual", arguments, settings.home, runner=args.runner, quiet=args.quiet, images=step_images(settings)
    )
    if not args.quiet:
        print_summary(summary, stream=out)
    advanced = False
    if summary["status"] == "succeeded":
        advanced, now = advance_for(arguments["projects_source"], settings.warehouse, decision.run_key)
        if advanced:
            out.write(f"watermark advanced to {decision.run_key}\n")
        else:
            out.write(f"watermark NOT advanced: the source changed during the run (now {now.run_key})\n")
    else:
        out.write(f"continual {summary['status']}: the watermark stays ({settings.home / 'last_run.json'})\n")
    record = settings.home / "sensor" / f"{decision.run_key}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "run_key": decision.run_key,
                "decision": decision.to_dict(),
                "status": summary["status"],
                "advanced": advanced,
                "summary": str(settings.home / "last_run.json"),
                "log": summary.get("log"),
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    out.write(f"record: {record}\n")
    out.flush()
    return 0 if summary["status"] == "succeeded" else 1


def cmd_sense(args: argparse.Namespace) -> int:
    return sense_once(args)


def cmd_watch(args: argparse.Namespace) -> int:
    """``sense --run`` every ``--every`` until Ctrl-C or ``--max-iterations``; an iteration's error is shown
    and the loop goes on (a source that is briefly unreachable does not stop the watch)."""
    every = parse_duration(args.every)
    args.run = True
    done = 0
    try:
        while True:
            try:
                sense_once(args)
            except Exception as exc:  # noqa: BLE001 - one line, then the next iteration
                if args.debug:
                    raise
                print(f"tagifai watch: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            done += 1
            if args.max_iterations and done >= args.max_iterations:
                return 0
            time.sleep(every)
    except KeyboardInterrupt:
        print(f"tagifai watch: stopped after {done} iteration(s)", file=sys.stderr)
        return 0


def add_parser(subparsers) -> None:
    """``tagifai sense`` and ``tagifai watch``."""
    sense = subparsers.add_parser(
        "sense", help="is there enough new data to retrain? (prints the decision as JSON; --run acts on it)"
    )
    watch = subparsers.add_parser("watch", help="sense --run in a loop (Ctrl-C stops it)")
    for p in (sense, watch):
        p.add_argument("--home", help="state folder (TAGIFAI_HOME; default .tagifai in the project)")
        p.add_argument("--warehouse", help="duckdb:///file.duckdb or bigquery://project/dataset (holds the watermark)")
        p.add_argument("--mlflow-tracking-uri", help="MLflow tracking URI (default sqlite in the state folder)")
        p.add_argument("--optuna-storage", help="Optuna storage URL (default sqlite in the state folder)")
        p.add_argument("--data-dir", help="folder or URL prefix with projects.csv and tags.csv (DATA_DIR)")
        p.add_argument("--projects", help="projects source (path or URL; CSV, JSON or Parquet)")
        p.add_argument("--tags", help="tags source (for the run)")
        p.add_argument("--min-new-rows", type=int, help="TAGIFAI_SENSOR_MIN_NEW_ROWS (default 50)")
        p.add_argument("--max-age-days", type=float, help="TAGIFAI_SENSOR_MAX_AGE_DAYS (default 30)")
        p.add_argument(
            "--approval", choices=("auto", "manual"), help="of the run (default: TAGIFAI_APPROVAL, else manual)"
        )
        p.add_argument("--runner", default="subprocess", choices=("subprocess", "docker"))
        p.add_argument("--num-trials", type=int, help="Optuna trials of the run (TAGIFAI_NUM_TRIALS)")
        p.add_argument("--model-families", help="model families of the run (TAGIFAI_MODEL_FAMILIES)")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--quiet", action="store_true", help="no per-step progress of the run")
    sense.add_argument("--run", action="store_true", help="run continual when retrain is true, then advance")
    sense.set_defaults(func=cmd_sense)
    watch.add_argument("--every", default="10m", help="time between senses: 30s, 10m, 1h ... (default 10m)")
    watch.add_argument("--max-iterations", type=int, default=0, help="stop after N senses (default: never)")
    watch.set_defaults(func=cmd_watch)
