"""The package's exit handler (tagifai/__init__.py): the interpreter's final collection is skipped, except in a
process that loaded DuckDB, whose bindings report objects left uncollected at exit."""

import subprocess
import sys

import pytest

# A handler registered before tagifai is imported runs after tagifai's (atexit runs them last in, first out):
# it prints how many objects are frozen once tagifai's handler has run.
_PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count(), flush=True))
import tagifai
{extra}
"""


def _run(extra: str) -> subprocess.CompletedProcess:
    code = _PROBE.format(extra=extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_a_process_without_duckdb_skips_the_final_collection():
    done = _run("import json; json.dumps({'a': [1, 2]})")
    assert done.returncode == 0, done.stderr
    frozen = int(done.stdout.split("frozen", 1)[1].split()[0])
    assert frozen > 1000, done.stdout


def test_a_process_with_duckdb_keeps_it_and_exits_without_leak_reports():
    done = _run("import duckdb; duckdb.connect().execute('select 1').fetchall()")
    assert done.returncode == 0, done.stderr
    assert "frozen 0" in done.stdout
    assert "leaked" not in done.stderr and "nanobind" not in done.stderr


@pytest.mark.parametrize("code", ["raise SystemExit(3)", "raise ValueError('boom')"])
def test_the_exit_status_is_kept(code):
    done = _run(code)
    assert done.returncode == (3 if "SystemExit" in code else 1)
    assert "frozen" in done.stdout
