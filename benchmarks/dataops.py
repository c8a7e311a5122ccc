"""DataOps benchmark: ``tagifai run dataops`` on synthetic data of growing size (issue 13).

For each size (``--sizes``, default 100k and 1M rows; add 10M with ``--sizes 100000,1000000,10000000``):

1. make the data with benchmarks/synth.py (projects and tags, CSV unless ``--format parquet``; its seconds
   are reported apart, they are not part of the measurement);
2. run ``tagifai run dataops --projects P --tags T --home H --quiet`` in a new process with a fresh state
   folder ``H`` (a new DuckDB warehouse: the first load of that data), the environment's TAGIFAI_* settings
   removed, and measure its wall seconds and the memory of its process tree (benchmarks/common.py:
   ``peak_tree_rss``/``peak_tree_pss`` sampled every 0.2 s, ``max_process_rss`` of the largest single
   process);
3. read each step's seconds from ``H/last_run.json`` (the runner's own timing of each task, from kfp's log).

Then, between consecutive sizes: the growth ratio of the wall time, of each step and of the peak memory
against the ratio of rows (1.0 per row ratio = linear), and a two-point fit ``seconds = fixed + per_row * rows``
of each step (what a step costs whatever the size, mostly process start-up and imports, and what a million
rows add). The goals of issue 13 (1M rows: 30 s and 2 GiB; 10M: 5 min, 8 GiB, near-linear from 1M) are
compared with the one measured run: a figure under its goal is "under in this run", never "met".

With ``--library``, the pipeline is not run: each of sync-projects, sync-tags and transform is the library call
its component makes (``tagifai.sync.sync`` with the source's fingerprint; ``tagifai.transform.run_dbt("build")``
then ``tagifai.extract.extract_table`` of labeled_projects), in a fresh process of its own on one fresh warehouse,
in pipeline order, measured for wall seconds, CPU seconds (user + system, which a busy shared machine distorts
less) and the process's peak RSS. It isolates the load and the transform from the runner and the validations.

    make benchmark-dataops                                  # 100k and 1M rows (make bench too)
    python benchmarks/dataops.py --sizes 100000,1000000,10000000
    python benchmarks/dataops.py --sizes 10000 --format parquet --keep /tmp/dataops-bench
    python benchmarks/dataops.py --sizes 1000000,10000000 --library   # writes results/dataops-library.*
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

from benchmarks import synth  # noqa: E402
from benchmarks.common import (  # noqa: E402
    GIB,
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

DEFAULT_SIZES = (100_000, 1_000_000)
#: rows -> (max seconds, max bytes of the process tree) from issue 13's goals.
GOALS = {1_000_000: (30.0, 2 * GIB), 10_000_000: (300.0, 8 * GIB)}
#: Near-linear growth from 1M to 10M rows: the time ratio at most this much above the row ratio.
LINEAR_SLACK = 1.2


def run_size(rows: int, work: Path, fmt: str, seed: int) -> dict[str, Any]:
    """Make ``rows`` synthetic projects and run the dataops pipeline on them in a fresh state folder."""
    data, home = work / f"data-{rows}", work / f"home-{rows}"
    written = synth.write(rows, data, fmt=fmt, seed=seed)
    print(f"{rows:>10,} rows: synthetic data in {written.seconds:.1f} s ({written.bytes / 2**20:.0f} MiB)", flush=True)
    argv = [
        *tagifai_command(),
        "run",
        "dataops",
        "--projects",
        written.projects,
        "--tags",
        written.tags,
        "--home",
        str(home),
        "--quiet",
    ]
    measured = run_measured(argv, env=tagifai_env())
    last_path = home / "last_run.json"
    last = json.loads(last_path.read_text()) if last_path.exists() else {}
    steps = {s["name"]: s["seconds"] for s in last.get("steps", [])}
    result = {
        "rows": rows,
        "status": last.get("status") or ("failed" if measured.returncode else "unknown"),
        "measured": measured.to_dict(),
        "wall_seconds": measured.seconds,
        "pipeline_seconds": last.get("seconds"),
        "steps": steps,
        "steps_seconds": sum(steps.values()),
        "outside_steps_seconds": measured.seconds - sum(steps.values()),
        "rows_loaded": last.get("rows", {}),
        "synthetic": {
            "seconds": written.seconds,
            "bytes": written.bytes,
            "format": fmt,
            "suffix_words": written.suffix_words,
        },
    }
    result["measured"]["command"] = anonymised(measured.command, DATA=data, STATE=home)
    print(
        f"{rows:>10,} rows: {result['status']} in {measured.seconds:.1f} s wall, "
        f"steps {result['steps_seconds']:.1f} s, "
        f"tree peak RSS {gib(measured.peak_tree_rss)} (PSS {gib(measured.peak_tree_pss)}), largest process "
        f"{gib(measured.max_process_rss)}, load {measured.load_start:.2f} -> {measured.load_end:.2f}",
        flush=True,
    )
    if measured.returncode:
        print(measured.stderr[-3000:], file=sys.stderr)
    return result


def growth(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Ratios from size ``a`` to size ``b`` and the two-point fit of each step."""
    rows = b["rows"] / a["rows"]

    def fit(ta: float, tb: float) -> dict[str, float]:
        per_row = (tb - ta) / (b["rows"] - a["rows"])
        return {"fixed": ta - per_row * a["rows"], "per_million_rows": per_row * 1e6}

    steps = {}
    for name in b["steps"]:
        if name in a["steps"] and a["steps"][name] > 0:
            steps[name] = {"ratio": b["steps"][name] / a["steps"][name], **fit(a["steps"][name], b["steps"][name])}
    return {
        "from": a["rows"],
        "to": b["rows"],
        "rows_ratio": rows,
        "wall_ratio": b["wall_seconds"] / a["wall_seconds"],
        "wall_ratio_per_rows_ratio": (b["wall_seconds"] / a["wall_seconds"]) / rows,
        "peak_tree_rss_ratio": b["measured"]["peak_tree_rss"] / max(1, a["measured"]["peak_tree_rss"]),
        "wall_fit": fit(a["wall_seconds"], b["wall_seconds"]),
        "steps": steps,
    }


def goals(results: list[dict[str, Any]], growths: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 13's DataOps goals against this run: under / over / not measured."""
    by_rows = {r["rows"]: r for r in results}
    out = []
    for rows, (seconds, memory) in GOALS.items():
        r = by_rows.get(rows)
        label = f"DataOps, {rows / 1e6:g}M rows"
        if r is None or r["status"] != "succeeded":
            why = "not measured" if r is None else f"run {r['status']}"
            out.append({"goal": f"{label}: <= {seconds:g} s and <= {memory / GIB:g} GiB", "verdict": why})
            continue
        rss = r["measured"]["peak_tree_rss"]
        ok = r["wall_seconds"] <= seconds and rss <= memory
        out.append(
            {
                "goal": f"{label}: <= {seconds:g} s and <= {memory / GIB:g} GiB",
                "figure": f"{r['wall_seconds']:.1f} s, {gib(rss)} (tree RSS)",
                "verdict": "under in this one run" if ok else "over",
            }
        )
    lin = next((g for g in growths if g["from"] == 1_000_000 and g["to"] == 10_000_000), None)
    out.append(
        {
            "goal": f"near-linear growth 1M -> 10M (time ratio <= {LINEAR_SLACK:g} x row ratio)",
            **(
                {
                    "figure": f"time x{lin['wall_ratio']:.2f} for rows x{lin['rows_ratio']:.0f}",
                    "verdict": "under in this one run" if lin["wall_ratio_per_rows_ratio"] <= LINEAR_SLACK else "over",
                }
                if lin
                else {"verdict": "not measured"}
            ),
        }
    )
    return out


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    results = report["results"]
    lines = [
        "# DataOps benchmark",
        "",
        f"`tagifai run dataops` (kfp.local subprocess runner: sync projects, sync tags, validate each, dbt build, "
        f"validate labeled_projects) on synthetic projects from benchmarks/synth.py ({report['format']}, seed "
        f"{report['seed']}), each size once with a fresh state folder, in one run of `{report['command']}` on "
        f"{machine_line(m)}.",
        "",
        "| rows | status | wall s | steps s | outside the steps s | tree peak RSS | tree peak PSS | largest process "
        "| load start → end | data (not timed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        x = r["measured"]
        lines.append(
            f"| {r['rows']:,} | {r['status']} | {r['wall_seconds']:.1f} | {r['steps_seconds']:.1f} | "
            f"{r['outside_steps_seconds']:.1f} | {gib(x['peak_tree_rss'])} | {gib(x['peak_tree_pss'])} | "
            f"{gib(x['max_process_rss'])} | {x['load_start']:.2f} → {x['load_end']:.2f} | "
            f"{r['synthetic']['bytes'] / 2**20:.0f} MiB in {r['synthetic']['seconds']:.1f} s |"
        )
    names = list(dict.fromkeys(n for r in results for n in r["steps"]))
    lines += ["", "Seconds of each step (the runner's timing of each task):", ""]
    header = "| step | " + " | ".join(f"{r['rows']:,}" for r in results) + " |"
    fits = [g for g in report["growth"]]
    for g in fits:
        header += f" ×{g['rows_ratio']:.0f} rows: time ratio | fixed s | s per 1M rows |"
    lines += [header, "|---" * (header.count("|") - 1) + "|"]
    for name in names:
        row = f"| {name} | " + " | ".join(f"{r['steps'].get(name, float('nan')):.1f}" for r in results) + " |"
        for g in fits:
            s = g["steps"].get(name)
            row += f" {s['ratio']:.2f} | {s['fixed']:.1f} | {s['per_million_rows']:.1f} |" if s else " | | |"
        lines.append(row)
    total = "| **wall** | " + " | ".join(f"{r['wall_seconds']:.1f}" for r in results) + " |"
    for g in fits:
        total += f" {g['wall_ratio']:.2f} | {g['wall_fit']['fixed']:.1f} | {g['wall_fit']['per_million_rows']:.1f} |"
    lines.append(total)
    lines += [
        "",
        "Time ratio: seconds at the larger size over seconds at the smaller; for the row ratio it was measured at, "
        "a ratio near 1 means the step costs the same whatever the size (a fixed cost), near the row ratio "
        "linear. Fixed and per-1M-rows: the line through the two points. Tree RSS sums every process of the run "
        "(shared pages once per process), PSS shares them out; the largest process is its own peak "
        "(benchmarks/common.py).",
        "",
        "| goal (issue 13) | this run | verdict |",
        "|---|---|---|",
    ]
    for g in report["goals"]:
        lines.append(f"| {g['goal']} | {g.get('figure', '')} | {g['verdict']} |")
    missing = [n for n in report["sizes"] if n not in report.get("measured_sizes", report["sizes"])]
    if missing:
        lines += ["", f"Not measured (the run stopped before them): {', '.join(f'{n:,}' for n in missing)} rows."]
    lines += [
        "",
        "One run per size on a shared 2-core machine: compare the ratios of this run, not figures across runs.",
        "",
        f"Reproduce: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="comma-separated row counts (default 100000,1000000; 10000000 takes many minutes)",
    )
    parser.add_argument("--format", default="csv", choices=synth.FORMATS, help="the synthetic sources' format")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for dataops.*")
    parser.add_argument("--keep", type=Path, help="make the data and state folders here and keep them")
    parser.add_argument(
        "--library", action="store_true", help="time the library calls of sync and transform alone (no pipeline)"
    )
    opts = parser.parse_args(argv)
    try:
        sizes = sorted({int(s.replace("_", "")) for s in opts.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {opts.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: at least one positive row count")

    load_start = os.getloadavg()[0]
    began = time.perf_counter()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="tagifai-bench-dataops-"))
    work.mkdir(parents=True, exist_ok=True)
    command = benchmark_command("dataops.py", argv)
    results: list[dict[str, Any]] = []
    try:
        for rows in sizes:
            if opts.library:
                results.append(run_library(rows, work, opts.format, opts.seed))
                report = library_report(command, sizes, opts, load_start, began, results)
                paths = write_results("dataops-library", report, library_markdown(report), opts.out)
            else:
                results.append(run_size(rows, work, opts.format, opts.seed))
                report = build_report(command, sizes, opts, load_start, began, results)
                paths = write_results("dataops", report, markdown(report), opts.out)  # after each size: a long run
            if not opts.keep:  # room for the next size
                shutil.rmtree(work / f"data-{rows}", ignore_errors=True)
                shutil.rmtree(work / f"home-{rows}", ignore_errors=True)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(library_markdown(report) if opts.library else markdown(report))
    print(f"wrote {paths[1]} and {paths[0]}")
    return 0 if all(r["status"] == "succeeded" for r in results) else 1


def build_report(command: str, sizes: list[int], opts, load_start: float, began: float, results: list) -> dict:
    """The report of the sizes measured so far."""
    ok = [r for r in results if r["status"] == "succeeded"]
    growths = [growth(a, b) for a, b in zip(ok, ok[1:], strict=False)]
    return {
        "benchmark": "dataops",
        "command": command,
        "sizes": sizes,
        "measured_sizes": [r["rows"] for r in results],
        "format": opts.format,
        "seed": opts.seed,
        "machine": machine(load_start),
        "seconds": time.perf_counter() - began,
        "results": results,
        "growth": growths,
        "goals": goals(results, growths),
    }


# ------------------------------------------------------------------------- --library: the steps' library calls

#: Each step's library call, run as ``python -c CODE DATA HOME [FINGERPRINT]``; it prints one JSON line of details.
LIBRARY_STEPS: dict[str, str] = {
    name: f"""
import json, sys, time
from pathlib import Path
from tagifai.sync import sync
data, home, expected = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
result = sync(data, {table!r}, f"duckdb:///{{home / 'warehouse.duckdb'}}", home,
              snapshot=home / "artifacts" / {name!r}, expected_fingerprint=expected)
print(json.dumps({{"detail": result.to_dict()}}))
"""
    for name, table in (("sync-projects", "projects"), ("sync-tags", "tags"))
}
LIBRARY_STEPS["transform"] = """
import json, sys, time
from pathlib import Path
from tagifai.extract import extract_table
from tagifai.transform import run_dbt
home = Path(sys.argv[2])
uri = f"duckdb:///{home / 'warehouse.duckdb'}"
report = run_dbt("build", uri, state_dir=home / "dbt")
report.raise_for_failures()
start = time.perf_counter()
meta = extract_table(uri, "labeled_projects", home / "artifacts" / "labeled_projects")
extract_seconds = round(time.perf_counter() - start, 3)
ranked = sorted(report.results, key=lambda r: -r["execution_time"])[:3]
slowest = {r["name"]: round(r["execution_time"], 3) for r in ranked}
detail = {"dbt_seconds": round(report.elapsed, 3), "extract_seconds": extract_seconds, "rows": meta["rows"],
          "slowest_nodes": slowest}
print(json.dumps({"detail": detail}))
"""


def run_library(rows: int, work: Path, fmt: str, seed: int) -> dict[str, Any]:
    """Make ``rows`` synthetic projects and run the library call of each step on them, each in a fresh process."""
    import resource

    from tagifai.sources import fingerprint

    data, home = work / f"data-{rows}", work / f"home-{rows}"
    written = synth.write(rows, data, fmt=fmt, seed=seed)
    print(f"{rows:>10,} rows: synthetic data in {written.seconds:.1f} s ({written.bytes / 2**20:.0f} MiB)", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    sources = {"sync-projects": written.projects, "sync-tags": written.tags, "transform": ""}
    steps: dict[str, Any] = {}
    status = "succeeded"
    for name, code in LIBRARY_STEPS.items():
        source = sources[name]
        expected = fingerprint(source) if source else ""  # the fingerprint task's output, before the step
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        measured = run_measured([sys.executable, "-c", code, source, str(home), expected], env=tagifai_env())
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        detail = next((json.loads(line)["detail"] for line in measured.stdout.splitlines() if line.startswith("{")), {})
        steps[name] = {
            "seconds": round(measured.seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "max_rss": measured.max_process_rss,
            "load": [round(measured.load_start, 2), round(measured.load_end, 2)],
            "returncode": measured.returncode,
            "detail": detail,
        }
        print(
            f"{rows:>10,} rows: {name:<14} {measured.seconds:6.1f} s wall, {cpu:6.1f} s CPU, "
            f"peak RSS {gib(measured.max_process_rss)}, load {measured.load_start:.2f} -> {measured.load_end:.2f}",
            flush=True,
        )
        if measured.returncode:
            print(measured.stderr[-3000:], file=sys.stderr)
            status = "failed"
            break
    db = home / "warehouse.duckdb"
    return {
        "rows": rows,
        "status": status,
        "steps": steps,
        "seconds": round(sum(s["seconds"] for s in steps.values()), 3),
        "cpu_seconds": round(sum(s["cpu_seconds"] for s in steps.values()), 3),
        "warehouse_bytes": db.stat().st_size if db.exists() else 0,
        "synthetic": {"seconds": written.seconds, "bytes": written.bytes, "format": fmt},
    }


def library_report(command: str, sizes: list[int], opts, load_start: float, began: float, results: list) -> dict:
    return {
        "benchmark": "dataops-library",
        "command": command,
        "sizes": sizes,
        "measured_sizes": [r["rows"] for r in results],
        "format": opts.format,
        "seed": opts.seed,
        "machine": machine(load_start),
        "seconds": time.perf_counter() - began,
        "results": results,
    }


def library_markdown(report: dict[str, Any]) -> str:
    results = report["results"]
    lines = [
        "# DataOps library calls: sync and transform",
        "",
        "Each step's library call in a fresh process on one fresh DuckDB warehouse per size (synthetic "
        f"{report['format']}, seed {report['seed']}), in one run of `{report['command']}` on "
        f"{machine_line(report['machine'])}. CPU: user + system seconds of the process.",
        "",
        "| rows | step | wall s | CPU s | peak RSS | load start → end | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, s in r["steps"].items():
            detail = ", ".join(
                f"{k} {v}" for k, v in s["detail"].items() if k in ("dbt_seconds", "extract_seconds", "slowest_nodes")
            )
            lines.append(
                f"| {r['rows']:,} | {name} | {s['seconds']:.1f} | {s['cpu_seconds']:.1f} | {gib(s['max_rss'])} | "
                f"{s['load'][0]:.2f} → {s['load'][1]:.2f} | {_cell(detail)} |"
            )
        lines.append(
            f"| {r['rows']:,} | **all three** ({r['status']}) | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | | | "
            f"warehouse file {r['warehouse_bytes'] / 2**20:.0f} MiB |"
        )
    lines += ["", f"Reproduce: `{report['command']}`", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    sys.exit(main())
