"""Run a pipeline on this machine with kfp.local and summarise it.

This is the outermost layer (docs/architecture.md): the only place that knows about runners. The
runner is chosen here (:func:`run_local`: kfp.local's SubprocessRunner, or its DockerRunner prepared by
:func:`tagifai_cli.docker_run.session`), and this is the one place that writes ``last_run.json``. The
pipeline runs exactly as compiled (each step a separate process, artifacts in the local artifact store under
``$TAGIFAI_HOME/runs``); this module only watches kfp's log for task starts and ends, keeps the full
log in a file, shows the steps as they run (:mod:`tagifai_cli.progress`), and reads the artifacts' metadata
back for the summary (a cached step's from the earlier run that made them).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import io
import json
import logging
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_CACHED = re.compile(r"Task '([^']+)' cache hit \(key=(\w+)\)")  # written by _cache_hits_to
#: Training arguments that the study does not search (left out of the printed summary, kept in the JSON).
_FIXED_ARGS = {
    "accepted_tags",
    "min_freq",
    "val_size",
    "test_size",
    "seed",
    "refit",
    "threshold",
    "threshold_strategy",
    "threshold_cv_folds",
    "threshold_quantile",
}
_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Exit)):\s+(.+)$")


@dataclass
class StepEvent:
    name: str  # the task's key in the compiled spec (unique in the run; its folder in the artifact store)
    label: str = ""  # its display name
    status: str = "RUNNING"
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    error: str | None = None
    cache_key: str = ""  # a cached task's key prefix in kfp.local's cache (status "cached")


class _ProgressTee(io.TextIOBase):
    """Takes kfp's stdout: writes it all to a log file, and tells a display (:mod:`tagifai_cli.progress`)
    when a step starts, reports progress (a ``tagifai-progress`` line) and finishes. Call :meth:`stop`
    when the run is over (it ends the live display on a terminal)."""

    def __init__(self, log_file, terminal, quiet: bool = False, names: dict[str, str] | None = None, display=None):
        self.names = names or {}
        self.log_file = log_file
        self.terminal = terminal
        self.quiet = quiet
        from tagifai_cli.progress import make_display, parse_progress

        self.display = display if display is not None else make_display(terminal, quiet)
        self._parse_progress = parse_progress
        self.steps: list[StepEvent] = []
        self._buffer = ""
        self._last_error: str | None = None
        self._detail_lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(_ANSI.sub("", line).rstrip())
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()
        self.terminal.flush()

    def stop(self) -> None:
        self.display.stop()

    def _line(self, line: str) -> None:
        if match := _START.search(line):
            self.steps.append(StepEvent(match.group(1), label=self.names.get(match.group(1), match.group(1))))
            self._last_error = None
            self.display.start(self.steps[-1].name, self.steps[-1].label)
        elif match := _END.search(line):
            step = next((s for s in reversed(self.steps) if s.name == match.group(1)), None)
            if step is None:
                return
            step.status = "succeeded" if match.group(2) == "SUCCESS" else "failed"
            step.seconds = round(time.perf_counter() - step.started, 2)
            if step.status == "failed":
                step.error = self._last_error
            self.display.finish(step.name, step.label, step.seconds, step.status == "succeeded", step.error)
        elif match := _CACHED.search(line):
            label = self.names.get(match.group(1), match.group(1))
            self.steps.append(StepEvent(match.group(1), label=label, status="cached", cache_key=match.group(2)))
            self.display.cached(match.group(1), label)
        elif (progress := self._parse_progress(line)) is not None:
            # it belongs to the step that started last and is still running (kfp.local runs one at a time)
            step = next((s for s in reversed(self.steps) if s.status == "RUNNING"), None)
            if step is not None:
                self.display.update(step.name, progress.text())
        elif match := _ERROR.match(line.strip()):
            if match.group(1) not in ("RuntimeError",) or self._last_error is None:
                self._last_error = f"{match.group(1)}: {match.group(2)}"
                self._detail_lines = 0
        elif self._last_error and line.strip().startswith("- ") and self._detail_lines < 8:
            # the library's errors list each failed check on its own "- " line
            self._last_error += "\n  " + line.strip()
            self._detail_lines += 1


def _read_task_outputs(run_dir: Path, only: str = "*") -> dict[str, dict]:
    """task name -> {"artifacts": {name: metadata}, "parameters": {name: value}} from executor_output.json
    (of the task folders named ``only``, a glob)."""
    outputs: dict[str, dict] = {}
    for path in sorted(run_dir.glob(f"{only}/executor_output.json")):
        data = json.loads(path.read_text())
        arts = {
            name: (group.get("artifacts") or [{}])[0].get("metadata", {})
            for name, group in data.get("artifacts", {}).items()
        }
        params = data.get("parameterValues", {})
        outputs[path.parent.name] = {"artifacts": arts, "parameters": params, "dir": str(path.parent)}
    return outputs


def _find(outputs: dict[str, dict], prefix: str) -> list[dict]:
    return [v for k, v in sorted(outputs.items()) if k == prefix or re.fullmatch(rf"{re.escape(prefix)}(-\d+)*", k)]


def _shown(show, out: dict):
    """The value of one :class:`tagifai.steps.Show` in a task's outputs (None when absent)."""
    if show.parameter and out["parameters"].get(show.parameter):
        return out["parameters"][show.parameter]
    meta = out["artifacts"].get(show.artifact, {}) if show.artifact else {}
    if show.fields:
        return {k: meta[k] for k in show.fields if k in meta} or None
    if not show.field:
        return meta or None
    value = meta.get(show.field)
    return int(value) if show.as_int and value is not None else value


def summarise(
    pipeline: str,
    status: str,
    steps: list[StepEvent],
    run_dir: Path | None,
    seconds: float,
    cached: dict[str, Path] | None = None,
) -> dict:
    """The run summary: the steps as they ran, and what each component's :class:`tagifai.steps.Show` entries
    take from its tasks' outputs (the step table says what every step contributes). ``cached``: task key ->
    the folder of the earlier run whose outputs a cached task reused (read like this run's own)."""
    from tagifai import steps as step_table

    cached = cached or {}
    outputs = _read_task_outputs(run_dir) if run_dir else {}
    for key, folder in cached.items():
        for out in _read_task_outputs(folder.parent, only=folder.name).values():  # one folder: one task
            outputs[key] = out
    summary: dict = {
        "pipeline": pipeline,
        "status": status,
        "seconds": round(seconds, 2),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_dir": str(run_dir) if run_dir else None,
        "steps": [
            {
                "name": s.label or s.name,
                "task": s.name,
                "status": s.status,
                "seconds": s.seconds,
                **({"error": s.error} if s.error else {}),
                **({"dir": str(cached[s.name])} if s.name in cached else {}),
            }
            for s in steps
        ],
        "rows": {},
        "best_params": None,
        "best_validation_score": None,
        "metrics": None,
        "model_uri": None,
    }
    for step in step_table.STEPS:
        for component in step.components:
            for out in _find(outputs, component.task_prefix):
                for show in component.shows:
                    value = _shown(show, out)
                    if value is None:
                        continue
                    if show.artifact:
                        meta = out["artifacts"].get(show.artifact, {})
                        key = show.into.format_map(collections.defaultdict(str, meta))
                    else:
                        key = show.into
                    if key.startswith("rows/"):
                        summary["rows"][key.removeprefix("rows/")] = value
                    else:
                        summary[key] = value
    return summary


def print_summary(summary: dict, stream=sys.stdout) -> None:
    w = stream.write
    w(f"\n{summary['pipeline']} {summary['status'].upper()} in {summary['seconds']:.1f} s\n")
    w(f"{'step':<30}{'status':<12}{'seconds':>8}\n")
    for step in summary["steps"]:
        w(f"{step['name']:<30}{step['status']:<12}{step['seconds']:>8.1f}\n")
    if summary["rows"]:
        w("rows: " + ", ".join(f"{k}={v}" for k, v in summary["rows"].items()) + "\n")
    if summary.get("best_params"):
        shown = {k: v for k, v in sorted(summary["best_params"].items()) if k not in _FIXED_ARGS}
        score = summary.get("best_validation_score")
        w(f"best params (cv f1 {score:.4f}): " if isinstance(score, float) else "best params: ")
        w(", ".join(f"{k}={round(v, 6) if isinstance(v, float) else v}" for k, v in shown.items()) + "\n")
    if summary.get("metrics"):
        w("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in summary["metrics"].items()) + "\n")
    if summary.get("model_uri"):
        outcome = (summary.get("evaluation") or {}).get("outcome")
        note = {
            2: " (promoted: now the champion)",
            1: " (pending approval: `tagifai models approve` makes it the champion)",
            0: " (rejected: champion unchanged; the evaluate report says why)",
        }.get(int(outcome) if outcome is not None else None, "")
        w(f"model: {summary['model_uri']}{note}\n")
    failed = [s for s in summary["steps"] if s["status"] == "failed"]
    for step in failed:
        w(f"failed step {step['name']}: {step.get('error') or 'see the log'}\n")
    stream.flush()


def task_labels(pipeline) -> dict[str, str]:
    """Task key -> display name, over the root DAG and every nested pipeline's DAG."""
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    dags = [spec.get("root", {}).get("dag", {})] + [c.get("dag", {}) for c in spec.get("components", {}).values()]
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for dag in dags:
        for key, task in dag.get("tasks", {}).items():
            if key in seen:  # the same key in two nested DAGs: kfp.local renames one, so leave both
                labels.pop(key, None)
                continue
            seen.add(key)
            labels[key] = task.get("taskInfo", {}).get("name", key)
    return labels


def run_local(
    pipeline_name: str,
    arguments: dict,
    home: Path,
    runner: str = "subprocess",
    quiet: bool = False,
    images: dict[str, str] | None = None,
    wait: float = 0,
    cache: bool = True,
) -> dict:
    """Run one of the pipelines (dataops, mlops, continual) on this machine; write and return the summary.

    ``runner``: ``subprocess`` (every step a process of this Python) or ``docker`` (every step in its
    image: ``images``, step -> image, default the settings' registry and tag). The whole run holds the
    state folder ``home`` (:mod:`tagifai_cli.statelock`): a second run on it fails at once naming this one,
    or waits up to ``wait`` seconds. ``cache``: reuse the outputs of tasks run before with the same inputs
    (kfp.local's cache under ``home/runs/.kfp_cache``, the steps pipelines/platform.yaml caches; a reused
    task is ``cached`` in the summary, its outputs read from the run that made them).
    """
    from kfp import local

    from pipelines.factory import build
    from tagifai_cli.statelock import state_lock

    if runner not in ("subprocess", "docker"):
        raise ValueError(f"unknown runner {runner!r}; use subprocess or docker")
    pipeline = build(pipeline_name, "local", images=images)
    with state_lock(home, wait):
        _clear_lease(arguments.get("warehouse", ""), quiet)
        if runner == "subprocess":
            summary = _execute(
                pipeline,
                pipeline_name,
                arguments,
                home,
                local.SubprocessRunner(use_venv=False),
                "subprocess",
                quiet,
                cache,
            )
        else:
            from tagifai_cli import docker_run

            with docker_run.session(pipeline, arguments, home, quiet=quiet) as docker:
                summary = _execute(
                    pipeline, pipeline_name, docker.arguments, home, docker.runner, "docker", quiet, cache
                )
                summary.update(docker.report())
        from tagifai_cli.report import write_run_report  # the run's HTML report (never fails the run)

        summary["report"] = write_run_report(summary, home, pipeline, arguments.get("optuna_storage", ""))
        (home / "last_run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _clear_lease(warehouse: str, quiet: bool) -> None:
    """Under the state folder's lock no other local run can hold the warehouse: a lease found now was left by a
    run that was interrupted before its exit task gave it back (tagifai.lease)."""
    from tagifai import lease

    path = lease.path_for(warehouse)
    left = lease.clear(path) if path is not None else None
    if left is not None and not quiet:
        print(f"cleared the warehouse lease left by run {left.holder} (since {left.acquired_at})")


def _execute(
    pipeline, pipeline_name: str, arguments: dict, home: Path, kfp_runner, runner_name: str, quiet: bool, cache: bool
) -> dict:
    """Run the built ``pipeline`` with ``kfp_runner``, showing progress; the summary."""
    from kfp import local

    root = home / "runs"
    root.mkdir(parents=True, exist_ok=True)
    local.init(
        runner=kfp_runner,
        pipeline_root=str(root),
        raise_on_error=True,
        # Keyed like KFP's (component, parameters, input artifacts); sync's key is the source's fingerprint,
        # so only unchanged bytes reuse anything (pipelines/platform.yaml says which steps are cached).
        enable_caching=cache,
    )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = home / "logs" / f"{pipeline_name}-{stamp}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    start = time.perf_counter()
    status = "succeeded"
    terminal = sys.stdout
    if not quiet:
        terminal.write(f"running {pipeline_name} (kfp.local {runner_name} runner), log: {log_path}\n")
    with open(log_path, "w", encoding="utf-8") as log_file:
        tee = _ProgressTee(log_file, terminal, quiet, task_labels(pipeline))
        try:
            with contextlib.redirect_stdout(tee), warnings.catch_warnings(), _cache_hits_to(tee):
                # kfp.local says display names and base images are ignored by this runner: expected here
                warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
                warnings.filterwarnings("ignore", message=".*custom or non-Python base image.*")
                pipeline(**arguments)
        except Exception as exc:  # kfp raises RuntimeError naming the failed task
            status = "failed"
            log_file.write(f"\n{type(exc).__name__}: {exc}\n")
        finally:
            tee.stop()  # ends the live display (and gives the cursor back), also on Ctrl-C
        tee.flush()
    new = sorted(
        (p for p in root.iterdir() if p.name not in before and p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
    )
    run_dir = new[-1] if new else None
    for step in tee.steps:
        if step.status == "RUNNING":
            step.status = "failed"
            step.seconds = round(time.perf_counter() - step.started, 2)
    summary = summarise(
        pipeline_name, status, tee.steps, run_dir, time.perf_counter() - start, cached_dirs(root, tee.steps)
    )
    summary["log"] = str(log_path)
    return summary


_CACHE_HIT = re.compile(r"Task (\S+) cache hit \(key=(\w+)\)")


@contextlib.contextmanager
def _cache_hits_to(tee):
    """kfp.local logs a reused task only on the root logger at INFO ("Task <key> cache hit (key=<12 hex>);
    skipping execution."): pass those records to ``tee`` as a line, ``Task '<key>' cache hit (key=...)``,
    which also keeps them in the run's log file. Other records are shown as before: with no handler of its own
    the root logger printed WARNING and above through ``logging.lastResort``; this handler keeps doing that."""
    root = logging.getLogger()
    bare = not root.handlers  # then a warning went to logging.lastResort (stderr), which this handler replaces

    class Hits(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            match = _CACHE_HIT.match(record.getMessage()) if record.name == "root" else None
            if match:
                tee.write(f"Task '{match.group(1)}' cache hit (key={match.group(2)})\n")
            elif bare and record.levelno >= logging.WARNING and logging.lastResort is not None:
                logging.lastResort.handle(record)

    handler, level = Hits(logging.INFO), root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def cached_dirs(root: Path, steps) -> dict[str, Path]:
    """Task key -> the folder of the run that made the outputs a cached task reused (from kfp.local's cache
    entry: the folder of its first local artifact)."""
    found: dict[str, Path] = {}
    for step in steps:
        key = getattr(step, "cache_key", "")
        if step.status != "cached" or not key:
            continue
        for entry in sorted((root / ".kfp_cache").glob(f"{key}*.json")):
            try:
                outputs = json.loads(entry.read_text())
            except (OSError, ValueError):
                continue
            uris = [v.get("uri", "") for v in outputs.values() if isinstance(v, dict) and v.get("uri")]
            local_uris = [Path(u) for u in uris if "://" not in u and Path(u).exists()]
            if local_uris:
                found[step.name] = local_uris[0].parent
                break
    return found
