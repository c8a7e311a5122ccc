"""The live progress of `tagifai run` (tagifai_cli/progress.py): the plain lines off a terminal, the rich
display on one, nothing under --quiet, and the `tagifai-progress` lines the library prints for it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tagifai_cli.local_run import _ProgressTee
from tagifai_cli.progress import LiveDisplay, PlainDisplay, ProgressLine, QuietDisplay, parse_progress

DATA = Path(__file__).resolve().parents[1] / "data" / "madewithml"
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NAMES = {"sync": "sync-projects", "optimize": "optimize", "validate-table": "validate-projects"}


class FakeTTY(io.StringIO):
    """A terminal, as far as anyone asks."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal_env(monkeypatch):
    """An environment in which rich treats a tty as an interactive terminal, whatever runs the tests."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def _start(tee: _ProgressTee, task: str, ago: float) -> None:
    """kfp's task start line, with the step started ``ago`` seconds back (fixed durations in the output)."""
    tee.write(f"00:00:01.000 - INFO - Executing task \x1b[96m'{task}'\x1b[0m\n")
    tee.steps[-1].started -= ago


def _end(tee: _ProgressTee, task: str, status: str = "SUCCESS") -> None:
    tee.write(f"00:00:02.000 - INFO - Task \x1b[96m'{task}'\x1b[0m finished with status \x1b[92m{status}\x1b[0m\n")


def _run(tee: _ProgressTee) -> None:
    """A synthetic kfp log: sync (a rows line), optimize (trial lines, as kfp indents the inner logs), and
    a failing validation."""
    _start(tee, "sync", 2.04)
    tee.write("    tagifai-progress sync rows 764\n")
    _end(tee, "sync")
    _start(tee, "optimize", 41.23)
    for n in (1, 2, 3):
        tee.write(f"    tagifai-progress optimize trial {n}/20 best_f1=0.91{n}4\n")
    _end(tee, "optimize")
    _start(tee, "validate-table", 0.5)
    tee.write("    tagifai.validation.DataValidationError: Data validation failed for 'raw.projects'\n")
    tee.write("      - expect_column_values_to_not_be_null on column 'title': 1 unexpected\n")
    _end(tee, "validate-table", "FAILURE")


def test_plain_lines_off_a_terminal_are_todays_format():
    log, term = io.StringIO(), io.StringIO()
    tee = _ProgressTee(log, term, names=NAMES)
    assert isinstance(tee.display, PlainDisplay)
    _run(tee)
    tee.stop()
    assert term.getvalue() == (
        "  ok     sync-projects                    2.0 s\n"
        "  ok     optimize                        41.2 s\n"
        "  FAILED validate-projects                0.5 s\n"
        "         DataValidationError: Data validation failed for 'raw.projects'\n"
        "           - expect_column_values_to_not_be_null on column 'title': 1 unexpected\n"
    )
    assert "\x1b" not in term.getvalue() and "trial" not in term.getvalue()
    # the log file keeps everything, progress lines included
    assert "tagifai-progress optimize trial 3/20 best_f1=0.9134" in log.getvalue()
    assert "tagifai-progress sync rows 764" in log.getvalue()
    assert [s.status for s in tee.steps] == ["succeeded", "succeeded", "failed"]


def test_a_terminal_gets_the_live_display(terminal_env):
    log, term = io.StringIO(), FakeTTY()
    tee = _ProgressTee(log, term, names=NAMES)
    assert isinstance(tee.display, LiveDisplay)
    try:
        _start(tee, "optimize", 41.23)
        tee.write("    tagifai-progress optimize trial 3/20 best_f1=0.9123\n")
        running = _ESCAPES.sub("", term.getvalue())
        assert "optimize" in running and "trial 3/20  best f1 0.912" in running  # the live row, while it runs
        _end(tee, "optimize")
        _start(tee, "validate-table", 0.5)
        tee.write("    tagifai.validation.DataValidationError: Data validation failed for 'raw.projects'\n")
        _end(tee, "validate-table", "FAILURE")
    finally:
        tee.stop()
    out = _ESCAPES.sub("", term.getvalue())
    finished = [line for line in out.splitlines() if "✓" in line]
    assert finished and "optimize" in finished[-1] and "trial 3/20" in finished[-1]
    # 41.23 s back plus the real time the rendering took in between (a loaded machine: tenths of a second)
    shown = re.search(r"(\d+\.\d) s", finished[-1])
    assert shown and 41.2 <= float(shown.group(1)) < 43.0, finished[-1]
    assert "✗ FAILED validate-projects" in out
    assert "DataValidationError: Data validation failed for 'raw.projects'" in out
    assert "\x1b[" in term.getvalue()  # it is a rich rendering, not the plain lines
    assert "  ok     optimize" not in out


def test_quiet_prints_nothing_per_step(terminal_env):
    for term in (io.StringIO(), FakeTTY()):
        tee = _ProgressTee(io.StringIO(), term, quiet=True, names=NAMES)
        assert isinstance(tee.display, QuietDisplay) and not isinstance(tee.display, PlainDisplay)
        _run(tee)
        tee.stop()
        assert term.getvalue() == ""
        assert [s.status for s in tee.steps] == ["succeeded", "succeeded", "failed"]


def test_the_line_contract():
    assert parse_progress("    tagifai-progress optimize trial 3/20 best_f1=0.9123") == ProgressLine(
        "optimize", "trial", "3/20", {"best_f1": "0.9123"}
    )
    line = parse_progress("tagifai-progress sync rows 764")
    assert line == ProgressLine("sync", "rows", "764", {}) and line.text() == "rows 764"
    assert parse_progress("tagifai-progress optimize trial 3/20 best_f1=0.9123").text() == "trial 3/20  best f1 0.912"
    for other in ("tagifai-progress", "tagifai-progress sync rows many", "said tagifai-progressive sync rows 3", ""):
        assert parse_progress(other) is None


def test_a_progress_line_outside_a_step_is_ignored():
    term = io.StringIO()
    tee = _ProgressTee(io.StringIO(), term)
    tee.write("tagifai-progress sync rows 764\n")
    assert tee.steps == [] and term.getvalue() == ""


def _fake_cross_validate(self, trial, args):
    """Every fold scores 0.8 + trial number / 100: the study runs in a second, the callbacks for real."""
    scores = []
    for step in range(len(self.folds)):
        scores.append(0.8 + trial.number / 100)
        trial.report(sum(scores) / len(scores), step)
    return scores, False


def _progress_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if parse_progress(line)]


def test_optimize_reports_each_trial(labeled_df, tmp_path, monkeypatch, capsys):
    import optuna

    from tagifai import optimize as optimize_mod

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    monkeypatch.setattr(optimize_mod.Objective, "cross_validate", _fake_cross_validate)
    kwargs = dict(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="progress", seed=0, cv_folds=2)
    optimize_mod.optimize(labeled_df, num_trials=3, **kwargs)
    assert _progress_lines(capsys.readouterr().out) == [
        "tagifai-progress optimize trial 1/3 best_f1=0.8000",
        "tagifai-progress optimize trial 2/3 best_f1=0.8100",
        "tagifai-progress optimize trial 3/3 best_f1=0.8200",
    ]
    # resumed: it counts the study's finished trials, the earlier call's included
    optimize_mod.optimize(labeled_df, num_trials=4, **kwargs)
    assert _progress_lines(capsys.readouterr().out) == ["tagifai-progress optimize trial 4/4 best_f1=0.8300"]


def test_the_trial_callback_leaves_out_best_f1_until_a_trial_completes():
    import optuna
    from optuna.trial import TrialState

    from tagifai.optimize import TrialProgress

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = io.StringIO()
    study = optuna.create_study(direction="maximize")

    def objective(trial):
        if trial.number == 0:
            raise optuna.TrialPruned()
        return 0.5

    study.optimize(objective, n_trials=2, callbacks=[TrialProgress(5, (TrialState.COMPLETE, TrialState.PRUNED), out)])
    assert out.getvalue().splitlines() == [
        "tagifai-progress optimize trial 1/5",
        "tagifai-progress optimize trial 2/5 best_f1=0.5000",
    ]


def test_sync_reports_the_rows_it_loaded(tmp_path, capsys):
    from tagifai.sync import sync

    result = sync(str(DATA / "tags.csv"), "tags", f"duckdb:///{tmp_path / 'warehouse.duckdb'}", tmp_path / "state")
    lines = _progress_lines(capsys.readouterr().out)
    assert lines == [f"tagifai-progress sync rows {result.rows_read}"] and result.rows_read == 764


def test_cache_hits_reach_the_tee_and_warnings_still_reach_stderr(monkeypatch, capsys):
    """kfp.local logs a reused task on the root logger at INFO only: the run turns it into a line of the tee;
    a warning of any logger is still printed as it was without a handler (logging.lastResort)."""
    import logging

    from tagifai_cli.local_run import _cache_hits_to

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in the CLI: no handler on the root logger
    lines = []

    class Tee:
        def write(self, text):
            lines.append(text)

    with _cache_hits_to(Tee()):
        logging.info("Task sync-2 cache hit (key=0123456789ab); skipping execution.")
        logging.info("something else at INFO")
        logging.getLogger("some.library").warning("careful: %s", "disk almost full")
    assert lines == ["Task 'sync-2' cache hit (key=0123456789ab)\n"]
    assert "careful: disk almost full" in capsys.readouterr().err
    assert root.handlers == []  # removed again
