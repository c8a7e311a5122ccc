"""The data sections of the run report: rows, validations, dbt, optimisation, evaluation, drift, artifacts.

Each takes the :class:`~tagifai_cli.report.collect.Run` (and the pictures drawn for it) and returns its
``<section>``, or "" when the run has no such step.
"""

from __future__ import annotations

import json
import os

from tagifai_cli.report.collect import Run
from tagifai_cli.report.figures import Figure
from tagifai_cli.report.page import (
    DOT,
    OUTCOMES,
    esc,
    figure_html,
    fmt,
    html_table,
    link_html,
    status_html,
)
from tagifai_cli.report.parse import inline_markdown, markdown_sections, markdown_tables, validation_page


def rows_section(run: Run) -> str:
    """The row counts from the sources to the test split (shown beside the pipeline's steps)."""
    records: list[tuple[str, str, int, str]] = []  # step, table, rows, detail (HTML)
    for task in run.of("sync"):
        meta = task.meta("dataset")
        if "rows_after" in meta:
            read, before = meta.get("rows_read", "?"), meta.get("rows_before", "?")
            source = str(meta.get("source", "?"))
            short = f'<code title="{esc(source)}">{esc(source.rstrip("/").rsplit("/", 1)[-1])}</code>'
            detail = f"read {esc(str(read))} from {short}; {esc(str(before))} before"
            records.append((task.label, f"raw.{meta.get('table', '?')}", int(meta["rows_after"]), detail))
    for task in run.of("transform"):
        meta = task.meta("labeled_projects")
        if "rows" in meta:
            records.append((task.label, str(meta.get("table", "labeled_projects")), int(meta["rows"]), "dbt build"))
    for task in run.of("extract"):
        meta = task.meta("dataset")
        if "rows" in meta:
            policy = (meta.get("composition") or {}).get("policy", "")
            records.append(
                (task.label, "training dataset", int(meta["rows"]), f"composition: {esc(policy)}" if policy else "")
            )
    for task in run.of("train"):
        meta = task.meta("test_data")
        if "rows" in meta:
            records.append((task.label, "test split", int(meta["rows"]), "held out for evaluation"))
    for task in run.of("drift"):
        meta = task.meta("metrics")
        if meta:
            records.append(
                (
                    task.label,
                    "new rows (drift)",
                    int(meta.get("new_rows") or 0),
                    f"reference rows {int(meta.get('reference_rows') or 0)}",
                )
            )
    if not records:
        body = '<p class="note">no row counts in this run</p>'
    else:
        top = max(r[2] for r in records) or 1
        body = html_table(
            ["step", "table", "rows", "", "detail"],
            [
                [
                    esc(step),
                    esc(table),
                    str(n),
                    f'<span class="bar" style="width:{max(2, 120 * n / top):.0f}px"></span>',
                    d,
                ]
                for step, table, n, d in records
            ],
            numeric={2},
        )
    return f'<section id="rows"><h3>Rows through DataOps</h3>{body}</section>'


def profile_section(profile: Figure | None) -> str:
    if profile is None:
        return ""
    return f'<section id="data"><h2>Training data</h2>{figure_html(profile)}</section>'


def validations_section(run: Run) -> str:
    blocks = []
    for task in run.of("validate-table") + run.of("validate-dataset"):
        page = task.artifacts.get("report")
        line, expectations = validation_page(page.text()) if page else ("", [])
        meta = task.meta("metrics")
        failed = [e for e in expectations if not e.passed]
        passed = [e for e in expectations if e.passed]
        if meta:
            counts = (
                f"{int(meta.get('successful', 0))}/{int(meta.get('evaluated', 0))} expectations met, "
                f"{int(meta.get('unsuccessful', 0))} failed"
            )
        else:
            counts = f"{len(passed)}/{len(expectations)} expectations met, {len(failed)} failed (read from its page)"
        tone = "bad" if failed or task.status == "failed" else "ok"

        def rows(items):
            return [
                [("\u2718 failed" if not e.passed else "\u2714 met"), esc(e.section), esc(e.text), esc(e.observed)]
                for e in items
            ]

        header = ["result", "column", "expectation", "observed"]
        failed_html = html_table(header, rows(failed), ["failed"] * len(failed)) if failed else ""
        passed_html = (
            f"<details><summary>{len(passed)} expectations met</summary>"
            f"{html_table(header, rows(passed), ['passed'] * len(passed))}</details>"
            if passed
            else ""
        )
        if not expectations:
            failed_html = '<p class="note">no expectations found in the step\'s page</p>'
        page_link = link_html(page, "the step's page")
        blocks.append(
            f'<div class="validation" data-task="{esc(task.key)}" data-failed="{len(failed)}">'
            f"<h3>{esc(task.label)} {status_html(task.status)}</h3>"
            f'<div class="banner {tone}">{esc(line or counts)}<br><small>{esc(counts)}{DOT}{page_link}</small></div>'
            f"{failed_html}{passed_html}</div>"
        )
    body = "".join(blocks) or '<p class="note">no validation in this run</p>'
    return f'<section id="validations"><h2>Validations (Great Expectations)</h2>{body}</section>'


def dbt_section(run: Run) -> str:
    task = run.one("transform")
    if task is None:
        return ""
    report = task.artifacts.get("report")
    text = report.text() if report else ""
    headline = next((line.strip().strip("*") for line in text.splitlines() if line.strip().startswith("**")), "")
    tables = [t for t in markdown_tables(text) if "node" in t.header]
    nodes = tables[0].records() if tables else []
    ok = {"success", "pass"}
    parts = []
    for kind, title in (("model", "Models"), ("test", "Tests"), ("seed", "Seeds"), ("snapshot", "Snapshots")):
        items = sorted((n for n in nodes if n.get("type") == kind), key=lambda n: n.get("status") in ok)
        if not items:
            continue
        bad = sum(n.get("status") not in ok for n in items)
        rows = [
            [
                f"<code>{esc(n.get('node', ''))}</code>",
                esc(n.get("status", "")),
                esc(n.get("time (s)", "")),
                esc(n.get("message", "")),
            ]
            for n in items
        ]
        table = html_table(
            ["node", "status", "seconds", "message"],
            rows,
            ["failed" if n.get("status") not in ok else "passed" for n in items],
            {2},
        )
        summary = f"{title}: {len(items) - bad} of {len(items)} ok"
        parts.append(
            f"<h3>{esc(summary)}</h3>{table}"
            if kind == "model" or bad
            else f"<details><summary>{esc(summary)}</summary>{table}</details>"
        )
    meta = task.meta("metrics")
    tone = "bad" if task.status == "failed" or meta.get("tests_failed") or meta.get("models_errored") else "ok"
    line = headline or (f"transform {task.status}" if not text else "")
    report_link = link_html(report, "the step's report")
    # dbt's documentation site (`tagifai docs`): $TAGIFAI_HOME/dbt-docs/index.html, the run is $TAGIFAI_HOME/runs/<run>
    docs = run.dir.parent.parent / "dbt-docs" / "index.html"
    if docs.is_file():
        report_link += f'{DOT}<a href="{esc(os.path.relpath(docs, run.dir))}">dbt docs</a>'
    else:
        report_link += f"{DOT}<code>tagifai docs</code> builds dbt's documentation site"
    return (
        f'<section id="dbt"><h2>dbt build</h2><div class="banner {tone}">{esc(line)}{DOT}{report_link}</div>'
        f"{''.join(parts) or '<p class=note>no node table in the report</p>'}</section>"
    )


def _params_table(args: dict) -> str:
    rows = [
        [f"<code>{esc(k)}</code>", esc(json.dumps(v) if isinstance(v, list | dict) else fmt(v, 6))]
        for k, v in args.items()
    ]
    half = (len(rows) + 1) // 2
    left, right = html_table(["argument", "value"], rows[:half]), html_table(["argument", "value"], rows[half:])
    return f'<div class="grid">{left}{right}</div>'


def optimisation_section(run: Run, figures: list[Figure], counts: dict) -> str:
    task = run.one("optimize")
    if task is None:
        return ""
    best = task.meta("best_args")
    metrics = task.meta("metrics")
    chosen = best.get("chosen") or {}
    study = best.get("study_name", "")
    facts = [
        ("study", f"<code>{esc(study)}</code>" if study else "\u2013"),
        ("trials in the study", ", ".join(f"{v} {esc(k)}" for k, v in counts.items()) or "\u2013"),
        ("completed (step's count)", fmt(metrics.get("n_complete"))),
        ("cross-validated f1 of the chosen arguments", fmt(metrics.get("best_val_f1"))),
        ("best trial's f1", fmt(metrics.get("best_trial_val_f1"))),
        ("chosen", esc(chosen.get("reason", "")) or "\u2013"),
    ]
    table = html_table(["", ""], [[esc(k), v] for k, v in facts])
    params = _params_table(best.get("args") or {}) if best.get("args") else ""
    figs = "".join(figure_html(f) for f in figures)
    return (
        f'<section id="optimisation"><h2>Optimisation (Optuna)</h2>{table}<div class="grid">{figs}</div>'
        f"<details><summary>the training arguments chosen ({len(best.get('args') or {})})</summary>"
        f"{params}</details></section>"
    )


def scores(meta: dict, prefix: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in meta.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == prefix:
            out.setdefault(parts[1], {})[parts[2]] = value
    return out


def _score_rows(scores: dict[str, dict[str, float]]) -> list[list[str]]:
    return [
        [esc(name), *(fmt(v.get(m), 3) for m in ("precision", "recall", "f1")), str(int(v.get("num_samples", 0)))]
        for name, v in scores.items()
    ]


def evaluation_section(run: Run, pictures: list[Figure]) -> str:
    train, evaluate = run.one("train"), run.one("evaluate")
    if train is None and evaluate is None:
        return ""
    ev_meta = evaluate.meta("metrics") if evaluate else {}
    overall = ev_meta or (train.meta("metrics") if train else {})
    model = train.meta("model") if train else {}
    slices = train.meta("slice_metrics") if train else {}
    header = ["name", "precision", "recall", "f1", "samples"]
    parts = []
    if overall:
        samples = overall.get("num_samples") or (train.meta("test_data").get("rows") if train else None)
        parts.append(
            "<h3>Overall (weighted, test rows)</h3>"
            + html_table(
                ["precision", "recall", "f1", "samples", "threshold for other"],
                [
                    [
                        fmt(overall.get("precision")),
                        fmt(overall.get("recall")),
                        fmt(overall.get("f1")),
                        fmt(samples),
                        fmt(model.get("threshold"), 3),
                    ]
                ],
                numeric={0, 1, 2, 3, 4},
            )
        )
    per_class, per_slice = scores(slices, "class"), scores(slices, "slice")
    tables = ""
    if per_class:
        tables += "<h3>Per class</h3>" + html_table(header, _score_rows(per_class), numeric={1, 2, 3, 4})
    if per_slice:
        tables += "<h3>Slices</h3>" + html_table(header, _score_rows(per_slice), numeric={1, 2, 3, 4})
    first, rest = (pictures[0], pictures[1:]) if pictures else (None, [])
    parts.append(f'<div class="grid"><div>{tables}</div>{figure_html(first) if first else ""}</div>')
    parts.append(f'<div class="grid">{"".join(figure_html(f) for f in rest)}</div>')
    report = evaluate.artifacts.get("report") if evaluate else None
    text = report.text() if report else ""
    behavioural = [t for t in markdown_tables(text) if t.heading.lower().startswith("behavioral")]
    if behavioural:
        tests = sorted(behavioural[0].records(), key=lambda r: r.get("result") == "pass")
        rows = [[esc(r.get(k, "")) for k in ("result", "kind", "input", "expected", "predicted")] for r in tests]
        parts.append(
            f"<h3>{esc(behavioural[0].heading)}</h3>"
            + html_table(
                ["result", "kind", "input", "expected", "predicted"],
                rows,
                ["passed" if r.get("result") == "pass" else "failed" for r in tests],
            )
        )
    elif ev_meta.get("behavioral_total") is not None:
        parts.append(
            f"<h3>Behavioral tests: {int(ev_meta.get('behavioral_passed', 0))}/{int(ev_meta['behavioral_total'])}"
            " passed</h3>"
        )
    if evaluate is not None:
        decision = evaluate.meta("report")
        outcome = decision.get("outcome") or OUTCOMES.get(int(ev_meta["outcome"]) if "outcome" in ev_meta else -1, "")
        reason = decision.get("reason", "")
        champion = next((body for h, body in markdown_sections(text) if h == "Champion"), "")
        tone = {"promoted": "ok", "rejected": "bad"}.get(outcome, "warn")
        more = "<br>" + inline_markdown(champion) if champion else ""
        report_link = link_html(report, "the step's report")
        parts.insert(
            0,
            f'<h3>The champion decision</h3><div class="banner {tone}" data-decision="{esc(outcome)}">'
            f"<strong>{esc(outcome or evaluate.status)}</strong>: {esc(reason)}"
            f"{more}<br><small>{report_link}</small></div>",
        )
    return f'<section id="evaluation"><h2>Evaluation</h2>{"".join(parts)}</section>'


def drift_section(run: Run) -> str:
    task = run.one("drift")
    if task is None:
        return ""
    result, metrics = task.meta("result"), task.meta("metrics")
    if result.get("skipped"):
        verdict, tone = f"not checked: {result['skipped']}", "warn"
    elif result:
        verdict, tone = ("drifted" if result.get("drifted") else "no drift"), ("bad" if result.get("drifted") else "ok")
    else:
        verdict, tone = f"drift step {task.status}", "bad" if task.status == "failed" else "warn"
    reasons = "".join(f"<li>{esc(str(r))}</li>" for r in result.get("reasons") or [])
    numbers = ", ".join(f"{k} {fmt(v, 3)}" for k, v in metrics.items() if k not in ("drifted", "skipped"))
    retrain = "" if "retrain" not in result else f" \u00b7 retrain: {fmt(bool(result['retrain']))}"
    report_link = link_html(task.artifacts.get("report"), "the drift report")
    drifted = esc(fmt(result.get("drifted")))
    return (
        f'<section id="drift"><h2>Drift</h2><div class="banner {tone}" data-drifted="{drifted}">'
        f"<strong>{esc(verdict)}</strong>{retrain}<br><small>{esc(numbers)}{DOT}{report_link}</small></div>"
        f"{f'<ul>{reasons}</ul>' if reasons else ''}</section>"
    )


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _short_meta(meta: dict, limit: int = 140) -> str:
    text = json.dumps(meta, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def artifacts_section(run: Run) -> str:
    rows = []
    for task in run.tasks:
        for a in task.artifacts.values():
            exists = a.path.exists()
            original = os.path.relpath(a.path, run.dir) if exists else ""
            rows.append(
                [
                    esc(task.label),
                    f"<code>{esc(a.name)}</code>",
                    link_html(a),
                    f'<a href="{esc(original)}">{esc(original)}</a>' if exists and original != a.named else "",
                    ("folder " if a.is_dir else "") + (_size(a.size) if exists else ""),
                    f"<code>{esc(_short_meta(a.metadata))}</code>" if a.metadata else "",
                ]
            )
    table = html_table(["step", "output", "open", "as kfp wrote it", "size", "metadata"], rows)
    return f'<section id="artifacts"><h2>Artifacts</h2>{table}</section>'
