"""A validation result as one self-contained HTML page (the step's HTML artifact).

GX's own renderer draws the page; it is then made to stand alone: one title, a summary banner, no links
into a Data Docs site that an artifact does not have, no stylesheet, script or icon font fetched from a
CDN (GX links Bootstrap, jQuery, Vega and Font Awesome; offline the page was unstyled and the Status
column blank, its marks being icon-font glyphs), the status icons as text marks (✔ passed, ✘ failed, ⚠
other), and a small inline stylesheet that keeps it readable. When GX's renderer fails, a plain page of
the report is written instead.
"""

from __future__ import annotations

import html as _html
import json
import re
from typing import Any

from tagifai.validation.failures import short
from tagifai.validation.report import ValidationReport

_FALLBACK_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top;text-align:left}
.tagifai-summary{padding:.5rem 1rem;margin-bottom:1rem;border-left:4px solid #888}
.tagifai-ok{border-color:#2a2}.tagifai-fail{border-color:#c22}
.tagifai-mark{font-weight:700}.tagifai-pass{color:#1b7f1b}.tagifai-failed{color:#c22}.tagifai-other{color:#a60}
"""
#: An external stylesheet or script (GX's page template links its CDN assets).
_EXTERNAL = re.compile(
    r'<link\b[^>]*\bhref="(?:https?:)?//[^"]*"[^>]*/?>|<script\b[^>]*\bsrc="(?:https?:)?//[^"]*"[^>]*>\s*</script>',
    re.I,
)
#: A Font Awesome icon: ``<i class="fas fa-check-circle text-success" ...></i>``.
_ICON = re.compile(r'<i class="fa[srb]? fa-([\w-]+)[^"]*"[^>]*>\s*</i>')
_MARKS = {"check-circle": ("\u2714", "pass"), "check": ("\u2714", "pass"), "times": ("\u2718", "failed")}


def _mark(match: re.Match) -> str:
    text, kind = _MARKS.get(match.group(1), ("\u26a0", "other"))
    label = {"pass": "passed", "failed": "failed"}.get(kind, match.group(1).replace("-", " "))
    return f'<span class="tagifai-mark tagifai-{kind}" title="{label}">{text}</span>'


def render_html(result: Any, report: ValidationReport) -> str:
    """One HTML page of the validation result, rendered by GX (own table if GX's renderer fails).

    GX's page carries its own styles inline; its CDN assets are dropped and its icons made text marks.
    """
    try:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        document = ValidationResultsPageRenderer().render(result)
        page = DefaultJinjaPageView().render(document, template="page_minimal.j2")
    except Exception as exc:  # noqa: BLE001 - any renderer failure falls back to a plain page
        return fallback_html(report, note=f"GX renderer failed: {exc}")
    return _standalone(page, report)


def _banner(report: ValidationReport) -> str:
    css = "tagifai-ok" if report.success else "tagifai-fail"
    return f'<div class="tagifai-summary {css}"><strong>{_html.escape(report.summary())}</strong></div>'


def _standalone(page: str, report: ValidationReport) -> str:
    """GX's page with one title, the summary banner, the offline styles and no links out of it."""
    title = _html.escape(report.summary())
    page = re.sub(r"<title>[^<]*</title>", "", page)
    page = page.replace("<head>", f"<head>\n    <title>{title}</title>", 1)
    page = re.sub(r'<link rel="shortcut icon"[^>]*>', "", page)
    page = re.sub(r'href="\.\./[^"]*"', 'href="#"', page)
    page = _EXTERNAL.sub("", page)
    page = _ICON.sub(_mark, page)
    page = page.replace("</head>", f"<style>{_FALLBACK_CSS}</style></head>", 1)
    return page.replace('<div class="container-fluid', _banner(report) + '<div class="container-fluid', 1)


def _failure_rows(report: ValidationReport) -> str:
    esc = _html.escape
    return "".join(
        "<tr>"
        f"<td>{esc(f['expectation'])}</td><td>{esc(', '.join(map(str, f.get('columns') or [])))}</td>"
        f"<td>{esc(json.dumps(f['kwargs'], default=str))}</td>"
        f"<td>{esc(str(f.get('unexpected_count')))}</td>"
        f"<td>{esc(', '.join(short(v) for v in f.get('sample_unexpected') or []))}</td>"
        f"<td>{esc(f.get('exception') or '')}</td>"
        "</tr>"
        for f in report.failures
    )


def fallback_html(report: ValidationReport, note: str = "") -> str:
    """A plain page of the report: its counts and a table of the failed expectations."""
    esc = _html.escape
    rows = _failure_rows(report)
    table = (
        "<table><tr><th>expectation</th><th>column(s)</th><th>kwargs</th><th>unexpected</th>"
        f"<th>sample</th><th>error</th></tr>{rows}</table>"
        if rows
        else "<p>All expectations met.</p>"
    )
    metrics = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in report.to_metrics().items())
    css = "tagifai-ok" if report.success else "tagifai-fail"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(report.summary())}</title>"
        f"<style>{_FALLBACK_CSS}</style></head><body>"
        f"<div class='tagifai-summary {css}'>"
        f"<strong>{esc(report.summary())}</strong></div><table>{metrics}</table>{table}"
        f"{f'<p><small>{esc(note)}</small></p>' if note else ''}</body></html>"
    )


_TABLE_LEVEL = "Table-Level Expectations"


def _observed(outcome: Any) -> str:
    """What an expectation saw, in words: unexpected counts with samples, or the observed value."""
    result = outcome.result or {}
    if outcome.exception_info.get("raised_exception"):
        return str(outcome.exception_info.get("exception_message"))
    if "unexpected_count" in result:
        count = result["unexpected_count"]
        if not count:
            return "0 unexpected"
        pct = result.get("unexpected_percent")
        text = f"{count} unexpected" + (f" ({pct:.2f}%)" if pct is not None else "")
        samples = []
        for v in result.get("partial_unexpected_list") or []:
            if v not in samples:
                samples.append(v)
        return text + (f"; e.g. {', '.join(short(v) for v in samples[:5])}" if samples else "")
    return short(result.get("observed_value"), 300)


def render_sql_page(result: Any, report: ValidationReport) -> str:
    """One self-contained page of a result of :mod:`tagifai.validation.sql`, laid out like GX's: the
    summary banner, then one table a section (table-level, then each column) of status mark,
    expectation and observed value; failed rows first in each section."""
    esc = _html.escape
    sections: dict[str, list] = {}
    for outcome in result.results:
        kwargs = outcome.expectation_config.kwargs
        key = kwargs.get("column") or (", ".join(kwargs["column_list"]) if "column_list" in kwargs else _TABLE_LEVEL)
        sections.setdefault(key, []).append(outcome)
    order = sorted(sections, key=lambda k: k != _TABLE_LEVEL)
    blocks = []
    for key in order:
        rows = []
        for outcome in sorted(sections[key], key=lambda o: o.success):
            config = outcome.expectation_config
            shown = {k: v for k, v in config.kwargs.items() if k not in ("column", "column_list")}
            kind = "pass" if outcome.success else "failed"
            mark = "\u2714" if outcome.success else "\u2718"
            label = "passed" if outcome.success else "Failed"
            rows.append(
                f'<tr><td><span class="tagifai-mark tagifai-{kind}" title="{label}">{mark}</span> {label}</td>'
                f"<td>{esc(config.type)} {esc(short(shown, 300)) if shown else ''}</td>"
                f"<td>{esc(_observed(outcome))}</td></tr>"
            )
        blocks.append(
            f"<h3>{esc(key)}</h3><table><tr><th>Status</th><th>Expectation</th><th>Observed Value</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    metrics = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in report.to_metrics().items())
    css = "tagifai-ok" if report.success else "tagifai-fail"
    note = (
        f"Expectation suite {esc(report.suite)!s} (Great Expectations format, great_expectations/gx/expectations) "
        "evaluated as SQL in DuckDB by tagifai.validation.sql; TAGIFAI_VALIDATION_ENGINE=gx renders GX's own page."
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(report.summary())}</title>"
        f"<style>{_FALLBACK_CSS}</style></head><body>"
        f"<div class='tagifai-summary {css}'><strong>{esc(report.summary())}</strong></div>"
        f"<p><small>{note}</small></p><table>{metrics}</table>{''.join(blocks)}</body></html>"
    )
