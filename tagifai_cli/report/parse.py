"""What the steps' own reports say, read back: a Great Expectations validation page, a Markdown report.

The validate step writes only counts as Metrics; which expectation passed or failed is in its HTML page
(GX's renderer: one table per column with a status icon per row; or tagifai's plain fallback page, a
table of the failed expectations). The transform and evaluate steps write Markdown with tables.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Expectation:
    section: str  # the column, or "Table-Level Expectations"
    text: str
    observed: str
    passed: bool


@dataclass
class _Table:
    section: str
    headers: list[str] = field(default_factory=list)
    rows: list[tuple[list[str], list[str]]] = field(default_factory=list)  # (cell texts, icon classes per cell)
    row: list[str] | None = None
    icons: list[str] | None = None
    cell: list[str] | None = None
    header_cell: list[str] | None = None


class _Pages(HTMLParser):
    """Every table of a page (nested tables flattened into their cell), with the heading above it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[_Table] = []
        self.stack: list[_Table] = []
        self.section = ""
        self.heading: list[str] | None = None
        self.banner: list[str] | None = None
        self.banner_depth = 0
        self.banner_text = ""
        self.depth = 0
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag in ("script", "style"):
            self.skip += 1
        if tag == "div":
            self.depth += 1
            if "tagifai-summary" in classes and self.banner is None:
                self.banner, self.banner_depth = [], self.depth
        if tag in ("h1", "h2", "h3", "h4", "h5") and not self.stack:
            self.heading = []
        table = self.stack[-1] if self.stack else None
        if tag == "table":
            self.stack.append(_Table(self.section))
        elif table is None:
            return
        elif tag == "tr":
            table.row, table.icons = [], []
        elif tag == "td" and table.row is not None:
            table.cell = []
            table.icons.append("")
        elif tag == "th":
            table.header_cell = []
        elif tag in ("i", "span") and table.icons:  # GX's icon, or the text mark that replaced it
            table.icons[-1] += " " + " ".join(classes)
        elif tag == "br" and table.cell is not None:
            table.cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        if tag == "div":
            if self.banner is not None and self.depth == self.banner_depth and not self.banner_text:
                self.banner_text = _squash("".join(self.banner))
            self.depth -= 1
        if tag in ("h1", "h2", "h3", "h4", "h5") and self.heading is not None:
            self.section = _squash("".join(self.heading))
            self.heading = None
        if not self.stack:
            return
        table = self.stack[-1]
        if tag == "table":
            self.stack.pop()
            self.tables.append(table)
            if self.stack and self.stack[-1].cell is not None:  # a table inside a cell: its text joins the cell
                flat = "; ".join(", ".join(cells) for cells, _ in table.rows)
                self.stack[-1].cell.append(f" [{', '.join(table.headers)}: {flat}]" if table.headers else f" [{flat}]")
        elif tag == "th" and table.header_cell is not None:
            table.headers.append(_squash("".join(table.header_cell)))
            table.header_cell = None
        elif tag == "td" and table.cell is not None and table.row is not None:
            table.row.append(_squash("".join(table.cell)))
            table.cell = None
        elif tag == "tr" and table.row is not None:
            if table.row:
                table.rows.append((table.row, table.icons or []))
            table.row, table.icons = None, None

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.banner is not None and not self.banner_text:
            self.banner.append(data)
        if self.heading is not None:
            self.heading.append(data)
        if self.stack:
            table = self.stack[-1]
            if table.header_cell is not None:
                table.header_cell.append(data)
            elif table.cell is not None:
                table.cell.append(data)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def validation_page(text: str) -> tuple[str, list[Expectation]]:
    """The summary line and the expectations of a validate step's HTML page, the failed ones first."""
    pages = _Pages()
    pages.feed(text)
    pages.close()
    found: list[Expectation] = []
    for table in pages.tables:
        heads = [h.lower() for h in table.headers]
        if heads[:2] == ["status", "expectation"]:  # GX's page: status icon, expectation, observed value
            for cells, icons in table.rows:
                if len(cells) < 2:
                    continue
                icon = icons[0] if icons else ""
                passed = "fa-check" in icon or "text-success" in icon or "tagifai-pass" in icon
                found.append(Expectation(table.section, cells[1], cells[2] if len(cells) > 2 else "", passed))
        elif heads[:2] == ["expectation", "column(s)"]:  # tagifai's plain page lists the failed ones
            for cells, _ in table.rows:
                count, sample, error = (cells + ["", "", "", "", "", ""])[3:6]
                observed = "; ".join(
                    part
                    for part in (
                        f"{count} unexpected" if count not in ("", "None") else "",
                        sample and f"e.g. {sample}",
                        error,
                    )
                    if part
                )
                found.append(Expectation(cells[1] if len(cells) > 1 else "", cells[0], observed, False))
    if not pages.banner_text:
        match = re.search(r"<title>([^<]*)</title>", text)
        pages.banner_text = html.unescape(match.group(1)).strip() if match else ""
    found.sort(key=lambda e: e.passed)
    return pages.banner_text, found


@dataclass
class MarkdownTable:
    heading: str
    header: list[str]
    rows: list[list[str]]

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.header, row, strict=False)) for row in self.rows]


_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _cells(line: str) -> list[str]:
    line = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|").strip("*").strip("`") for c in re.split(r"(?<!\\)\|", line)]


def markdown_tables(text: str) -> list[MarkdownTable]:
    """The pipe tables of a Markdown text, each with the heading above it."""
    lines = text.splitlines()
    tables: list[MarkdownTable] = []
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and i + 1 < len(lines) and _RULE.match(lines[i + 1].strip()):
            header, rows = _cells(line), []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append(MarkdownTable(heading, header, rows))
            continue
        i += 1
    return tables


def markdown_sections(text: str) -> list[tuple[str, str]]:
    """(heading, its paragraphs without tables) of a Markdown text; text before any heading has heading ""."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            sections.append((stripped.lstrip("#").strip(), []))
        elif not stripped.startswith("|"):
            sections[-1][1].append(line)
    return [(h, "\n".join(body).strip()) for h, body in sections if h or "\n".join(body).strip()]


def inline_markdown(text: str) -> str:
    """Escaped text with Markdown's ``**bold**`` and ```code``` as HTML."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
