"""Sense benchmark: how long a no-op ``tagifai sense`` takes (the goal: at most 5 s on this machine).

A no-op sense is the common case of every sensor of the suite (``tagifai watch``, the ``sensor`` pipeline's
first task, the Cloud Run function in functions/vertex_sensor): the source holds nothing new since the
watermark, so the decision is ``retrain: false``. The state is prepared once in a temporary folder: the
watermark of the vendored projects source (data/madewithml/projects.csv, DATA_DIR overrides) written to a
DuckDB warehouse with :func:`tagifai.sensor.advance`, as after a successful run. Then, in one run of this
script, each measured ``--runs`` times (wall time):

- ``python -c pass``: the interpreter's start-up, the floor of any command;
- ``python -c "import tagifai.sensor"``: start-up and the sensor's imports (pandas, through tagifai.sources);
- ``python -c "from tagifai.sensor import sense; sense(...)"``: the library's sense in a new process (its
  imports, DuckDB's, the warehouse opened, the source read);
- ``tagifai sense --home STATE --projects projects.csv``: the whole command in a new process (checked to
  answer ``retrain: false``); its excess over the line above is the CLI's own (the parser, the settings);
- :func:`tagifai.sensor.sense` called again in this process (warm: everything imported).

Reported: median and max of each, the CLI's median as a multiple of the floor and of the warm call, and the
shares of the CLI's median. Written to benchmarks/results/sense.json and sense.md, each figure with the
command that produced it.

    make benchmark-sense                          # the same, in the project's venv (make bench too)
    python benchmarks/sense.py                    # 5 runs of each
    python benchmarks/sense.py --runs 20 --strict # exit 1 when the CLI's slowest run is over --max-seconds
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import DATA_DIR, machine, summary, tagifai_command, time_process  # noqa: E402

GOAL_SECONDS = 5.0


def prepare(state: Path, projects: Path) -> dict[str, Any]:
    """The watermark at the current data, as a successful run leaves it; the decision it was written from."""
    from tagifai.sensor import advance, sense

    warehouse = f"duckdb:///{state / 'warehouse.duckdb'}"
    decision = sense(str(projects), warehouse, min_new_rows=50, max_age_days=30.0)
    watermark = advance(warehouse, decision)
    return {"warehouse": warehouse, "rows": decision.rows, "run_key": watermark["run_key"]}


def sense_code(projects: Path, warehouse: str) -> str:
    return f"sense({str(projects)!r}, {warehouse!r}, 50, 30.0)"


def time_in_process(projects: Path, warehouse: str, runs: int) -> dict[str, Any]:
    """``runs`` calls of :func:`tagifai.sensor.sense` in this process, after one to warm it up."""
    from tagifai.sensor import sense

    assert not sense(str(projects), warehouse, 50, 30.0).retrain
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        decision = sense(str(projects), warehouse, 50, 30.0)
        seconds.append(time.perf_counter() - start)
        assert not decision.retrain, decision.reason
    return summary(seconds, f"from tagifai.sensor import sense; {sense_code(projects, warehouse)}  # again")


def markdown(report: dict[str, Any]) -> str:
    r = report["results"]
    m = report["machine"]
    goal = report["goal"]

    def row(name: str, key: str) -> str:
        x = r[key]
        return f"| {name} | {x['median']:.3f} | {x['max']:.3f} | `{x['command']}` |"

    verdict = "met" if goal["met"] else "**missed**"
    lines = [
        "# Sense benchmark",
        "",
        f"A no-op `tagifai sense`: the vendored projects source ({report['rows']} rows) has nothing new since the "
        f"watermark (run key `{report['run_key']}`, DuckDB warehouse in a temporary state folder), so the decision is "
        f"`retrain: false`. Wall seconds of {report['runs']} runs of each, in one run of `{report['command']}` "
        f"on {m['cpus']} cores (Python {m['python']}, load average {m['load_start']:.2f} at start, "
        f"{m['load_end']:.2f} at end).",
        "",
        "| what | median s | max s | command |",
        "|---|---|---|---|",
        row("interpreter start-up (the floor)", "python_startup"),
        row("start-up + the sensor's imports", "sensor_import"),
        row("the library's sense, a new process", "library_sense"),
        row("**`tagifai sense`, a new process**", "cli_sense"),
        row("`sense()` again in a warm process", "in_process"),
        "",
        f"The CLI's median is {report['ratios']['cli_over_startup']:.1f}× the interpreter's start-up and "
        f"{report['ratios']['cli_over_in_process']:.1f}× a warm in-process sense. Of it, the interpreter and the "
        f"sensor's imports (pandas above all) are {report['ratios']['imports_share']:.0%}, the first sense of a "
        f"process (DuckDB's import, the warehouse opened, the source read) "
        f"{report['ratios']['first_sense_share']:.0%}, the CLI's own parser and settings "
        f"{report['ratios']['cli_share']:.0%}; the decision itself (a warm call) is "
        f"{1 / report['ratios']['cli_over_in_process']:.0%}.",
        "",
        f"Goal: at most {goal['max_seconds']:.0f} s for the slowest CLI run: {verdict} "
        f"({r['cli_sense']['max']:.3f} s).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measured command (default 5)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for sense.md and sense.json"
    )
    parser.add_argument("--max-seconds", type=float, default=GOAL_SECONDS, help="the goal for the slowest CLI run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the slowest CLI run exceeds the goal")
    opts = parser.parse_args(argv)
    if opts.runs < 1:
        parser.error("--runs must be at least 1")
    projects = DATA_DIR / "projects.csv"
    if not projects.exists():
        raise SystemExit(f"{projects}: not found (set DATA_DIR)")

    load_start = os.getloadavg()[0]
    state = Path(tempfile.mkdtemp(prefix="tagifai-bench-sense-"))
    try:
        prepared = prepare(state, projects)
        python = [sys.executable, "-c"]
        results = {
            "python_startup": time_process([*python, "pass"], opts.runs),
            "sensor_import": time_process([*python, "import tagifai.sensor"], opts.runs),
            "library_sense": time_process(
                [
                    *python,
                    f"from tagifai.sensor import sense; print({sense_code(projects, prepared['warehouse'])}.retrain)",
                ],
                opts.runs,
                check=lambda out: out.strip() == "False",
            ),
            "cli_sense": time_process(
                [*tagifai_command(), "sense", "--home", str(state), "--projects", str(projects)],
                opts.runs,
                check=lambda out: json.loads(out)["retrain"] is False,
            ),
            "in_process": time_in_process(projects, prepared["warehouse"], opts.runs),
        }
    finally:
        shutil.rmtree(state, ignore_errors=True)
    for r in results.values():  # the temporary folder's name changes every run; the command keeps its shape
        r["command"] = r["command"].replace(str(state), "STATE").replace(str(ROOT) + os.sep, "")
    median = {name: r["median"] for name, r in results.items()}
    cli = median["cli_sense"]
    report = {
        "command": "python benchmarks/sense.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": opts.runs,
        "rows": prepared["rows"],
        "run_key": prepared["run_key"],
        "machine": machine(load_start),
        "results": results,
        "ratios": {
            "cli_over_startup": cli / median["python_startup"],
            "cli_over_in_process": cli / median["in_process"],
            "imports_share": median["sensor_import"] / cli,
            "first_sense_share": (median["library_sense"] - median["sensor_import"]) / cli,
            "cli_share": (cli - median["library_sense"]) / cli,
        },
        "goal": {
            "max_seconds": opts.max_seconds,
            "met": results["cli_sense"]["max"] <= opts.max_seconds,
        },
    }
    report["command"] = report["command"].strip()
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "sense.json").write_text(json.dumps(report, indent=2) + "\n")
    (opts.out / "sense.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {opts.out / 'sense.md'} and {opts.out / 'sense.json'}")
    if opts.strict and not report["goal"]["met"]:
        print(f"goal missed: slowest CLI run {results['cli_sense']['max']:.3f} s > {opts.max_seconds} s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
