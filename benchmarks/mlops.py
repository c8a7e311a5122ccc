"""MLOps benchmark: ``tagifai run mlops`` (extract to evaluate, 20 trials) on synthetic data (issue 13).

Goal of issue 13: MLOps on 100k rows, extract to evaluate with 20 Optuna trials, in at most 10 minutes.

For each size (``--sizes``, default 10k and 100k rows) and each setting of the search sample
(``--sample-rows``, default: the library's own default, i.e. ``TAGIFAI_OPTIMIZE_SAMPLE_ROWS`` unset):

1. make the data with benchmarks/synth.py (CSV unless ``--format parquet``) and load it into a fresh state
   folder ``H`` with ``tagifai run dataops --projects P --tags T --home H --quiet`` (timed, reported apart:
   it is not part of the measurement; benchmarks/dataops.py measures it);
2. run ``tagifai run mlops --home H --num-trials N --seed S --quiet`` in a new process, the environment's
   TAGIFAI_* settings removed but ``TAGIFAI_HOME=H`` (so the persistent embedding store is ``H/embeddings``:
   empty, the encoder runs for every text once) and ``TAGIFAI_OPTIMIZE_SAMPLE_ROWS`` when a sample setting
   is given; measure its wall seconds and the memory of its process tree (benchmarks/common.py);
3. read each step's seconds from ``H/last_run.json``, the study from ``H/optuna.db`` (trials complete and
   pruned, each trial's seconds, the first trial apart: it encodes the texts of the search; the rows the
   trials saw: the study's user attributes) and count the vectors of the embedding store (texts encoded
   in the whole run; with the store used, each text once).

With several sizes, the growth of the wall time and of each step against the row ratio, and the two-point
fit ``seconds = fixed + per_row * rows``. The goal is compared with the one measured run: a figure under it
is "under in this run", never "met". Results: benchmarks/results/mlops.json and mlops.md (after each run).

    make bench                                                  # 10k and 100k rows, 20 trials
    python benchmarks/mlops.py --sizes 10000 --num-trials 5     # a quick run (a few minutes)
    python benchmarks/mlops.py --sizes 100000 --sample-rows off,20000   # before / after the sampled search
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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

DEFAULT_SIZES = (10_000, 100_000)
#: rows -> max wall seconds of the mlops run (issue 13).
GOALS = {100_000: 600.0}
#: The environment variable of the search sample (tagifai/optimize.py: sample_rows_setting).
SAMPLE_ENV = "TAGIFAI_OPTIMIZE_SAMPLE_ROWS"
#: The mlops steps in pipeline order (the rest of last_run.json's steps: the run's own, e.g. notify).
MLOPS_STEPS = ("extract", "validate-dataset", "optimize", "train", "evaluate")


def store_vectors(folder: Path) -> dict[str, Any]:
    """Vectors and shards of the embedding store under ``folder`` (0 when absent), and the vectors of each
    sub-folder (one per encoder: two mean the steps of the run encoded with different encoders)."""
    import numpy as np

    vectors = shards = size = 0
    folders: dict[str, int] = {}
    for shard in sorted(folder.rglob("shard-*.npy")) if folder.exists() else []:
        n = len(np.load(shard, mmap_mode="r", allow_pickle=False))
        vectors += n
        shards += 1
        size += shard.stat().st_size
        name = str(shard.parent.relative_to(folder))
        folders[name] = folders.get(name, 0) + n
    return {"vectors": vectors, "shards": shards, "bytes": size, "folders": folders}


def study_figures(storage: Path) -> dict[str, Any] | None:
    """The study of the run (the one with trials in ``storage``): counts, each trial's seconds and the
    user attributes optimize records (the rows the trials saw)."""
    if not storage.exists():
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{storage}"
    names = [s.study_name for s in optuna.get_all_study_summaries(url) if s.n_trials]
    if not names:
        return None
    study = optuna.load_study(study_name=names[-1], storage=url)
    trials = study.get_trials(deepcopy=False)
    seconds = [t.duration.total_seconds() for t in trials if t.duration is not None]
    states = [t.state.name for t in trials]
    return {
        "study_name": study.study_name,
        "user_attrs": dict(study.user_attrs),
        "n_trials": len(trials),
        "n_complete": states.count("COMPLETE"),
        "n_pruned": states.count("PRUNED"),
        "n_failed": states.count("FAIL"),
        "trial_seconds": [round(s, 2) for s in seconds],
        "trials_seconds": round(sum(seconds), 2),
        "first_trial_seconds": round(seconds[0], 2) if seconds else None,
        "median_other_trial_seconds": round(statistics.median(seconds[1:]), 2) if len(seconds) > 1 else None,
        "folds_run": sum(len(t.intermediate_values) for t in trials),
        "best_value": study.best_value if states.count("COMPLETE") else None,
    }


def run_one(rows: int, sample: str | None, work: Path, opts: argparse.Namespace) -> dict[str, Any]:
    """Make ``rows`` synthetic projects, load them with dataops in a fresh state folder, run mlops on them."""
    label = "default" if sample is None else f"sample-{sample}"
    data, home = work / f"data-{rows}", work / f"home-{rows}-{label}"
    if not (data / "projects.csv").exists() and not (data / "projects.parquet").exists():
        written = synth.write(rows, data, fmt=opts.format, seed=opts.seed)
        print(f"{rows:>8,} rows: synthetic data in {written.seconds:.1f} s", flush=True)
        projects, tags = written.projects, written.tags
    else:
        projects, tags = (str(data / f"{n}.{opts.format}") for n in ("projects", "tags"))
    env = tagifai_env(TAGIFAI_HOME=str(home))  # the embedding store follows the state folder: a cold store
    load = [*tagifai_command(), "run", "dataops", "--projects", projects, "--tags", tags, "--home", str(home)]
    loaded = run_measured([*load, "--quiet"], env=env)
    print(f"{rows:>8,} rows [{label}]: dataops {loaded.seconds:.1f} s (load {loaded.load_end:.2f})", flush=True)
    result: dict[str, Any] = {
        "rows": rows,
        "sample_setting": sample,
        "label": label,
        "dataops": {"seconds": loaded.seconds, "returncode": loaded.returncode},
    }
    if loaded.returncode:
        print(loaded.stderr[-3000:], file=sys.stderr)
        return {**result, "status": "dataops failed"}
    if sample is not None:
        env[SAMPLE_ENV] = sample
    argv = [*tagifai_command(), "run", "mlops", "--home", str(home), "--num-trials", str(opts.num_trials)]
    argv += ["--seed", str(opts.run_seed), "--quiet"]
    measured = run_measured(argv, env=env)
    last_path = home / "last_run.json"
    last = json.loads(last_path.read_text()) if last_path.exists() else {}
    steps = {s["name"]: s["seconds"] for s in last.get("steps", [])}
    store = store_vectors(home / "embeddings")
    result.update(
        {
            "status": last.get("status") or ("failed" if measured.returncode else "unknown"),
            "measured": measured.to_dict(),
            "wall_seconds": measured.seconds,
            "pipeline_seconds": last.get("seconds"),
            "steps": steps,
            "mlops_steps_seconds": sum(steps.get(n, 0.0) for n in MLOPS_STEPS),
            "rows_seen": last.get("rows", {}),
            "best_params": last.get("best_params"),
            "best_validation_score": last.get("best_validation_score"),
            "test_metrics": last.get("metrics"),
            "study": study_figures(home / "optuna.db"),
            "embedding_store": store,
        }
    )
    result["measured"]["command"] = anonymised(measured.command, DATA=data, STATE=home)
    study = result["study"] or {}
    attrs = study.get("user_attrs", {})
    print(
        f"{rows:>8,} rows [{label}]: mlops {result['status']} in {measured.seconds:.1f} s wall "
        f"({', '.join(f'{n} {steps[n]:.1f}' for n in MLOPS_STEPS if n in steps)}), "
        f"trials {study.get('n_complete')} complete + {study.get('n_pruned')} pruned on "
        f"{attrs.get('search_rows', '?')} of {attrs.get('dev_rows', '?')} rows, "
        f"store {store['vectors']:,} vectors, tree peak RSS {gib(measured.peak_tree_rss)}, "
        f"load {measured.load_start:.2f} -> {measured.load_end:.2f}",
        flush=True,
    )
    if measured.returncode:
        print(measured.stdout[-2000:], measured.stderr[-3000:], file=sys.stderr)
    return result


def growth(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Ratios from run ``a`` to run ``b`` (same sample setting) and the two-point fit of each step."""
    rows = b["rows"] / a["rows"]

    def fit(ta: float, tb: float) -> dict[str, float]:
        per_row = (tb - ta) / (b["rows"] - a["rows"])
        return {"fixed": ta - per_row * a["rows"], "per_100k_rows": per_row * 1e5}

    steps = {
        n: {"ratio": b["steps"][n] / a["steps"][n], **fit(a["steps"][n], b["steps"][n])}
        for n in b["steps"]
        if a["steps"].get(n)
    }
    return {
        "label": b["label"],
        "from": a["rows"],
        "to": b["rows"],
        "rows_ratio": rows,
        "wall_ratio": b["wall_seconds"] / a["wall_seconds"],
        "wall_fit": fit(a["wall_seconds"], b["wall_seconds"]),
        "steps": steps,
    }


def goals(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rows, seconds in GOALS.items():
        label = f"MLOps (extract to evaluate), {rows:,} rows: <= {seconds / 60:g} min"
        runs = [r for r in results if r["rows"] == rows]
        if not runs:
            out.append({"goal": label, "verdict": "not measured"})
        for r in runs:
            if r["status"] != "succeeded":
                out.append({"goal": label, "run": r["label"], "verdict": f"run {r['status']}"})
                continue
            out.append(
                {
                    "goal": label,
                    "run": r["label"],
                    "figure": f"{r['wall_seconds']:.1f} s ({r['wall_seconds'] / 60:.1f} min), "
                    f"{gib(r['measured']['peak_tree_rss'])} tree RSS",
                    "verdict": "under in this one run" if r["wall_seconds"] <= seconds else "over",
                }
            )
    return out


def _encoders(store: dict[str, Any]) -> str:
    """A note when the store holds vectors of more than one encoder (its code changed during the run)."""
    folders = store.get("folders") or {}
    if len(folders) < 2:
        return ""
    parts = " + ".join(f"{n:,} in {name}" for name, n in folders.items())
    return f" ({parts}: the encoder changed during the run)"


def _f(value: Any, fmt: str = ".1f") -> str:
    return "" if value is None else format(value, fmt)


def markdown(report: dict[str, Any]) -> str:
    results = [r for r in report["results"] if "measured" in r]
    lines = [
        "# MLOps benchmark",
        "",
        f"`tagifai run mlops --num-trials {report['num_trials']}` (kfp.local subprocess runner: extract, "
        "validate-dataset, optimize, train, evaluate) on synthetic projects from benchmarks/synth.py "
        f"({report['format']}, seed {report['seed']}) loaded by `tagifai run dataops` into a fresh state folder, "
        f"a cold embedding store in it, once per size and search-sample setting, in one run of "
        f"`{report['command']}` on {machine_line(report['machine'])}.",
        "",
        "| rows | search sample | status | wall s | steps s | tree peak RSS | tree peak PSS | largest process "
        "| load start → end | test f1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        x = r["measured"]
        f1 = (r.get("test_metrics") or {}).get("f1")
        lines.append(
            f"| {r['rows']:,} | {r['label']} | {r['status']} | {r['wall_seconds']:.1f} | "
            f"{r['mlops_steps_seconds']:.1f} | {gib(x['peak_tree_rss'])} | {gib(x['peak_tree_pss'])} | "
            f"{gib(x['max_process_rss'])} | {x['load_start']:.2f} → {x['load_end']:.2f} | {_f(f1, '.4f')} |"
        )
    names = list(dict.fromkeys(n for r in results for n in r["steps"]))
    lines += ["", "Seconds of each step (the runner's timing of each task, `last_run.json`):", ""]
    header = "| step | " + " | ".join(f"{r['rows']:,} {r['label']}" for r in results) + " |"
    for g in report["growth"]:
        header += f" ×{g['rows_ratio']:.0f} rows ({g['label']}): ratio | fixed s | s per 100k rows |"
    lines += [header, "|---" * (header.count("|") - 1) + "|"]
    for name in names:
        row = f"| {name} | " + " | ".join(_f(r["steps"].get(name)) for r in results) + " |"
        for g in report["growth"]:
            s = g["steps"].get(name)
            row += f" {s['ratio']:.2f} | {s['fixed']:.1f} | {s['per_100k_rows']:.1f} |" if s else " | | |"
        lines.append(row)
    total = "| **wall** | " + " | ".join(f"{r['wall_seconds']:.1f}" for r in results) + " |"
    for g in report["growth"]:
        total += f" {g['wall_ratio']:.2f} | {g['wall_fit']['fixed']:.1f} | {g['wall_fit']['per_100k_rows']:.1f} |"
    lines.append(total)
    lines += [
        "",
        "The search (optimize) and the embedding store:",
        "",
        "| rows | search sample | rows the trials saw / train + val rows | trials complete + pruned | folds fitted "
        "| trials s | first trial s | median other trial s | optimize s outside the trials | store vectors "
        "| rows (texts) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.get("study") or {}
        a = s.get("user_attrs", {})
        outside = r["steps"].get("optimize", 0.0) - (s.get("trials_seconds") or 0.0)
        lines.append(
            f"| {r['rows']:,} | {r['label']} | {a.get('search_rows', '?')} / {a.get('dev_rows', '?')} | "
            f"{s.get('n_complete', '?')} + {s.get('n_pruned', '?')} | {s.get('folds_run', '?')} | "
            f"{_f(s.get('trials_seconds'))} | {_f(s.get('first_trial_seconds'))} | "
            f"{_f(s.get('median_other_trial_seconds'))} | {outside:.1f} | {r['embedding_store']['vectors']:,}"
            f"{_encoders(r['embedding_store'])} | {r['rows']:,} |"
        )
    lines += [
        "",
        "The first trial is the base arguments (TF-IDF and the MiniLM embedding): it encodes every text the "
        "trials see (once: later trials reuse the vectors). Store vectors: the texts encoded in the whole run "
        "(the store keeps each once; optimize writes the search rows' vectors, train the rest, evaluate reads "
        "them); about the number of rows when the store is used. With a search sample, optimize no longer grows "
        "with the rows: its two-point fit above is not a line. Tree RSS sums every process of the run "
        "(shared pages once per process), PSS shares them out; the largest process is its own peak "
        "(benchmarks/common.py).",
        "",
        "| goal (issue 13) | run | this run | verdict |",
        "|---|---|---|---|",
    ]
    for g in report["goals"]:
        lines.append(f"| {g['goal']} | {g.get('run', '')} | {g.get('figure', '')} | {g['verdict']} |")
    lines += [
        "",
        "One run per size on a shared 2-core machine: compare the ratios of this run, and read the load "
        "beside every figure.",
        "",
        f"Reproduce: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


def build_report(command: str, opts, sizes, samples, load_start: float, began: float, results: list) -> dict:
    """The report of the runs measured so far."""
    growths = []
    for label in dict.fromkeys(r["label"] for r in results):
        ok = [r for r in results if r["label"] == label and r["status"] == "succeeded"]
        growths += [growth(a, b) for a, b in zip(ok, ok[1:], strict=False)]
    return {
        "benchmark": "mlops",
        "command": command,
        "sizes": sizes,
        "sample_settings": samples,
        "num_trials": opts.num_trials,
        "run_seed": opts.run_seed,
        "format": opts.format,
        "seed": opts.seed,
        "machine": machine(load_start),
        "seconds": time.perf_counter() - began,
        "results": results,
        "growth": growths,
        "goals": goals(results),
    }


def parse_samples(text: str) -> list[str | None]:
    """``--sample-rows``: comma-separated settings; "default" (unset), "off" (0: the whole data) or a count."""
    out: list[str | None] = []
    for item in (s.strip().lower() for s in text.split(",") if s.strip()):
        if item == "default":
            out.append(None)
        elif item in ("off", "0", "none"):
            out.append("0")
        elif item.replace("_", "").isdigit():
            out.append(str(int(item.replace("_", ""))))
        else:
            raise ValueError(item)
    return out or [None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated row counts")
    parser.add_argument("--num-trials", type=int, default=20, help="Optuna trials (default 20, the pipeline's)")
    parser.add_argument(
        "--sample-rows",
        default="default",
        help="comma-separated settings of the search sample, each run in turn at every size: default (the "
        f"library's; {SAMPLE_ENV} unset), off (the whole train + val data) or a row count",
    )
    parser.add_argument("--run-seed", type=int, default=42, help="the pipeline's --seed")
    parser.add_argument("--format", default="csv", choices=synth.FORMATS, help="the synthetic sources' format")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for mlops.*")
    parser.add_argument("--keep", type=Path, help="make the data and state folders here and keep them")
    opts = parser.parse_args(argv)
    try:
        sizes = sorted({int(s.replace("_", "")) for s in opts.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {opts.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: at least one positive row count")
    if opts.num_trials < 1:
        parser.error("--num-trials: at least 1")
    try:
        samples = parse_samples(opts.sample_rows)
    except ValueError as exc:
        parser.error(f"--sample-rows: expected default, off or row counts, got {exc}")

    load_start = os.getloadavg()[0]
    began = time.perf_counter()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="tagifai-bench-mlops-"))
    work.mkdir(parents=True, exist_ok=True)
    command = benchmark_command("mlops.py", argv)
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    paths: tuple[Path, Path] | None = None
    try:
        for rows in sizes:
            for sample in samples:
                result = run_one(rows, sample, work, opts)
                results.append(result)
                if not opts.keep:  # room for the next run
                    shutil.rmtree(work / f"home-{rows}-{result['label']}", ignore_errors=True)
                report = build_report(command, opts, sizes, samples, load_start, began, results)
                paths = write_results("mlops", report, markdown(report), opts.out)  # after each run: a long run
            if not opts.keep:
                shutil.rmtree(work / f"data-{rows}", ignore_errors=True)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(report))
    if paths:
        print(f"wrote {paths[1]} and {paths[0]}")
    return 0 if all(r["status"] == "succeeded" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
