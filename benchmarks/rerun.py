"""Re-run benchmark: ``tagifai run continual`` twice on one fresh state folder, unchanged sources (goal: the
second at most 25 % of the first, once caching is content-keyed).

The second run reuses every cached step (docs/deploy.md, "Caching"): only the fingerprints, hold-warehouse,
drift and notify run again. A third run with ``--no-cache`` on the same folder shows what the cache saved
against a full run on a warm state (the Optuna study already holds its trials, the embedding store its
vectors). Reported: wall seconds of each run, each step's status and seconds, and the ratios. Written to
benchmarks/results/rerun.json and rerun.md.

    make benchmark-rerun                     # the same, in the project's venv (make bench too)
    python benchmarks/rerun.py --num-trials 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    DATA_DIR,
    anonymised,
    benchmark_command,
    machine,
    machine_line,
    shown,
    tagifai_command,
    tagifai_env,
    write_results,
)

GOAL = 0.25


def _run(home: Path, num_trials: int, *extra: str) -> dict[str, Any]:
    argv = [*tagifai_command(), "run", "continual", "--home", str(home), "--data-dir", str(DATA_DIR)]
    argv += ["--num-trials", str(num_trials), "--quiet", *extra]
    env = tagifai_env(TAGIFAI_HOME=str(home))  # the embedding store follows the state folder
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{shown(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    summary = json.loads((home / "last_run.json").read_text())
    return {
        "command": anonymised(shown(argv), STATE=home),
        "seconds": round(seconds, 2),
        "pipeline_seconds": summary["seconds"],
        "steps": {s["name"]: [s["status"], s["seconds"]] for s in summary["steps"]},
        "model_uri": summary.get("model_uri"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="tagifai-rerun-"))
    try:
        first = _run(home, args.num_trials)
        second = _run(home, args.num_trials)
        full = _run(home, args.num_trials, "--no-cache")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    ratio = second["seconds"] / first["seconds"]
    report = {
        "command": benchmark_command("rerun.py", argv),
        "machine": machine(load),
        "first": first,
        "second": second,
        "no_cache": full,
        "second_over_first": round(ratio, 3),
        "second_over_no_cache": round(second["seconds"] / full["seconds"], 3),
        "goal": GOAL,
        "met": ratio <= GOAL,
    }
    cached = [n for n, (status, _) in second["steps"].items() if status == "cached"]
    ran = [n for n, (status, _) in second["steps"].items() if status != "cached"]
    md = [
        "# Re-run on unchanged sources (content-keyed caching)",
        "",
        f"`{report['command']}`: `tagifai run continual` twice on one fresh state folder, then once with "
        "`--no-cache`; wall seconds of each command.",
        "",
        machine_line(report["machine"]),
        "",
        "| run | seconds | pipeline seconds | model |",
        "|---|---|---|---|",
        f"| first | {first['seconds']:.1f} | {first['pipeline_seconds']:.1f} | {first['model_uri']} |",
        f"| second (cached) | {second['seconds']:.1f} | {second['pipeline_seconds']:.1f} | {second['model_uri']} |",
        f"| third (`--no-cache`) | {full['seconds']:.1f} | {full['pipeline_seconds']:.1f} | {full['model_uri']} |",
        "",
        f"- second / first: **{ratio:.3f}** (goal ≤ {GOAL}: {'met' if report['met'] else 'missed'}); "
        f"second / no-cache: {report['second_over_no_cache']:.3f}.",
        f"- reused in the second run: {', '.join(cached) or 'nothing'}; ran: {', '.join(ran)}.",
        f"- first run's command: `{first['command']}`.",
    ]
    paths = write_results("rerun", report, "\n".join(md))
    print("\n".join(md))
    print(f"\nwritten: {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
