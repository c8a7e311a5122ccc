"""Write the report of one local run: ``runs/<run>/report.html`` and its folder ``runs/<run>/report/``.

The folder holds named copies of the artifacts (``report/evaluate/report.md``, hard links), the run
summary (``summary.json``: what ``tagifai runs`` lists) and the graph the page was drawn from
(``dag.json``: the tasks and their dependencies, taken from the compiled pipeline at the end of the run).
Everything the page links to is relative to the run folder, so the folder can be moved.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import tagifai_cli.report.dag as dag_mod
import tagifai_cli.report.figures as figures
import tagifai_cli.report.page as page
import tagifai_cli.report.sections as sections
from tagifai_cli.report.collect import OWN, Run, load_run, name_artifacts


def spec_of(pipeline) -> dict:
    """The compiled spec of a built pipeline (a kfp ``@dsl.pipeline`` object) as a dict."""
    from google.protobuf import json_format

    return json_format.MessageToDict(pipeline.pipeline_spec)


def graph(run_dir: Path, summary: dict, spec: dict | None = None) -> list[dag_mod.Node]:
    """The run's tasks with their dependencies: from ``spec``, else the saved ``dag.json``, else the step order;
    with each step's status, duration and error attached."""
    saved = run_dir / OWN / "dag.json"
    nodes: list[dag_mod.Node] = []
    if spec:
        nodes = dag_mod.graph_from_spec(spec)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps([n.to_dict() for n in nodes], indent=1) + "\n")
    elif saved.exists():
        nodes = [dag_mod.Node(**d) for d in json.loads(saved.read_text())]
    if not nodes:
        nodes = dag_mod.graph_from_steps(summary.get("steps") or [])
    return dag_mod.attach(nodes, summary.get("steps") or [])


def _data_profile(run: Run) -> figures.Figure | None:
    task = run.one("extract")
    if task is None or "dataset" not in task.artifacts:
        return None
    tags = dict((task.meta("dataset").get("composition") or {}).get("rows_per_class") or {})
    lengths: list[int] = []
    path = task.artifacts["dataset"].path
    try:
        import pandas as pd

        counted, lengths = figures.profile_of(pd.read_parquet(path, columns=["title", "description", "tag"]))
        tags = tags or counted
    except Exception:  # noqa: BLE001 - no file, another schema: the counts in the metadata, if any
        pass
    return figures.data_profile(tags, lengths)


def _optimisation_pictures(optimize, optuna_storage: str, study: str) -> tuple[list[figures.Figure], dict]:
    """The optimize step's own pictures and trial counts (its ``plots`` page and their metadata): drawing them
    again from the study cost the command 4-6 s after every run (Optuna's fANOVA imports scikit-learn). A run
    whose step wrote no counts (older runs) has them drawn from the study."""
    plots = optimize.artifacts.get("plots")
    if plots is not None and isinstance(plots.metadata.get("trials"), dict):
        drawn = figures.page_figures(plots.text())
        if drawn:
            return drawn, dict(plots.metadata["trials"])
    return figures.optuna_figures(optuna_storage, study)


def _evaluation_pictures(run: Run) -> list[figures.Figure]:
    train = run.one("train")
    if train is None:
        return []
    matrix = train.meta("confusion_matrix").get("confusionMatrix") or {}
    labels = [s.get("displayName", "") for s in matrix.get("annotationSpecs") or []]
    rows = [list(r.get("row") or []) for r in matrix.get("rows") or []]
    return [
        figures.class_scores(sections.scores(train.meta("slice_metrics"), "class")),
        figures.confusion_matrix(labels, rows),
    ]


def write(run_dir: Path, summary: dict, *, spec: dict | None = None, optuna_storage: str = "") -> Path:
    """Write the report of the run in ``run_dir`` described by ``summary``; its path."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    own = run_dir / OWN
    own.mkdir(parents=True, exist_ok=True)
    path = run_dir / "report.html"
    summary = {**summary, "report": str(path)}
    nodes = graph(run_dir, summary, spec)
    run = load_run(run_dir, summary)
    name_artifacts(run)
    optimize = run.one("optimize")
    study = optimize.meta("best_args").get("study_name", "") if optimize else ""
    optuna_figs, counts = _optimisation_pictures(optimize, optuna_storage, study) if optimize else ([], {})
    parts = [
        page.header(run, page.cards(run, nodes)),
        page.pipeline_section(run, nodes, aside=sections.rows_section(run)),
        sections.profile_section(_data_profile(run)),
        sections.validations_section(run),
        sections.dbt_section(run),
        sections.optimisation_section(run, optuna_figs, counts),
        sections.evaluation_section(run, _evaluation_pictures(run)),
        sections.drift_section(run),
        sections.artifacts_section(run),
        page.footer(run),
    ]
    title = f"{summary.get('pipeline') or 'run'} {run_dir.name}: {summary.get('status') or 'unknown'}"
    summary["report_seconds"] = round(time.perf_counter() - started, 2)
    (own / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page.page(title, [p for p in parts if p]), encoding="utf-8")
    os.replace(tmp, path)
    return path
