"""A local run as the report sees it: its tasks, their artifacts (files and metadata) and the run summary.

kfp.local leaves one folder per task under ``$TAGIFAI_HOME/runs/<run>/``: ``executor_output.json``
(artifact metadata and output parameters; written only when the task succeeded) and one file or folder
per output artifact, named after the output without an extension. A failed task keeps the files it
wrote before failing (a validation writes its page before it raises), so files are listed from the
folder and metadata added where there is some.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

#: The report's own folder inside the run folder: named copies (hard links) of the artifacts, the summary
#: and the graph the report was drawn from.
OWN = "report"
_RUN_NAME = re.compile(r"^(?P<pipeline>[a-z][\w-]*?)-(?P<stamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)(?:-\d+)?$")


@dataclass
class Artifact:
    task: str  # the task folder
    name: str  # the output name
    path: Path
    metadata: dict = field(default_factory=dict)
    named: str = ""  # its named copy, relative to the run folder ("report/evaluate/report.md")

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir()

    @property
    def size(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        """The file's text ("" for a folder, a missing or an unreadable file)."""
        try:
            return self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
        except (OSError, UnicodeDecodeError):
            return ""


@dataclass
class Task:
    key: str  # the folder (the task key in the compiled spec)
    label: str  # the display name
    status: str = "unknown"
    seconds: float | None = None
    error: str = ""
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)

    def meta(self, artifact: str) -> dict:
        return self.artifacts[artifact].metadata if artifact in self.artifacts else {}


@dataclass
class Run:
    dir: Path
    summary: dict
    tasks: list[Task]

    @property
    def name(self) -> str:
        return self.dir.name

    def of(self, prefix: str) -> list[Task]:
        """The tasks of a component: its task prefix (``validate-table``), with kfp's suffixes ``-2``, ``-3``."""
        pattern = re.compile(rf"{re.escape(prefix)}(-\d+)*")
        return [t for t in self.tasks if pattern.fullmatch(t.key)]

    def one(self, prefix: str) -> Task | None:
        found = self.of(prefix)
        return found[0] if found else None

    def artifacts(self) -> list[Artifact]:
        return [a for t in self.tasks for a in t.artifacts.values()]


def started_at(run_dir: Path) -> str:
    """The start time kfp.local put in the run folder's name (``continual-2026-12-02-12-05-54-968900``)."""
    match = _RUN_NAME.match(run_dir.name)
    if not match:
        return ""
    d, t = match.group("stamp")[:10], match.group("stamp")[11:]
    return f"{d} {t.replace('-', ':')}"


def pipeline_of(run_dir: Path) -> str:
    match = _RUN_NAME.match(run_dir.name)
    return match.group("pipeline") if match else ""


def read_tasks(run_dir: Path, steps: list[dict]) -> list[Task]:
    """The run's task folders, in the order the steps ran (then the rest by time), with their outputs."""
    folders = {p.name: p for p in run_dir.iterdir() if p.is_dir() and p.name != OWN and not p.name.startswith(".")}
    by_task = {s.get("task") or s.get("name"): s for s in steps}
    order = [k for k in by_task if k in folders]
    order += sorted((k for k in folders if k not in by_task), key=lambda k: folders[k].stat().st_mtime)
    order += [k for k in by_task if k not in folders]  # ran (or failed) before writing anything
    tasks = []
    for key in order:
        step = by_task.get(key, {})
        task = Task(key, step.get("name") or key, step.get("status") or "unknown", step.get("seconds"))
        task.error = step.get("error") or ""
        folder = folders.get(key)
        if folder is None and step.get("dir") and Path(step["dir"]).is_dir():  # cached: an earlier run's outputs
            folder = Path(step["dir"])
        if folder is not None:
            _read_outputs(folder, task)
            if task.status == "unknown":
                task.status = "succeeded" if (folder / "executor_output.json").exists() else "failed"
        tasks.append(task)
    return tasks


def _read_outputs(folder: Path, task: Task) -> None:
    out_file = folder / "executor_output.json"
    data: dict = {}
    if out_file.exists():
        try:
            data = json.loads(out_file.read_text())
        except (OSError, ValueError):
            data = {}
    task.parameters = data.get("parameterValues", {}) or {}
    for name, group in (data.get("artifacts") or {}).items():
        first = (group.get("artifacts") or [{}])[0]
        uri = first.get("uri") or ""
        path = folder / name
        if uri and not path.exists() and Path(uri).exists():
            path = Path(uri)
        task.artifacts[name] = Artifact(task.key, name, path, first.get("metadata") or {})
    for path in sorted(folder.iterdir()):
        if path.name != "executor_output.json" and path.name not in task.artifacts:
            task.artifacts[path.name] = Artifact(task.key, path.name, path)


def load_run(run_dir: Path, summary: dict) -> Run:
    return Run(run_dir, summary, read_tasks(run_dir, summary.get("steps") or []))


def extension(path: Path) -> str:
    """A file's extension by what it holds (kfp.local writes artifacts without one)."""
    if path.is_dir():
        return ""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return ""
    if head.startswith(b"PAR1"):
        return ".parquet"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return ".html"
    if text.startswith((b"{", b"[")):
        return ".json"
    if text.startswith(b"#") or b"\n|" in head:
        return ".md"
    return ""


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links: a copy
        shutil.copy2(source, target)


def name_artifacts(run: Run) -> None:
    """Named copies of the artifacts' files under ``report/<step>/<output><ext>`` (hard links where possible),
    so a person can open ``report/evaluate/report.md``; folders (an MLflow model) are linked where they are."""
    own = run.dir / OWN
    if own.is_dir():  # the copies of an earlier report: made again below
        for old in own.iterdir():
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
    labels = [t.label for t in run.tasks]
    for task in run.tasks:
        folder = task.label if labels.count(task.label) == 1 and task.label not in ("", ".", "..") else task.key
        folder = re.sub(r"[^\w.-]+", "_", folder)
        for artifact in task.artifacts.values():
            if not artifact.path.exists():
                continue
            try:
                relative = artifact.path.relative_to(run.dir)
            except ValueError:  # a cached task's output, in the run that made it
                relative = Path(os.path.relpath(artifact.path, run.dir))
            if artifact.is_dir:
                artifact.named = str(relative) + "/"
                continue
            target = own / folder / f"{artifact.name}{extension(artifact.path)}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()
            _link(artifact.path, target)
            artifact.named = str(target.relative_to(run.dir))
