"""benchmarks/startup.py: which modules each component's body imports, and the results page (the timed runs spawn
a process per step: `python benchmarks/startup.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from _bench import machine as bench_machine

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tagifai_startup_benchmark", ROOT / "benchmarks" / "startup.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_the_body_imports_are_read_from_the_components(tmp_path):
    (tmp_path / "one.py").write_text(
        "from kfp import dsl\nimport os\n\n"
        "@dsl.component(base_image='x')\ndef step_a(x: int):\n    import json\n    from tagifai.config import get\n"
        "    import mlflow.sklearn, json\n    return 1\n\n"
        "def helper():\n    import numpy\n\n"
        "@dsl.component\ndef step_b():\n    from . import sibling\n    pass\n"
    )
    assert bench.step_imports(tmp_path) == {"step_a": ["json", "tagifai.config", "mlflow.sklearn"], "step_b": []}


def test_every_real_component_is_found():
    steps = bench.step_imports()
    assert {"sync", "validate_table", "transform", "extract", "optimize", "train", "evaluate", "notify"} <= set(steps)
    assert "tagifai.workflows" in steps["train"] and all(not m.startswith("kfp") for m in steps["train"])


def test_the_page_sorts_by_cold_start():
    row = {"kfp_executor": 0.5, "step_imports": 0.1, "exit": 0.05, "modules": ["tagifai.config"]}
    report = {
        "machine": bench_machine(cpu_model="c", commit="x", load_start=0.5, load_end=0.6),
        "runs": 3,
        "bare_python": 0.03,
        "command": "python benchmarks/startup.py",
        "steps": [{"step": "fast", **row, "cold_start": 0.7}, {"step": "slow", **row, "cold_start": 2.5}],
    }
    page = bench.render(report)
    assert page.index("| slow |") < page.index("| fast |")
    assert "| slow | 0.50 | 0.10 | 0.05 | **2.50** | `tagifai.config` |" in page and "3.2 s" in page
