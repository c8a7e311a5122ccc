"""What ``tagifai run`` shows while a pipeline runs: one row per step, live on a terminal, plain lines elsewhere.

:class:`tagifai_cli.local_run._ProgressTee` reads kfp.local's log and calls a display made by
:func:`make_display`:

- a terminal (stdout is a tty and rich finds it interactive): :class:`LiveDisplay`, a rich ``Live`` area
  with a spinner, the step, its latest progress and its elapsed time for each running step; each finished
  step is printed above it as a line that stays (``✓``, or ``✗ FAILED`` with the error);
- anything else (CI logs, pipes, ``TERM=dumb``, rich not installed): :class:`PlainDisplay`, one line per
  finished step, ``  ok     <label>   <seconds> s`` or ``  FAILED <label>   <seconds> s`` followed by the
  error lines: the format scripts and tests parse (progress lines are not shown: the log keeps them);
- ``--quiet``: :class:`QuietDisplay`, nothing per step.

The progress line contract
--------------------------
The steps run as separate processes; their stdout reaches the tee as kfp.local's log lines. A library
function that wants to report progress prints (and flushes) one line::

    tagifai-progress <topic> <kind> <value> [<key>=<value> ...]

- ``topic``: who reports (the library module: ``optimize``, ``sync``); informative only, the line belongs
  to the step that started last and has not finished (kfp.local runs one task at a time);
- ``kind``: what is counted, one word (``trial``, ``rows``);
- ``value``: a count, ``<n>`` or ``<done>/<total>``;
- ``key=value``: optional extras without spaces (``best_f1=0.9123``); numbers are shown to 3 decimals.

The line may be preceded by anything (kfp indents the inner logs) and is shown as
``<kind> <value>  <key> <value>`` with ``_`` read as a space. Today's lines:

- ``tagifai-progress optimize trial 3/20 best_f1=0.9123`` after each finished Optuna trial
  (:class:`tagifai.optimize.TrialProgress`): finished trials of the study out of ``num_trials``;
- ``tagifai-progress sync rows 764`` after :func:`tagifai.sync.sync` has loaded a batch.

Lines that do not match are ignored, so a library may add kinds without changing this module.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field

#: The prefix of every progress line (grep the log for it).
PREFIX = "tagifai-progress"
_LINE = re.compile(
    rf"(?:^|\s){PREFIX}\s+(?P<topic>[\w-]+)\s+(?P<kind>[\w-]+)\s+(?P<value>\d+(?:/\d+)?)"
    r"(?P<extra>(?:\s+[\w.-]+=\S+)*)\s*$"
)
_NUMBER = re.compile(r"-?\d+\.\d+")


@dataclass(frozen=True)
class ProgressLine:
    """One parsed ``tagifai-progress`` line."""

    topic: str
    kind: str
    value: str
    extra: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """How the display shows it: ``trial 3/20  best f1 0.912``."""
        parts = [f"{self.kind} {self.value}"]
        for key, value in self.extra.items():
            shown = f"{float(value):.3f}" if _NUMBER.fullmatch(value) else value
            parts.append(f"{key.replace('_', ' ')} {shown}")
        return "  ".join(parts)


def parse_progress(line: str) -> ProgressLine | None:
    """The progress line in ``line`` (a log line without ANSI codes), or None."""
    if PREFIX not in line:
        return None
    match = _LINE.search(line)
    if match is None:
        return None
    extra = dict(token.split("=", 1) for token in match.group("extra").split())
    return ProgressLine(match.group("topic"), match.group("kind"), match.group("value"), extra)


class QuietDisplay:
    """``--quiet``: nothing per step. The interface every display has: ``key`` is the task's key in the run
    (unique), ``label`` its display name."""

    def start(self, key: str, label: str) -> None:
        pass

    def update(self, key: str, text: str) -> None:
        pass

    def finish(self, key: str, label: str, seconds: float, ok: bool, error: str | None = None) -> None:
        pass

    def cached(self, key: str, label: str) -> None:
        """The step was not run: an earlier run's outputs on the same inputs were reused (kfp.local's cache)."""

    def stop(self) -> None:
        pass


class PlainDisplay(QuietDisplay):
    """Not a terminal: one plain line per finished step, no escape codes, no progress lines."""

    def __init__(self, terminal) -> None:
        self.terminal = terminal

    def finish(self, key: str, label: str, seconds: float, ok: bool, error: str | None = None) -> None:
        mark = "ok " if ok else "FAILED"
        self.terminal.write(f"  {mark:6} {label:<28} {seconds:7.1f} s\n")
        if error:
            self.terminal.write("         " + error.replace("\n", "\n         ") + "\n")
        self.terminal.flush()

    def cached(self, key: str, label: str) -> None:
        self.terminal.write(f"  {'cached':6} {label:<28} {0:7.1f} s\n")
        self.terminal.flush()


@dataclass
class _Running:
    label: str
    started: float
    spinner: object
    detail: str = ""


class LiveDisplay(QuietDisplay):
    """A terminal: a rich ``Live`` area (transient) with a line per running step (spinner, label, elapsed
    seconds, latest progress), redrawn four times a second and on every event, and a permanent line printed
    above it for each finished step."""

    def __init__(self, console) -> None:
        self.console = console
        self._running: dict[str, _Running] = {}
        self._details: dict[str, str] = {}  # the latest progress of each step, shown on its finished line
        self._lock = threading.Lock()
        self._live = None
        utf = console.encoding.startswith("utf")
        self._ok, self._failed = ("✓", "✗ FAILED") if utf else ("ok", "FAILED")

    def _render(self):
        """One line per running step, laid out as its finished line will be: spinner, label, seconds, progress."""
        from rich.console import Group
        from rich.text import Text

        now, tick = time.perf_counter(), self.console.get_time()
        with self._lock:
            rows = list(self._running.values())
        lines = []
        for row in rows:
            line = Text.assemble(
                "  ",
                row.spinner.render(tick),
                " ",
                (f"{row.label:<28}", "bold"),
                (f" {now - row.started:7.1f} s", "dim"),
            )
            if row.detail:
                line.append(f"  {row.detail}", style="cyan")
            lines.append(line)
        return Group(*lines)

    def start(self, key: str, label: str) -> None:
        from rich.spinner import Spinner

        with self._lock:
            self._running[key] = _Running(label, time.perf_counter(), Spinner("dots", style="cyan"))
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                console=self.console,
                get_renderable=self._render,
                refresh_per_second=4,
                transient=True,  # the running rows go; the finished lines printed above them stay
                redirect_stdout=False,  # stdout is kfp's log, taken by the tee
                redirect_stderr=sys.stderr.isatty(),  # stray warnings above the live rows, not through them
            )
            self._live.start()
        self._live.refresh()

    def update(self, key: str, text: str) -> None:
        with self._lock:
            if key not in self._running:
                return
            self._running[key].detail = self._details[key] = text
        if self._live is not None:
            self._live.refresh()

    def finish(self, key: str, label: str, seconds: float, ok: bool, error: str | None = None) -> None:
        from rich.text import Text

        with self._lock:
            self._running.pop(key, None)
            detail = self._details.pop(key, "")
        if self._live is not None:
            self._live.refresh()  # its row goes before the line is printed above the live area
        mark, style = (self._ok, "green") if ok else (self._failed, "bold red")
        line = Text.assemble(
            "  ", (mark, style), " ", (f"{label:<28}", "bold" if ok else "red"), (f" {seconds:7.1f} s", "dim")
        )
        if detail:
            line.append(f"  {detail}", style="dim")
        self.console.print(line, highlight=False, soft_wrap=True)
        if error:
            indented = "    " + error.replace("\n", "\n    ")
            self.console.print(Text(indented, style="red"), highlight=False, soft_wrap=True)

    def cached(self, key: str, label: str) -> None:
        from rich.text import Text

        line = Text.assemble("  ", ("=", "cyan"), " ", (f"{label:<28}", "bold"), ("  cached: reused, not run", "dim"))
        self.console.print(line, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def make_display(terminal, quiet: bool = False):
    """The display for ``terminal`` (the real stdout, taken before kfp's output is redirected)."""
    if quiet:
        return QuietDisplay()
    isatty = getattr(terminal, "isatty", None)
    if not (isatty and isatty()):
        return PlainDisplay(terminal)
    try:
        from rich.console import Console
    except ImportError:  # rich is in the `report` extra; without it, plain lines
        return PlainDisplay(terminal)
    console = Console(file=terminal, highlight=False)
    if not console.is_interactive:  # TERM=dumb, TTY_INTERACTIVE=0 ...
        return PlainDisplay(terminal)
    return LiveDisplay(console)
