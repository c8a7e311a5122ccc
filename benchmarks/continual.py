"""``continual`` end to end on the shared data (issue 13: wall time, per step and peak memory; goal <= 35 s).

Each run: ``tagifai run continual --home H --data-dir D --num-trials N --quiet`` in a new process with a fresh state
folder H (no cache, no embedding vectors, no champion: a first run), its process tree's memory sampled
(benchmarks/common.py), each step's seconds from ``H/last_run.json`` (the runner's timing of each task).

    python benchmarks/continual.py                 # one run, 20 trials (the default of tagifai run)
    python benchmarks/continual.py --runs 3

Writes benchmarks/results/continual.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DATA_DIR,
    anonymised,
    benchmark_command,
    gib,
    machine,
    machine_line,
    run_measured,
    tagifai_command,
    tagifai_env,
    write_results,
)

GOAL_SECONDS = 35.0


def one_run(work: Path, index: int, num_trials: int) -> dict[str, Any]:
    home = work / f"home-{index}"
    argv = [*tagifai_command(), "run", "continual", "--home", str(home), "--data-dir", str(DATA_DIR)]
    argv += ["--num-trials", str(num_trials), "--quiet"]
    measured = run_measured(argv, env=tagifai_env())
    last_path = home / "last_run.json"
    last = json.loads(last_path.read_text()) if last_path.exists() else {}
    steps = {s["name"]: s["seconds"] for s in last.get("steps", [])}
    result = {
        "status": last.get("status") or ("failed" if measured.returncode else "unknown"),
        "wall_seconds": measured.seconds,
        "pipeline_seconds": last.get("seconds"),
        "steps": steps,
        "measured": measured.to_dict(),
    }
    result["measured"]["command"] = anonymised(measured.command, STATE=home, DATA=DATA_DIR)
    print(
        f"run {index}: {result['status']} in {measured.seconds:.1f} s wall, tree peak RSS "
        f"{gib(measured.peak_tree_rss)}, load {measured.load_start:.2f} -> {measured.load_end:.2f}",
        flush=True,
    )
    if measured.returncode:
        print(measured.stderr[-3000:], file=sys.stderr)
    return result


def render(report: dict[str, Any]) -> str:
    runs = report["runs"]
    names = list(dict.fromkeys(name for run in runs for name in run["steps"]))
    walls = [run["wall_seconds"] for run in runs]
    lines = [
        "# `continual` end to end",
        "",
        f"`tagifai run continual --num-trials {report['num_trials']}` on the shared data (764 projects), a fresh "
        f"state folder a run, on {machine_line(report['machine'])}.",
        "",
        "| run | status | wall s | pipeline s | tree peak RSS | tree peak PSS | largest process | load start → end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        m = run["measured"]
        lines.append(
            f"| {i} | {run['status']} | {run['wall_seconds']:.1f} | {run['pipeline_seconds'] or 0:.1f} | "
            f"{gib(m['peak_tree_rss'])} | {gib(m['peak_tree_pss'])} | {gib(m['max_process_rss'])} | "
            f"{m['load_start']:.2f} → {m['load_end']:.2f} |"
        )
    lines += ["", "Seconds of each step (the runner's timing of each task):", ""]
    lines += ["| step | " + " | ".join(f"run {i}" for i in range(1, len(runs) + 1)) + " |"]
    lines += ["|---|" + "---|" * len(runs)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{run['steps'].get(name, 0):.1f}" for run in runs) + " |")
    median = statistics.median(walls)
    verdict = "under" if median <= GOAL_SECONDS else "over"
    lines += [
        "",
        "| goal (issue 13) | this run | verdict |",
        "|---|---|---|",
        f"| `continual` end to end on the shared data <= {GOAL_SECONDS:.0f} s | {median:.1f} s (median of "
        f"{len(walls)}) | {verdict} |",
        "",
        f"Reproduce: `{report['command']}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--num-trials", type=int, default=20)
    p.add_argument("--out", type=Path, default=None, help="folder for continual.md and continual.json")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tagifai-continual-") as tmp:
        runs = [one_run(Path(tmp), i, args.num_trials) for i in range(1, args.runs + 1)]
    report = {
        "machine": machine(load),
        "command": benchmark_command("continual.py", argv),
        "num_trials": args.num_trials,
        "runs": runs,
    }
    paths = write_results("continual", report, render(report), **({"out": args.out} if args.out else {}))
    print(render(report))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0 if all(run["status"] == "succeeded" for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
