"""benchmarks/dataops.py --library: the library calls of sync and transform, each in a fresh process, on a tiny
synthetic set (the measured runs take minutes: `python benchmarks/dataops.py --sizes 1000000 --library`)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("tagifai_dataops_benchmark", ROOT / "benchmarks" / "dataops.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.timeout(300)


def test_library_mode_times_each_step_and_writes_its_page(tmp_path, capsys):
    out = tmp_path / "results"
    assert bench.main(["--sizes", "300", "--library", "--out", str(out), "--keep", str(tmp_path / "work")]) == 0
    report = json.loads((out / "dataops-library.json").read_text())
    (result,) = report["results"]
    assert result["status"] == "succeeded" and list(result["steps"]) == ["sync-projects", "sync-tags", "transform"]
    steps = result["steps"]
    assert steps["sync-projects"]["detail"]["rows_after"] == steps["sync-tags"]["detail"]["rows_after"] == 300
    assert steps["sync-projects"]["detail"]["fingerprint"].startswith("sha256:")  # checked as the pipeline does
    assert steps["transform"]["detail"]["rows"] == 300
    assert all(s["seconds"] > 0 and s["cpu_seconds"] > 0 and s["max_rss"] > 0 for s in steps.values())
    page = (out / "dataops-library.md").read_text()
    assert "| 300 | sync-projects |" in page and "**all three** (succeeded)" in page
    assert not (out / "dataops.json").exists()  # the pipeline benchmark's results are left alone
