"""What a run shows a person: one static, self-contained HTML page per local run, and an index of all runs.

``runs/<run>/report.html`` (:mod:`.build`): the pipeline as its graph with each step's status, duration and
image; row counts through DataOps; each validation, failed expectations first; the dbt build; Optuna's
history and parameter importances; the evaluation and the champion decision; drift; links to every
artifact. ``runs/index.html`` (:mod:`.index`): every run's status, duration, f1 and model version, and
f1 and row counts from run to run. Written at the end of every ``tagifai run`` and by ``tagifai report``
and ``tagifai runs`` (:mod:`tagifai_cli.runs`).

The page needs no server and no network: inline styles and SVG, pictures as ``data:`` URIs (matplotlib),
a Content-Security-Policy that forbids loading anything, and links relative to the run folder.
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_run_report(summary: dict, home: Path, pipeline=None, optuna_storage: str = "") -> str | None:
    """The report of the run ``summary`` describes (and the index of all runs); its path, or None.

    Called at the end of every local run with the built ``pipeline`` (its graph is saved beside the report).
    Never raises: a run's outcome does not depend on its report; a failure is one line on stderr.
    """
    run_dir = summary.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        return None
    try:
        import tagifai_cli.report.build as build
        import tagifai_cli.report.index as index

        spec = build.spec_of(pipeline) if pipeline is not None else None
        path = build.write(Path(run_dir), summary, spec=spec, optuna_storage=optuna_storage)
        index.write_index(Path(home), index.summaries(Path(home)))
        return str(path)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        print(f"warning: no run report: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
