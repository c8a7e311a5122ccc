"""All local runs: their summaries, and ``runs/index.html`` (f1 and row counts from run to run).

A run's summary is the one its report saved (``runs/<run>/report/summary.json``), else ``last_run.json``
when it names the run, else what ``derive`` makes of its folder (``tagifai runs`` passes the run
summariser for runs from before the reports).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from collections.abc import Callable
from pathlib import Path

from tagifai_cli.report.collect import OWN, pipeline_of, started_at

esc = html.escape
ROW_KEYS = ("raw.projects", "raw.tags", "labeled_projects", "extracted")


def run_dirs(root: Path) -> list[Path]:
    """The run folders under ``root`` (``$TAGIFAI_HOME/runs``), oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and (pipeline_of(p) or (p / OWN / "summary.json").exists())]
    return sorted(found, key=lambda p: (started_at(p) or "~", p.stat().st_mtime))


def run_summary(run_dir: Path, last_run: dict | None = None, derive: Callable[[Path], dict] | None = None) -> dict:
    """The summary of one run (see the module docstring), with ``run`` (its folder name) and ``started``."""
    saved = run_dir / OWN / "summary.json"
    summary: dict = {}
    if saved.exists():
        try:
            summary = json.loads(saved.read_text())
        except ValueError:
            summary = {}
    if not summary and last_run and Path(last_run.get("run_dir") or "").name == run_dir.name:
        summary = {**last_run, "run_dir": str(run_dir)}
    if not summary and derive is not None:
        summary = derive(run_dir)
    if not summary:
        summary = {"pipeline": pipeline_of(run_dir), "status": "unknown", "run_dir": str(run_dir)}
    summary["run"] = run_dir.name
    summary["started"] = started_at(run_dir)
    report = run_dir / "report.html"
    summary["report"] = str(report) if report.exists() else None
    return summary


def read_last_run(home: Path) -> dict | None:
    try:
        return json.loads((home / "last_run.json").read_text())
    except (OSError, ValueError):
        return None


def summaries(home: Path, derive: Callable[[Path], dict] | None = None) -> list[dict]:
    """The summaries of every run under ``home/runs``, oldest first."""
    last = read_last_run(home)
    return [run_summary(d, last, derive) for d in run_dirs(home / "runs")]


def model_version(summary: dict) -> str:
    uri = summary.get("model_uri") or ""
    return "v" + str(uri).rsplit("/", 1)[-1] if uri else ""


def f1_of(summary: dict) -> float | None:
    value = (summary.get("metrics") or {}).get("f1")
    return float(value) if isinstance(value, int | float) else None


def outcome_of(summary: dict) -> str:
    outcome = (summary.get("evaluation") or {}).get("outcome")
    return {2: "promoted", 1: "pending approval", 0: "rejected"}.get(int(outcome), "") if outcome is not None else ""


def _chart(values: list[float | None], labels: list[str], title: str, digits: int) -> str:
    """A small inline SVG line chart of ``values`` (None: no point) from run to run."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    width, height, pad = max(240, 60 * len(values)), 150, 34
    if not points:
        return f'<p class="note">{esc(title)}: no values yet</p>'
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or (abs(high) * 0.05 or 1.0)
    low, high = low - span * 0.15, high + span * 0.15

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (i / max(1, len(values) - 1) if len(values) > 1 else 0.5)
        return x, height - pad - (height - 2 * pad) * (v - low) / (high - low)

    coords = [xy(i, v) for i, v in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4"><title>{esc(labels[i])}: {v:.{digits}f}</title></circle>'
        f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle">{v:.{digits}f}</text>'
        for (x, y), (i, v) in zip(coords, points, strict=True)
    )
    ticks = "".join(
        f'<text x="{xy(i, low)[0]:.1f}" y="{height - 10}" text-anchor="middle">#{i + 1}</text>'
        for i in range(len(values))
    )
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(title)}"><polyline points="{line}"/>{dots}{ticks}</svg>'
        f"<figcaption>{esc(title)}</figcaption></figure>"
    )


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1240px;margin:0 auto;padding:20px 28px}
table{border-collapse:collapse;background:#fff;margin:10px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.succeeded{color:#2e7d32;font-weight:600}
.failed{color:#c62828;font-weight:600}
.note{color:#757575;font-style:italic}
.charts{display:flex;gap:16px;flex-wrap:wrap}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:8px;padding:8px}
figcaption{font-size:12px;color:#757575}
svg.chart polyline{fill:none;stroke:#4c78a8;stroke-width:2}
svg.chart circle{fill:#4c78a8}
svg.chart text{font:11px system-ui,sans-serif;fill:#444}
"""


def write_index(home: Path, runs: list[dict]) -> Path:
    """``home/runs/index.html``: a table of ``runs`` (oldest first) and f1 and row counts from run to run."""
    root = home / "runs"
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    previous: dict = {}
    for n, s in enumerate(runs, start=1):
        f1, before = f1_of(s), f1_of(previous) if previous else None
        change = f" ({f1 - before:+.4f})" if f1 is not None and before is not None else ""
        report = s.get("report")
        name = esc(s["run"])
        link = f'<a href="{esc(os.path.relpath(report, root))}">{name}</a>' if report else name
        counts = s.get("rows") or {}
        seconds = s.get("seconds")
        cells = [
            str(n),
            link,
            esc(s.get("pipeline") or ""),
            f'<span class="{esc(s.get("status") or "")}">{esc(s.get("status") or "unknown")}</span>',
            f"{seconds:.0f} s" if isinstance(seconds, int | float) and seconds else "\u2013",
            (f"{f1:.4f}{change}" if f1 is not None else "\u2013"),
            esc(model_version(s)),
            esc(outcome_of(s)),
            *(str(counts.get(k, "\u2013")) for k in ROW_KEYS),
            {True: "drifted", False: "none"}.get(s.get("drift"), "\u2013"),
        ]
        numeric = {0, 4, 5, 8, 9, 10, 11}
        rows.append(
            f'<tr data-run="{name}">'
            + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(cells))
            + "</tr>"
        )
        previous = s
    header = ["#", "run", "pipeline", "status", "duration", "test f1 (change)", "model", "decision", *ROW_KEYS, "drift"]
    labels = [s["run"] for s in runs]
    charts = _chart([f1_of(s) for s in runs], labels, "test f1, run to run", 4)
    for key in ("raw.projects", "extracted"):
        values = [(s.get("rows") or {}).get(key) for s in runs]
        charts += _chart([float(v) if isinstance(v, int | float) else None for v in values], labels, f"rows {key}", 0)
    table = (
        "<table><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in header)
        + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    body = table if runs else '<p class="note">no runs yet: <code>tagifai run</code> makes one</p>'
    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>tagifai runs</title><style>{CSS}</style></head><body><main><h1>Local runs</h1>"
        f"<p>{len(runs)} run(s) in <code>{esc(str(root))}</code>, oldest first; written {esc(now)}.</p>"
        f'<div class="charts">{charts}</div>{body}</main></body></html>\n'
    )
    path = root / "index.html"
    tmp = path.with_name(".index.html.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
