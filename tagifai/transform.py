"""Transform: build the curated tables with dbt (project ``dbt_transforms/``).

``run_dbt`` calls dbt in-process through its programmatic runner and turns the outcome into a
:class:`DbtReport` (plain data, a Markdown report, counts); :meth:`DbtReport.raise_for_failures`
raises :class:`TransformError` when a model or a test failed.

dbt's own state (``target/`` with the partial-parse manifest, ``logs/``) lives under a state folder,
by default ``<settings.home>/dbt/<target>``, never in the project folder: the repository stays clean
and the next run only re-parses what changed (a full parse takes several seconds).

Guarding the curated table: ``dbt build`` runs the source and staging tests before it rebuilds
``labeled_projects`` and skips it when one of them fails, and the table's enforced contract
(not null, primary key, accepted tags) makes DuckDB reject bad rows before the new table replaces the
current one. On BigQuery only ``not null`` is enforced, so the staging tests are the guard there.

dbt is imported inside the functions: importing it takes about 4 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagifai.seeds import cache_folder, copy_whole
from tagifai.warehouse import Warehouse, parse_warehouse

#: Node statuses of dbt results, grouped: run results say success/error/skipped, test results
#: pass/fail/warn/error/skipped, source freshness pass/warn/error/runtime error.
_PASSED = {"success", "pass"}
_FAILED = {"fail"}
_ERRORED = {"error", "runtime error"}
_SKIPPED = {"skipped"}
_WARNED = {"warn"}
_BAD = _FAILED | _ERRORED

#: dbt's saved parse in its target folder (dbt.parser.manifest.PARTIAL_PARSE_FILE_NAME).
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
#: Commands that need the warehouse's tables.
_WAREHOUSE_COMMANDS = {"build", "run", "test", "seed", "snapshot", "compile", "show", "source", "retry"}


class TransformError(RuntimeError):
    """dbt could not run, or a model or a test failed."""


@dataclass
class DbtReport:
    """The outcome of one dbt invocation.

    ``results`` holds one dict a node: ``unique_id``, ``resource_type`` (model, test, ...),
    ``name``, ``status`` (success, pass, fail, error, warn, skipped), ``message``, ``failures``
    (failing rows of a test, else None) and ``execution_time`` (seconds). ``elapsed`` is the wall
    time of the whole invocation, parsing included. ``error`` holds dbt's message when dbt stopped
    before running any node (a compile error, a missing env var, a bad project).
    """

    success: bool
    results: list[dict] = field(default_factory=list)
    elapsed: float = 0.0
    command: str = "build"
    error: str | None = None

    def failed(self) -> list[dict]:
        """Nodes that failed or errored, in execution order."""
        return [r for r in self.results if r["status"] in _BAD]

    def counts(self) -> dict[str, int]:
        """Flat counts, ready to log as metrics: ``models_passed``, ``models_failed``, ``models_errored``,
        ``models_skipped``, ``tests_passed``, ``tests_failed``, ``tests_errored``, ``tests_skipped``,
        ``tests_warned``. A model never "fails" in dbt's sense (only tests do); it errors."""
        states = ("passed", "failed", "errored", "skipped")
        out = {f"{kind}_{state}": 0 for kind in ("models", "tests") for state in states}
        out["tests_warned"] = 0
        for r in self.results:
            kind = {"model": "models", "test": "tests", "unit_test": "tests"}.get(r["resource_type"])
            if kind is None:
                continue
            status = r["status"]
            groups = (("passed", _PASSED), ("failed", _FAILED), ("errored", _ERRORED), ("skipped", _SKIPPED))
            for state, group in groups:
                if status in group:
                    out[f"{kind}_{state}"] += 1
            if kind == "tests" and status in _WARNED:
                out["tests_warned"] += 1
        return out

    def summary(self) -> str:
        """One line: the outcome and the counts."""
        c = self.counts()
        verdict = "succeeded" if self.success else "FAILED"
        models = sum(v for k, v in c.items() if k.startswith("models_"))
        tests = sum(v for k, v in c.items() if k.startswith("tests_"))
        parts = []
        if models:
            parts.append(
                f"{models} model{'' if models == 1 else 's'} ({c['models_passed']} ok, "
                f"{c['models_errored']} errored, {c['models_skipped']} skipped)"
            )
        if tests:
            parts.append(
                f"{tests} test{'' if tests == 1 else 's'} ({c['tests_passed']} passed, {c['tests_failed']} failed, "
                f"{c['tests_errored']} errored, {c['tests_warned']} warned, {c['tests_skipped']} skipped)"
            )
        counted = sum(1 for r in self.results if r["resource_type"] in ("model", "test", "unit_test"))
        others = len(self.results) - counted
        if others:
            parts.append(f"{others} other nodes")
        detail = ", ".join(parts) if parts else "no nodes ran"
        return f"dbt {self.command} {verdict}: {detail} in {self.elapsed:.1f} s"

    def to_markdown(self) -> str:
        """A Markdown report: a summary line, the failures with dbt's messages, then every node."""
        lines = [f"## dbt {self.command}", "", f"**{self.summary()}**", ""]
        if self.error:
            lines += ["dbt stopped before running the project:", "", "```", self.error.strip(), "```", ""]
        failed = self.failed()
        if failed:
            lines += ["### Failures", ""]
            for r in failed:
                lines.append(f"- **{r['resource_type']} `{r['name']}`** {r['status']}: {_one_line(r['message'])}")
            lines.append("")
        if self.results:
            lines += ["### Nodes", "", "| node | type | status | time (s) | message |", "|---|---|---|---:|---|"]
            ordered = failed + [r for r in self.results if r["status"] not in _BAD]
            for r in ordered:
                status = r["status"].upper() if r["status"] in _BAD else r["status"]
                message = _one_line(r["message"]) if r["status"] not in _PASSED else ""
                lines.append(
                    f"| `{r['name']}` | {r['resource_type']} | {status} | {r['execution_time']:.2f} "
                    f"| {_cell(message)} |"
                )
            lines.append("")
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise :class:`TransformError` naming every failed model or test with dbt's message."""
        if self.success:
            return
        problems = [
            f"{r['resource_type']} {r['name']} {'failed' if r['status'] in _FAILED else 'errored'}: "
            f"{_one_line(r['message'])}"
            for r in self.failed()
        ]
        if self.error:
            problems.insert(0, self.error.strip())
        if not problems:
            problems = ["dbt reported failure without naming a node (see dbt's log)"]
        raise TransformError(f"dbt {self.command} failed:\n" + "\n".join(f"- {p}" for p in problems))


def run_dbt(
    command: str = "build",
    warehouse_uri: str | None = None,
    project_dir: Path | None = None,
    target: str | None = None,
    state_dir: Path | None = None,
    select: list[str] | None = None,
    vars: dict | None = None,  # noqa: A002 - dbt's own name
) -> DbtReport:
    """Run one dbt command (``build``, ``run``, ``test``, ``compile``, ``parse``, ``source freshness``...).

    Reads: the dbt project (default ``settings.dbt_project_dir``) with its ``profiles.yml``, and the
    warehouse (default ``settings.warehouse``), which names the profile's target (default: ``local``
    for DuckDB, ``prod`` for BigQuery) and sets the variables the profile reads for the run
    (``TAGIFAI_DUCKDB_PATH``; ``TAGIFAI_BQ_PROJECT`` and ``TAGIFAI_BQ_DATASET``); the environment is
    restored afterwards.
    Writes: the models' tables and views in the warehouse; dbt's target/ and logs/ under
    ``state_dir/<target>`` (default ``settings.home / "dbt"``), which also keeps the partial-parse state; a
    state folder without one starts from the last parse of the project (:func:`parse_seed`).
    Never raises for failing models or tests, nor for dbt errors: the report says what happened
    (call :meth:`DbtReport.raise_for_failures`). Raises ``WarehouseError`` for a malformed URI.
    """
    from tagifai.config import get_settings

    words = command.split()
    if not words:
        raise ValueError("empty dbt command")
    settings = None
    if warehouse_uri is None or project_dir is None or state_dir is None:
        settings = get_settings()
    warehouse = parse_warehouse(warehouse_uri or settings.warehouse)
    target = target or warehouse.dbt_target
    project_dir = Path(project_dir or settings.dbt_project_dir).resolve()
    state_root = Path(state_dir or settings.home / "dbt").expanduser().resolve() / target
    if words[0] in _WAREHOUSE_COMMANDS and (problem := warehouse.missing()) is not None:
        return DbtReport(success=False, command=command, error=problem)
    args = [
        *words,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target",
        target,
        "--target-path",
        str(state_root / "target"),
        "--log-path",
        str(state_root / "logs"),
    ]
    if select:
        args += ["--select", *select]
    if vars:
        args += ["--vars", json.dumps(vars, sort_keys=True)]
    saved, seed = state_root / "target" / PARTIAL_PARSE_FILE, parse_seed(project_dir, target)
    if not saved.is_file():
        copy_whole(seed, saved)  # dbt checks it is this project's parse, else parses it all
    report = _invoke(args, command, warehouse, state_root / "logs")
    with contextlib.suppress(OSError):  # a kept parse only saves time
        if saved.is_file() and not (seed.is_file() and seed.stat().st_mtime >= saved.stat().st_mtime):
            copy_whole(saved, seed)
    return report


def parse_seed(project_dir: Path, target: str) -> Path:
    """Where the last parse of the dbt project ``project_dir`` for ``target`` is kept for new state folders.

    A state folder's first ``dbt`` run would parse the whole project (about 4 s: every fresh ``--home``,
    every pod of a cluster run); :func:`run_dbt` gives it the last parse made on this machine (or baked into
    the transform image, images/step.Dockerfile) instead, and dbt's own checks decide what it may reuse:
    the dbt version, the profile's values (a DuckDB profile names only the file, :meth:`Warehouse.dbt_workdir`),
    the variables, ``dbt_project.yml`` and each file's checksum; anything else changed is parsed again.
    ``<cache>/dbt-parse/`` (:func:`tagifai.seeds.cache_folder`), one file per project folder and target.
    """
    key = hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:12]
    return cache_folder() / "dbt-parse" / f"{target}-{key}.msgpack"


def keep_parse(warehouse_uri: str | None = None, project_dir: Path | None = None, target: str | None = None) -> Path:
    """Parse the dbt project for the state folders to come and keep it at :func:`parse_seed`; its path.

    The transform image runs this when it is built (images/step.Dockerfile), so a pod's first ``dbt build``
    does not parse the whole project. Needs no warehouse: ``dbt parse`` opens none (the profile's values,
    the file's name included, come from ``warehouse_uri``, default ``settings.warehouse``). Raises
    :class:`TransformError` when dbt cannot parse the project.
    """
    import tempfile

    from tagifai.config import get_settings

    settings = get_settings() if warehouse_uri is None or project_dir is None else None
    warehouse = parse_warehouse(warehouse_uri or settings.warehouse)
    project_dir = Path(project_dir or settings.dbt_project_dir)
    target = target or warehouse.dbt_target
    with tempfile.TemporaryDirectory() as state:
        run_dbt("parse", warehouse.uri, project_dir, target, Path(state)).raise_for_failures()
    seed = parse_seed(project_dir, target)
    if not seed.is_file():
        raise TransformError(f"dbt parsed {project_dir} but its parse could not be kept at {seed}")
    return seed


def generate_docs(
    warehouse_uri: str | None = None,
    project_dir: Path | None = None,
    target: str | None = None,
    state_dir: Path | None = None,
    output: Path | None = None,
) -> Path:
    """dbt's documentation site of the project as one self-contained page; its path.

    Runs ``dbt docs generate --static`` with :func:`run_dbt` (same profile, target, environment and state
    folder), which reads the warehouse's catalog (columns and types of the built tables) and writes
    ``target/static_index.html`` (the manifest and catalog inlined); copies it to ``output`` (default
    ``settings.home / "dbt-docs" / "index.html"``). Raises :class:`TransformError` when the warehouse does
    not exist or dbt fails.
    """
    from tagifai.config import get_settings

    settings = get_settings() if None in (warehouse_uri, state_dir, output) else None
    warehouse = parse_warehouse(warehouse_uri or settings.warehouse)
    if (problem := warehouse.missing()) is not None:
        raise TransformError(f"dbt docs need the built warehouse: {problem}")
    target = target or warehouse.dbt_target
    state_dir = Path(state_dir or settings.home / "dbt")
    report = run_dbt("docs generate --static", warehouse.uri, project_dir, target, state_dir)
    report.raise_for_failures()
    page = state_dir.expanduser().resolve() / target / "target" / "static_index.html"
    if not page.is_file():
        raise TransformError(f"dbt docs generate --static wrote no {page}")
    output = Path(output or settings.home / "dbt-docs" / "index.html")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.copyfile(page, tmp)
    os.replace(tmp, output)
    return output


def _invoke(args: list[str], command: str, warehouse: Warehouse, log_dir: Path) -> DbtReport:
    """Run dbt's programmatic runner with the warehouse's profile variables; its outcome as a report."""
    started = time.perf_counter()
    with _environ(warehouse.dbt_env()), _workdir(warehouse.dbt_workdir()):
        from dbt.cli.main import dbtRunner

        try:
            outcome = dbtRunner().invoke(args)
        except BaseException as exc:  # dbtRunner catches nearly everything; be safe anyway
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            elapsed = time.perf_counter() - started
            return DbtReport(success=False, command=command, error=_describe(exc), elapsed=elapsed)
        finally:
            warehouse.release()
    elapsed = time.perf_counter() - started

    results = [_result_dict(r) for r in getattr(outcome.result, "results", None) or []]
    error = _describe(outcome.exception) if outcome.exception is not None else None
    success = bool(outcome.success)
    if not success and error is None and not any(r["status"] in _BAD for r in results):
        error = f"dbt reported failure; see its log in {log_dir}"
    return DbtReport(success=success, results=results, elapsed=elapsed, command=command, error=error)


# --------------------------------------------------------------------------------------- helpers


@contextmanager
def _workdir(folder: Path | None) -> Iterator[None]:
    """Run the block in ``folder`` and come back afterwards; where we are when it is None or not there yet
    (``dbt parse`` before the first sync: dbt opens no warehouse for it)."""
    if folder is None or not Path(folder).is_dir():
        yield
        return
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block and put the previous values back afterwards."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _value(x: Any) -> Any:
    """The plain value of a dbt enum (NodeType, RunStatus, TestStatus...)."""
    return getattr(x, "value", x)


def _result_dict(result: Any) -> dict:
    node = getattr(result, "node", None)
    status = str(_value(getattr(result, "status", "")) or "").lower()
    message = getattr(result, "message", None)
    if message is None and status not in _PASSED:
        message = getattr(result, "error", None)
    return {
        "unique_id": getattr(node, "unique_id", ""),
        "resource_type": str(_value(getattr(node, "resource_type", "")) or ""),
        "name": getattr(node, "name", "") or getattr(node, "unique_id", ""),
        "status": status,
        "message": None if message is None else str(message),
        "failures": getattr(result, "failures", None),
        "execution_time": float(getattr(result, "execution_time", 0.0) or 0.0),
    }


def _describe(exc: BaseException) -> str:
    """dbt's message for an exception, without the ANSI colours of its console output."""
    text = str(exc).strip() or type(exc).__name__
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _one_line(message: str | None) -> str:
    if not message:
        return ""
    return " ".join(str(message).split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
