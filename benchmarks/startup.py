"""Each step's cold start: what a task pays before its work begins (issue 13: "each step's cold start, its import
cost").

Under kfp.local (and in a pod) every task is a new Python process (with ``_KFP_RUNTIME=true``, as KFP's task command
sets it) that imports KFP's executor, then the modules the
component's body imports (``components/*.py``: the imports inside each ``@dsl.component`` function, read with
``ast``), then works, then exits. Per step, in a new process each, ``--runs`` times:

- **python**: a bare interpreter (``python -c pass``), start to exit;
- **kfp executor**: importing ``kfp.dsl.executor_main``;
- **step imports**: importing the body's modules after it (only what the executor did not load);
- **exit**: from the last import to the end of the process (the interpreter's finalisation);
- **cold start**: the whole process (start, both imports, exit): a task's cost beside its work.

The median of the runs is shown. Only the body's own imports are timed: what the library imports inside its
functions when the work starts (scikit-learn, MLflow, dbt, ONNX Runtime) counts in the step's work, measured by
the other benchmarks (``benchmarks/overhead.py`` sets each task against the same call in a warm process).

    python benchmarks/startup.py              # 3 runs a step
    python benchmarks/startup.py --runs 5

Writes benchmarks/results/startup.{json,md}.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, benchmark_command, machine, machine_line, write_results  # noqa: E402

COMPONENTS = ROOT / "components"

CHILD = """
import json, sys, time
t0 = time.time()
import kfp.dsl.executor_main
t1 = time.time()
for name in sys.argv[1:]:
    __import__(name)
t2 = time.time()
sys.stdout.write(json.dumps([t0, t1, t2]))
sys.stdout.flush()
"""


def step_imports(folder: Path = COMPONENTS) -> dict[str, list[str]]:
    """Component name -> the modules its body imports (``import a.b`` -> ``a.b``; ``from a.b import c`` -> ``a.b``),
    in order, without repeats, for every function decorated with ``dsl.component`` in ``folder``."""
    steps: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef) or not any(_is_component(d) for d in node.decorator_list):
                continue
            modules: list[str] = []
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    modules += [alias.name for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                    modules.append(inner.module)
            steps[node.name] = list(dict.fromkeys(modules))
    return steps


def _is_component(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "component"


def measure(modules: list[str]) -> dict[str, float]:
    """One new process: the seconds of each phase (see the module docstring)."""
    start = time.time()
    # As a task runs it: KFP's task command sets _KFP_RUNTIME=true, so that kfp/__init__.py does not import KFP's
    # client and the Kubernetes client (about 1 s more when it does).
    env = {**os.environ, "_KFP_RUNTIME": "true"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *modules], capture_output=True, text=True, check=False, cwd=ROOT, env=env
    )
    end = time.time()
    if done.returncode != 0:
        raise SystemExit(f"importing {modules} failed:\n{done.stderr[-2000:]}")
    t0, t1, t2 = json.loads(done.stdout)
    return {
        "to_python": t0 - start,
        "kfp_executor": t1 - t0,
        "step_imports": t2 - t1,
        "exit": end - t2,
        "cold_start": end - start,
    }


def bare_python(runs: int) -> float:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def render(report: dict[str, Any]) -> str:
    lines = [
        "# Each step's cold start",
        "",
        f"A new process per step and run ({report['runs']} runs, medians), {machine_line(report['machine'])}. "
        f"A bare `python -c pass`: {report['bare_python']:.2f} s.",
        "",
        "| step | kfp executor s | step imports s | exit s | cold start s | the body's imports |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted(report["steps"], key=lambda r: -r["cold_start"]):
        lines.append(
            f"| {row['step']} | {row['kfp_executor']:.2f} | {row['step_imports']:.2f} | {row['exit']:.2f} | "
            f"**{row['cold_start']:.2f}** | {', '.join(f'`{m}`' for m in row['modules'])} |"
        )
    total = sum(r["cold_start"] for r in report["steps"])
    lines += [
        "",
        f"Sum over the {len(report['steps'])} components: {total:.1f} s (a `continual` run has 16 tasks, some of one "
        "component several times). The step imports are timed after KFP's executor, so what both load counts once; "
        "what the library imports inside its functions (scikit-learn, MLflow, dbt, ONNX Runtime) is part of the "
        "work, not of this table.",
        "",
        f"Reproduce: `{report['command']}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="folder for startup.md and startup.json")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    steps = step_imports()
    rows = []
    for _ in range(args.runs):  # rounds over the steps, so a load change hits every step alike
        for name, modules in steps.items():
            rows.append({"step": name, "modules": modules, **measure(modules)})
    medians = []
    for name, modules in steps.items():
        mine = [r for r in rows if r["step"] == name]
        keys = ("to_python", "kfp_executor", "step_imports", "exit", "cold_start")
        medians.append({"step": name, "modules": modules, **{k: statistics.median(r[k] for r in mine) for k in keys}})
    report = {
        "machine": machine(load),
        "command": benchmark_command("startup.py", argv),
        "runs": args.runs,
        "bare_python": bare_python(args.runs),
        "steps": medians,
        "all_runs": rows,
    }
    paths = write_results("startup", report, render(report), **({"out": args.out} if args.out else {}))
    print(render(report))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
