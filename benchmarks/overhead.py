"""Orchestration overhead: the same steps as plain in-process library calls versus the kfp.local run (issue 13).

For each pipeline of ``--pipelines`` (default ``dataops,continual``) and each of ``--repeats`` rounds, on the
shared data (the vendored 764 projects, or ``--rows N`` synthetic ones from benchmarks/synth.py), with a fresh
state folder each time and the environment's TAGIFAI_* settings removed:

- **kfp.local**: ``tagifai run PIPELINE --projects P --tags T --home STATE --quiet [--num-trials N]``: every step
  its own process (kfp.local's subprocess runner), artifacts through the local artifact store, the run
  summary and its HTML report;
- **plain**: ``python benchmarks/overhead.py --plain PIPELINE ...``: one process that makes the same library
  calls as the components' bodies (components/*.py), in the same order, with the same arguments and the same
  files written (the validation pages, the dbt report, the Parquet datasets, the saved model), and nothing
  else. Each library is imported when its first step needs it, as a script would.

Both are timed as whole processes (wall seconds, peak memory of the process tree: benchmarks/common.py).
Reported: the ratio kfp.local / plain of each round (goal: at most 1.5), and per step the seconds under both,
whose difference is what running the step as a KFP task costs it (a new interpreter, its imports, the
executor's input and output files). The rounds alternate which runs first, so a change of load hits both.

    make benchmark-overhead                                  # dataops twice, continual (1 trial) once
    python benchmarks/overhead.py --pipelines dataops --repeats 3
    python benchmarks/overhead.py --pipelines continual --num-trials 1 --repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
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

from benchmarks.common import (  # noqa: E402
    DATA_DIR,
    anonymised,
    benchmark_command,
    gib,
    machine,
    machine_line,
    run_measured,
    tagifai_command,
    tagifai_env,
)

GOAL_RATIO = 1.5
PIPELINES = ("dataops", "continual")
SEED = 42


# --------------------------------------------------------------------------- the plain run (a child process)


class Steps:
    """Seconds of each named step of the plain run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        print(f"  plain {name:<28} {self.seconds[name]:7.2f} s", flush=True)


def plain_dataops(projects: str, tags: str, home: Path, steps: Steps) -> None:
    """The dataops pipeline's library calls (components/sync.py, validate.py, transform.py), in its order."""
    from tagifai.config import get_settings

    s = get_settings(home=str(home))
    art = home / "plain-artifacts"
    art.mkdir(parents=True, exist_ok=True)
    with steps("sync-projects"):
        from tagifai.sync import sync

        sync(projects, "projects", s.warehouse, s.home, snapshot=art / "projects.parquet")
    with steps("sync-tags"):
        sync(tags, "tags", s.warehouse, s.home, snapshot=art / "tags.parquet")
    for name, table, suite in (
        ("validate-projects", "raw.projects", "projects"),
        ("validate-tags", "raw.tags", "tags"),
    ):
        with steps(name):
            validate(s.warehouse, table, suite, art / f"{name}.html")
    with steps("transform"):
        from tagifai.extract import extract_table
        from tagifai.transform import run_dbt

        result = run_dbt("build", warehouse_uri=s.warehouse, target=None, state_dir=s.home / "dbt")
        (art / "transform.md").write_text(result.to_markdown(), encoding="utf-8")
        result.counts()
        result.raise_for_failures()
        extract_table(s.warehouse, "labeled_projects", art / "labeled_projects.parquet")
    with steps("validate-labeled-projects"):
        validate(s.warehouse, "main.labeled_projects", "labeled_projects", art / "validate-labeled.html")


def validate(warehouse: str, table: str, suite: str, html: Path) -> None:
    """components/validate.py: validate_table."""
    from tagifai.validation import validate_table

    result = validate_table(warehouse, table, suite)
    html.write_text(result.html, encoding="utf-8")
    result.to_metrics()
    result.raise_for_failures()


def plain_mlops(home: Path, num_trials: int, steps: Steps) -> None:
    """The drift step and the mlops pipeline's library calls (components/drift.py, extract.py, validate.py,
    optimize.py, train.py, evaluate.py), in the continual pipeline's order."""
    from tagifai.config import get_settings

    s = get_settings(home=str(home))
    art = home / "plain-artifacts"
    with steps("drift"):
        from tagifai.drift import DriftThresholds, drift_against_champion

        drifted = drift_against_champion(
            s.warehouse, s.model_name, s.mlflow_tracking_uri, DriftThresholds.from_settings(s), html_path=art / "d.html"
        )
        (art / "drift.json").write_text(json.dumps(drifted.to_dict(), default=str), encoding="utf-8")
    with steps("extract"):
        from tagifai.compose import CompositionPolicy
        from tagifai.extract import extract_table

        dataset = art / "dataset.parquet"
        meta = extract_table(s.warehouse, "labeled_projects", dataset, CompositionPolicy.from_settings(s), SEED)
    with steps("validate-dataset"):
        from tagifai.validation import validate_parquet

        result = validate_parquet(dataset, "labeled_projects", data_name="labeled_projects")
        (art / "validate-dataset.html").write_text(result.html, encoding="utf-8")
        result.raise_for_failures()
    with steps("optimize"):
        import pandas as pd

        from tagifai.workflows import train_and_register, tune, write_json

        args, _, _ = tune(
            pd.read_parquet(dataset),
            num_trials,
            s.optuna_storage,
            "tagifai",
            SEED,
            tracking_uri=s.mlflow_tracking_uri,
            experiment_name=s.experiment_name,
            artifact_root=s.mlflow_artifact_root,
        )
        write_json(art / "best_args.json", args)
    with steps("train"):
        import mlflow.sklearn

        out = train_and_register(
            pd.read_parquet(dataset),
            json.loads((art / "best_args.json").read_text()),
            SEED,
            s.model_name,
            s.mlflow_tracking_uri,
            s.experiment_name,
            s.mlflow_artifact_root,
            dataset_hash=meta.get("content_hash"),
            dataset_meta=meta,
        )
        mlflow.sklearn.save_model(out.model, str(art / "model"), serialization_format="cloudpickle")
        out.test_data.to_parquet(art / "test_data.parquet", index=False)
    with steps("evaluate"):
        from tagifai.workflows import evaluate_and_promote

        gate = evaluate_and_promote(
            out.model_uri,
            pd.read_parquet(art / "test_data.parquet"),
            s.model_name,
            s.mlflow_tracking_uri,
            approval="auto",
            margin=s.promotion_margin,
        )
        (art / "evaluate.md").write_text(gate.report, encoding="utf-8")


def plain(pipeline: str, projects: str, tags: str, home: Path, num_trials: int, out: Path) -> None:
    """Run ``pipeline``'s steps as plain calls in this process; their seconds to ``out`` (JSON)."""
    steps = Steps()
    start = time.perf_counter()
    plain_dataops(projects, tags, home, steps)
    if pipeline == "continual":
        plain_mlops(home, num_trials, steps)
    out.write_text(json.dumps({"steps": steps.seconds, "seconds": time.perf_counter() - start}, indent=2))


# --------------------------------------------------------------------------- the comparison


def run_kfp(pipeline: str, projects: str, tags: str, home: Path, num_trials: int) -> dict[str, Any]:
    argv = [*tagifai_command(), "run", pipeline, "--projects", projects, "--tags", tags, "--home", str(home), "--quiet"]
    if pipeline == "continual":
        argv += ["--num-trials", str(num_trials)]
    measured = run_measured(argv, env=tagifai_env())
    last_path = home / "last_run.json"
    last = json.loads(last_path.read_text()) if last_path.exists() else {}
    return _result("kfp.local", measured, {s["name"]: s["seconds"] for s in last.get("steps", [])}, home, last)


def run_plain(pipeline: str, projects: str, tags: str, home: Path, num_trials: int) -> dict[str, Any]:
    out = home / "plain.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--plain", pipeline, "--projects", projects]
    argv += ["--tags", tags, "--home", str(home), "--num-trials", str(num_trials), "--plain-out", str(out)]
    home.mkdir(parents=True, exist_ok=True)
    measured = run_measured(argv, env=tagifai_env())
    inner = json.loads(out.read_text()) if out.exists() else {}
    status = "succeeded" if measured.returncode == 0 and inner else "failed"
    return _result("plain", measured, inner.get("steps", {}), home, {"status": status})


def _result(how: str, measured, steps: dict[str, float], home: Path, last: dict) -> dict[str, Any]:
    status = last.get("status") or ("failed" if measured.returncode else "unknown")
    d = measured.to_dict()
    d["command"] = anonymised(measured.command, STATE=home)
    print(
        f"  {how:<9} {status} in {measured.seconds:.1f} s (steps {sum(steps.values()):.1f} s), "
        f"tree peak RSS {gib(measured.peak_tree_rss)}, load {measured.load_start:.2f} -> {measured.load_end:.2f}",
        flush=True,
    )
    if measured.returncode:
        print(measured.stderr[-3000:], file=sys.stderr)
    return {"how": how, "status": status, "wall_seconds": measured.seconds, "steps": steps, "measured": d}


def compare(pipeline: str, projects: str, tags: str, work: Path, repeats: int, num_trials: int) -> dict[str, Any]:
    rounds = []
    for i in range(repeats):
        order = ("plain", "kfp") if i % 2 == 0 else ("kfp", "plain")
        done = {}
        for how in order:
            home = work / f"{pipeline}-{i}-{how}"
            print(f"{pipeline} round {i + 1}/{repeats}: {how}", flush=True)
            runner = run_plain if how == "plain" else run_kfp
            done[how] = runner(pipeline, projects, tags, home, num_trials)
            shutil.rmtree(home, ignore_errors=True)
        ok = done["plain"]["status"] == done["kfp"]["status"] == "succeeded"
        rounds.append(
            {
                "order": list(order),
                "plain": done["plain"],
                "kfp": done["kfp"],
                "ratio": done["kfp"]["wall_seconds"] / done["plain"]["wall_seconds"] if ok else None,
            }
        )
    ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
    steps = {}
    for name in rounds[0]["kfp"]["steps"]:
        kfp = [r["kfp"]["steps"][name] for r in rounds if name in r["kfp"]["steps"]]
        pln = [r["plain"]["steps"][name] for r in rounds if name in r["plain"]["steps"]]
        if kfp and pln:
            steps[name] = {"kfp": statistics.median(kfp), "plain": statistics.median(pln)}
            steps[name]["extra"] = steps[name]["kfp"] - steps[name]["plain"]
    return {
        "pipeline": pipeline,
        "rounds": rounds,
        "ratios": ratios,
        "median_ratio": statistics.median(ratios) if ratios else None,
        "steps": steps,
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Orchestration overhead",
        "",
        f"The same steps as plain in-process library calls (one process) versus `tagifai run` under kfp.local's "
        f"subprocess runner (a process per step), on {report['data']}, a fresh state folder each run; "
        f"continual with {report['num_trials']} Optuna trial(s). One run of `{report['command']}` on "
        f"{machine_line(m)}.",
        "",
        "| pipeline | round | plain s | kfp.local s | kfp.local / plain | plain peak RSS | kfp.local peak RSS "
        "| load start → end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in report["pipelines"]:
        for i, r in enumerate(p["rounds"]):
            ratio = f"**{r['ratio']:.2f}**" if r["ratio"] is not None else "failed"
            lines.append(
                f"| {p['pipeline']} | {i + 1} ({' then '.join(r['order'])}) | {r['plain']['wall_seconds']:.1f} | "
                f"{r['kfp']['wall_seconds']:.1f} | {ratio} | {gib(r['plain']['measured']['peak_tree_rss'])} | "
                f"{gib(r['kfp']['measured']['peak_tree_rss'])} | {r['plain']['measured']['load_start']:.2f} → "
                f"{r['kfp']['measured']['load_end']:.2f} |"
            )
    for p in report["pipelines"]:
        lines += [
            "",
            f"## {p['pipeline']}: per step (median of the rounds)",
            "",
            "| step | plain s | kfp.local s | extra as a task s |",
            "|---|---|---|---|",
        ]
        for name, s in p["steps"].items():
            lines.append(f"| {name} | {s['plain']:.1f} | {s['kfp']:.1f} | {s['extra']:+.1f} |")
        total_plain = sum(s["plain"] for s in p["steps"].values())
        total_kfp = sum(s["kfp"] for s in p["steps"].values())
        lines.append(f"| **sum** | {total_plain:.1f} | {total_kfp:.1f} | {total_kfp - total_plain:+.1f} |")
    lines += [
        "",
        "Commands: "
        + "; ".join(
            f"`{r['plain']['measured']['command']}` and `{r['kfp']['measured']['command']}`"
            for p in report["pipelines"]
            for r in p["rounds"][:1]
        ),
        "",
        "A plain step's seconds include the imports it is the first to need (Great Expectations in "
        "validate-projects, dbt in transform, MLflow and scikit-learn in optimize); a kfp.local task pays its "
        "imports every time. The plain run writes the same files but no KFP executor output and no run report.",
        "",
        "| goal (issue 13) | this run | verdict |",
        "|---|---|---|",
    ]
    for p in report["pipelines"]:
        ratio = p["median_ratio"]
        verdict = "not measured" if ratio is None else ("under in this run" if ratio <= GOAL_RATIO else "over")
        figure = "" if ratio is None else f"{ratio:.2f} (rounds: {', '.join(f'{x:.2f}' for x in p['ratios'])})"
        goal = f"orchestration overhead, {p['pipeline']}: kfp.local / plain ≤ {GOAL_RATIO}"
        lines.append(f"| {goal} | {figure} | {verdict} |")
    lines += ["", f"Reproduce: `{report['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated: dataops, continual")
    parser.add_argument("--repeats", default="dataops=2,continual=1", help="rounds: N, or PIPELINE=N,...")
    parser.add_argument("--num-trials", type=int, default=1, help="Optuna trials of continual (default 1)")
    parser.add_argument("--rows", type=int, default=0, help="synthetic rows instead of the vendored data")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for overhead.*")
    parser.add_argument("--plain", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--projects", help=argparse.SUPPRESS)
    parser.add_argument("--tags", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plain-out", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.plain:  # the child process of a plain run
        plain(opts.plain, opts.projects, opts.tags, opts.home.resolve(), opts.num_trials, opts.plain_out)
        return 0

    from benchmarks import synth
    from benchmarks.common import write_results

    pipelines = [p.strip() for p in opts.pipelines.split(",") if p.strip()]
    if not pipelines or set(pipelines) - set(PIPELINES):
        parser.error(f"--pipelines: of {', '.join(PIPELINES)}")
    if "=" in opts.repeats:
        repeats = {k.strip(): int(v) for k, v in (x.split("=") for x in opts.repeats.split(","))}
    else:
        repeats = dict.fromkeys(PIPELINES, int(opts.repeats))

    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="tagifai-bench-overhead-"))
    try:
        if opts.rows:
            written = synth.write(opts.rows, work / "data")
            projects, tags, data = written.projects, written.tags, f"{opts.rows:,} synthetic projects"
        else:
            projects, tags = str(DATA_DIR / "projects.csv"), str(DATA_DIR / "tags.csv")
            data = "the vendored Made With ML data (764 projects)"
        results = [
            compare(p, projects, tags, work, repeats.get(p, 1), opts.num_trials) for p in pipelines if repeats.get(p, 1)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for p in results:
        for r in p["rounds"]:
            for how in ("plain", "kfp"):
                r[how]["measured"]["command"] = anonymised(r[how]["measured"]["command"], DATA=work / "data")
    report = {
        "benchmark": "overhead",
        "command": benchmark_command("overhead.py", argv),
        "data": data,
        "num_trials": opts.num_trials,
        "machine": machine(load_start),
        "pipelines": results,
    }
    text = markdown(report)
    paths = write_results("overhead", report, text, opts.out)
    print(text)
    print(f"wrote {paths[1]} and {paths[0]}")
    return 0 if all(p["median_ratio"] is not None for p in results) else 1


if __name__ == "__main__":
    sys.exit(main())
