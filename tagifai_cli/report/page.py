"""The run report as one HTML page: its shell, the header, the pipeline section and the shared helpers.

The data sections are in :mod:`tagifai_cli.report.sections`.

The page stands alone: inline styles, inline SVG, pictures as ``data:`` URIs, a Content-Security-Policy
that lets it load nothing else, and links (relative to the run folder) to the artifacts themselves.
A small script marks ``<body data-images-loaded>`` once every picture has decoded (what the browser test reads).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import tagifai_cli.report.dag as dag_mod
from tagifai_cli.report.collect import Artifact, Run, started_at
from tagifai_cli.report.figures import Figure

esc = html.escape
DOT = " \u00b7 "
OUTCOMES = {2: "promoted", 1: "pending approval", 0: "rejected"}

CSS = """
:root{--ok:#2e7d32;--okbg:#e8f5e9;--bad:#c62828;--badbg:#fdecea;--mute:#757575;--mutebg:#f3f3f3;--warn:#ef6c00}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:34px 0 10px;padding-bottom:4px;border-bottom:2px solid #e0e0e0}
h3{font-size:15px;margin:18px 0 6px}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#eef;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;margin:6px 0 10px;background:#fff}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
nav{margin:10px 0 0;font-size:13px}
nav a{margin-right:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:8px 14px;min-width:130px}
.card .k{display:block;font-size:12px;color:var(--mute)}
.card .v{font-size:20px;font-weight:600}
.banner{padding:10px 16px;border-left:6px solid var(--mute);background:#fff;border-radius:4px;margin:8px 0}
.banner.ok,.st-succeeded .banner{border-color:var(--ok)}
.banner.bad{border-color:var(--bad)}
.banner.warn{border-color:var(--warn)}
.status-succeeded{color:var(--ok);font-weight:600}
.status-failed{color:var(--bad);font-weight:600}
.status-not-run,.status-unknown{color:var(--mute)}
tr.failed td{background:var(--badbg)}
tr.passed td:first-child{color:var(--ok)}
tr.failed td:first-child{color:var(--bad);font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.pipeline{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
.dagbox{background:#fff;border:1px solid #ddd;border-radius:8px;overflow:auto;max-width:100%}
.steps{flex:1 1 460px;min-width:0}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:8px;padding:8px}
figure img{display:block;max-width:100%}
figcaption{font-size:12px;color:var(--mute);margin-top:4px}
.note{color:var(--mute);font-style:italic}
.bar{display:inline-block;height:11px;background:#4c78a8;border-radius:2px;vertical-align:middle}
details{margin:4px 0 10px}
summary{cursor:pointer;color:#1565c0}
svg.dag text{font:12px system-ui,sans-serif}
svg.dag .name{font-weight:600;font-size:13px}
svg.dag .image{fill:#666;font:11px ui-monospace,monospace}
svg.dag .edge{fill:none;stroke:#888;stroke-width:1.4}
svg.dag .group rect{fill:#f5f7fb;stroke:#9fa8da;stroke-dasharray:5 4}
svg.dag .group text{fill:#5c6bc0;font-weight:600}
svg.dag .node rect{stroke-width:1.6}
svg.dag .st-succeeded rect{fill:var(--okbg);stroke:var(--ok)}
svg.dag .st-failed rect{fill:var(--badbg);stroke:var(--bad)}
svg.dag .st-not-run rect,svg.dag .st-unknown rect{fill:var(--mutebg);stroke:#9e9e9e;stroke-dasharray:4 3}
svg.dag .st-failed .status{fill:var(--bad);font-weight:600}
svg.dag .st-succeeded .status{fill:var(--ok)}
svg.dag .st-cached rect{fill:var(--okbg);stroke:var(--ok);stroke-dasharray:6 3}
svg.dag .st-cached .status{fill:var(--ok)}
footer{margin-top:40px;font-size:12px;color:var(--mute)}
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", loaded + "/" + images.length);
  document.body.setAttribute("data-images-loaded", loaded === images.length ? "yes" : "no");
});
"""


def fmt(value, digits: int = 4) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"
    if value is None:
        return "\u2013"
    return str(value)


def status_html(status: str) -> str:
    return f'<span class="status-{esc(status.replace(" ", "-"))}">{esc(status)}</span>'


def html_table(
    header: list[str], rows: list[list[str]], classes: list[str] | None = None, numeric: set[int] = frozenset()
):
    """A table of already-escaped cells."""
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{h}</th>" for i, h in enumerate(header))
    head = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = ""
    for r, row in enumerate(rows):
        css = f' class="{classes[r]}"' if classes and classes[r] else ""
        cells = "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        body += f"<tr{css}>{cells}</tr>"
    return f"<table>{head}<tbody>{body}</tbody></table>"


def figure_html(fig: Figure) -> str:
    if not fig.uri:
        note = f'<span class="note">{esc(fig.note)}</span>'
        return f'<figure class="missing"><figcaption>{esc(fig.title)}: {note}</figcaption></figure>'
    note = f" \u2013 {esc(fig.note)}" if fig.note else ""
    return (
        f'<figure><img src="{fig.uri}" alt="{esc(fig.title)}"><figcaption>{esc(fig.title)}{note}</figcaption></figure>'
    )


def link_html(artifact: Artifact | None, text: str = "") -> str:
    if artifact is None or not artifact.path.exists():
        what = "metadata only" if artifact is not None and artifact.metadata else "not written"
        return f'<span class="note">{what}</span>'
    if not artifact.named:  # outside the run folder: its location, not a link
        return f"<code>{esc(str(artifact.path))}</code>"
    return f'<a href="{esc(artifact.named)}">{esc(text or artifact.named)}</a>'


# --- sections ------------------------------------------------------------------------------------------


def header(run: Run, cards: list[tuple[str, str, str]]) -> str:
    s = run.summary
    status = s.get("status") or "unknown"
    seconds = s.get("seconds")
    when = started_at(run.dir)
    runner = s.get("runner") or "subprocess"
    parts = [f"<strong>{esc(status.upper())}</strong>"]
    if isinstance(seconds, int | float) and seconds:
        parts.append(f"in {seconds:.1f} s")
    if when:
        parts.append(f"started {esc(when)}")
    if s.get("finished_at"):
        parts.append(f"finished {esc(str(s['finished_at']))}")
    parts.append(f"kfp.local {esc(runner)} runner")
    tone = {"succeeded": "ok", "failed": "bad"}.get(status, "warn")
    card_html = "".join(
        f'<div class="card" data-card="{esc(key)}"><span class="k">{esc(label)}</span>'
        f'<span class="v">{value}</span></div>'
        for key, label, value in cards
    )
    failed = [st for st in s.get("steps") or [] if st.get("status") == "failed"]
    failure = "".join(
        f'<p class="status-failed">failed step {esc(st.get("name", ""))}: {esc(st.get("error") or "see the log")}</p>'
        for st in failed
    )
    line = DOT.join(parts)
    return (
        f"<header><h1>{esc(s.get('pipeline') or 'pipeline')} run <code>{esc(run.name)}</code></h1>"
        f'<div class="banner {tone}" data-run-status="{esc(status)}">{line}{failure}</div>'
        f'<div class="cards">{card_html}</div></header>'
    )


def pipeline_section(run: Run, nodes: list[dag_mod.Node], aside: str = "") -> str:
    """The graph, and beside it the steps' table and ``aside``."""
    runner = run.summary.get("runner") or "subprocess"
    note = (
        ""
        if runner == "docker"
        else "the subprocess runner runs every step in this Python; the image is what a cluster runs"
    )
    lay = dag_mod.layout(nodes)
    drawing = dag_mod.svg(nodes, lay, note)
    tasks = {t.key: t for t in run.tasks}
    rows, classes = [], []
    errors = any(node.error for node in nodes)
    for node in nodes:
        task = tasks.get(node.task)
        outputs = ", ".join(
            link_html(a, a.name) if a.path.exists() else f'<span class="note">{esc(a.name)} (metadata)</span>'
            for a in (task.artifacts.values() if task else ())
        )
        seconds = f"{node.seconds:.1f}" if isinstance(node.seconds, int | float) else "\u2013"
        row = [
            f"<strong>{esc(node.name)}</strong>",
            f'<code title="{esc(node.image)}">{esc(node.task or node.key)}</code>',
            status_html(node.status),
            seconds,
            outputs or '<span class="note">none</span>',
        ]
        rows.append([*row, esc(node.error)] if errors else row)
        classes.append("failed" if node.status == "failed" else "")
    header = ["step", "task", "status", "seconds", "outputs", *(["error"] if errors else [])]
    table = html_table(header, rows, classes, {3})
    legend = f'<p class="note">{esc(note)}.</p>' if note else ""
    return (
        f'<section id="pipeline"><h2>Pipeline</h2><div class="pipeline"><div class="dagbox">{drawing}</div>'
        f'<div class="steps">{table}{legend}{aside}</div></div></section>'
    )


def footer(run: Run) -> str:
    s = run.summary
    links = ['<a href="report/summary.json">the run summary (JSON)</a>', '<a href="../index.html">all runs</a>']
    if s.get("log"):
        log = Path(s["log"])
        links.insert(0, f'<a href="{esc(os.path.relpath(log, run.dir))}">the full log</a>')
    return f"<footer>{DOT.join(links)}{DOT}written by <code>tagifai report</code></footer>"


def page(title: str, sections: list[str]) -> str:
    nav = "".join(
        f'<a href="#{k}">{v}</a>'
        for k, v in (
            ("pipeline", "pipeline"),
            ("rows", "rows"),
            ("data", "training data"),
            ("validations", "validations"),
            ("dbt", "dbt"),
            ("optimisation", "optimisation"),
            ("evaluation", "evaluation"),
            ("drift", "drift"),
            ("artifacts", "artifacts"),
        )
        if any(f'id="{k}"' in s for s in sections)
    )
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    head, rest = sections[0], sections[1:]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body><main>{head}<nav>{nav}</nav>{''.join(rest)}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def cards(run: Run, nodes: list[dag_mod.Node]) -> list[tuple[str, str, str]]:
    s = run.summary
    out = [("status", "status", status_html(s.get("status") or "unknown"))]
    if isinstance(s.get("seconds"), int | float) and s["seconds"]:
        out.append(("duration", "duration", f"{s['seconds']:.0f} s"))
    done = sum(n.status == "succeeded" for n in nodes)
    out.append(("steps", "steps succeeded", f"{done}/{len(nodes)}"))
    f1 = (s.get("metrics") or {}).get("f1")
    if isinstance(f1, int | float):
        out.append(("f1", "test f1", f"{f1:.4f}"))
    if s.get("model_uri"):
        version = str(s["model_uri"]).rsplit("/", 1)[-1]
        outcome = (s.get("evaluation") or {}).get("outcome")
        label = OUTCOMES.get(int(outcome), "") if isinstance(outcome, int | float) else ""
        out.append(("model", "model version", f"v{esc(version)}{f' <small>{esc(label)}</small>' if label else ''}"))
    if "drift" in s:
        out.append(("drift", "drift", "drifted" if s["drift"] else "none"))
    rows = s.get("rows") or {}
    if rows:
        key = "extracted" if "extracted" in rows else next(iter(rows))
        out.append(("rows", f"rows ({key})", esc(str(rows[key]))))
    return out
