"""Synthetic Made With ML data: N projects made from the real rows, for the benchmarks (issue 13).

Every synthetic row copies one real row of ``projects.csv`` joined with ``tags.csv`` (data/madewithml, or
``--source``/DATA_DIR) and changes what makes it a new project:

- **id**: ``id_start + i`` for row ``i`` (default from 100000, above every real id), unique;
- **created_on**: spread evenly over ``[start, end)`` in id order with a random jitter of under one slot, to
  the second (default 2020-02-20, the first real project, to 2025-12-31);
- **text**: the rows come in blocks of one copy of every real row each, shuffled within the block; copy
  ``c`` of a real row swaps two adjacent words of its title (``c % 4``: none, words 1-2, 2-3 or 3-4, when
  the title has them) and appends to its description ``k`` words of a fixed neutral vocabulary of 64 that
  spell ``c`` in base 64 (``k = max(2, digits needed for the last copy)``). The last ``k`` words recover
  ``c`` and the rest the real description, so no two rows share title and description (the real rows do
  not, after trimming, and the title swap is a bijection): the validation suites' compound uniqueness
  holds at every size. The suffix adds ``k`` words (2 below 3.1M rows, 3 to 200M) to about 20;
- **tag**: the real row's, so every full block has exactly the real tag mix (the last, partial block is a
  random subset).

Titles have their whitespace runs made single spaces, descriptions are trimmed (dbt trims both), nothing
else: the columns, types and formats are the real files' (``id,created_on,title,description`` and
``id,tag``; timestamps ``YYYY-MM-DD HH:MM:SS``), so the sync step, the Great Expectations suites and the
dbt tests accept the output as they accept the real files. Rows are generated and written in chunks of
whole blocks (about a million rows), with pyarrow: 10M rows take about a minute and a few hundred MB.

    python benchmarks/synth.py --rows 1000000 --out /tmp/synth            # projects.csv, tags.csv
    python benchmarks/synth.py --rows 1000000 --out /tmp/synth --format parquet --seed 1
    python benchmarks/synth.py --rows 50000 --out D --start 2024-01-01 --end 2024-07-01 --id-start 5000000

As a module: :func:`generate` (two DataFrames, for small N) and :func:`write` (the files, any N).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = Path(os.environ.get("DATA_DIR") or ROOT / "data" / "madewithml")
DEFAULT_START = "2020-02-20"
DEFAULT_END = "2025-12-31"
DEFAULT_ID_START = 100_000
FORMATS = ("csv", "parquet")
#: Title variants per real row: the title as it is, then adjacent words (1, 2), (2, 3), (3, 4) swapped.
TITLE_VARIANTS = 4
#: The suffix words: copy ``c`` of a real row ends its description with ``c`` in base 64 spelled in these.
SUFFIX_WORDS: tuple[str, ...] = (
    "open", "simple", "fast", "light", "clean", "small", "modern", "robust",
    "modular", "portable", "minimal", "practical", "scalable", "flexible", "reusable", "tested",
    "typed", "annotated", "documented", "guided", "curated", "compact", "concise", "detailed",
    "visual", "interactive", "hosted", "offline", "online", "shared", "public", "community",
    "starter", "template", "notebook", "tutorial", "walkthrough", "handbook", "recipe", "example",
    "demo", "sample", "prototype", "toolkit", "library", "package", "project", "resource",
    "collection", "archive", "snapshot", "release", "edition", "version", "update", "draft",
    "series", "chapter", "lesson", "notes", "summary", "overview", "reference", "companion",
)  # fmt: skip
#: Rows per chunk, rounded down to whole blocks of the real rows.
CHUNK_ROWS = 1_000_000


@dataclass
class Source:
    """The real rows a synthetic set is made from (joined on id, text normalised as dbt would see it)."""

    titles: list[str]
    descriptions: list[str]
    tags: list[str]
    directory: str = ""

    def __len__(self) -> int:
        return len(self.titles)

    def tag_mix(self) -> dict[str, float]:
        """Share of each tag among the real rows."""
        return {str(k): float(v) for k, v in pd.Series(self.tags).value_counts(normalize=True).items()}


def load_source(directory: str | Path = SOURCE_DIR) -> Source:
    """``projects.csv`` inner-joined with ``tags.csv`` on id, ordered by id; titles with single spaces,
    descriptions trimmed; a repeated (title, description) pair keeps its first row."""
    directory = Path(directory)
    projects = pd.read_csv(directory / "projects.csv", dtype=str, keep_default_na=False)
    tags = pd.read_csv(directory / "tags.csv", dtype=str, keep_default_na=False)
    df = projects.merge(tags, on="id", how="inner", validate="one_to_one")
    df = df.assign(id=df["id"].astype("int64")).sort_values("id")
    df["title"] = [" ".join(t.split()) for t in df["title"]]
    df["description"] = [d.strip() for d in df["description"]]
    df = df[(df["title"] != "") & (df["description"] != "") & (df["tag"].str.strip() != "")]
    df = df.drop_duplicates(["title", "description"])
    if df.empty:
        raise SystemExit(f"{directory}: no usable rows in projects.csv joined with tags.csv")
    return Source(df["title"].tolist(), df["description"].tolist(), df["tag"].str.strip().tolist(), str(directory))


def title_variant(title: str, variant: int) -> str:
    """``title`` with words ``variant`` and ``variant + 1`` (1-based) swapped; itself for 0 or a short title."""
    words = title.split(" ")
    if variant <= 0 or variant >= len(words):
        return title
    words[variant - 1], words[variant] = words[variant], words[variant - 1]
    return " ".join(words)


def suffix_width(rows: int, sources: int) -> int:
    """Words of the description suffix: enough to spell the last copy's number in base 64, at least 2."""
    copies = max(1, math.ceil(rows / sources))
    width = 1
    while len(SUFFIX_WORDS) ** width < copies:
        width += 1
    return max(2, width)


def suffix(copy: int, width: int) -> str:
    """The description suffix of copy ``copy``: a space, then ``width`` words spelling it in base 64."""
    base = len(SUFFIX_WORDS)
    digits = [(copy // base**j) % base for j in reversed(range(width))]
    return " " + " ".join(SUFFIX_WORDS[d] for d in digits)


@dataclass
class Options:
    """What a synthetic set is: its size, seed, created_on range and first id."""

    rows: int
    seed: int = 0
    start: str = DEFAULT_START
    end: str = DEFAULT_END
    id_start: int = DEFAULT_ID_START

    def validate(self) -> None:
        if self.rows < 1:
            raise ValueError(f"rows must be at least 1, not {self.rows}")
        if self.id_start < 1:
            raise ValueError(f"id_start must be a positive integer, not {self.id_start}")
        if _seconds(self.end) <= _seconds(self.start):
            raise ValueError(f"end {self.end} must be after start {self.start}")


def _seconds(when: str) -> int:
    """Unix seconds of a date or timestamp (naive, taken as UTC)."""
    return int(pd.Timestamp(when).tz_localize(None).value // 10**9)


def chunks(options: Options, source: Source | None = None) -> Iterator[tuple[pa.Table, pa.Table]]:
    """``(projects, tags)`` as Arrow tables, a chunk of whole blocks at a time (deterministic per seed)."""
    options.validate()
    source = source if source is not None else load_source()
    n_src, n = len(source), options.rows
    rng = np.random.default_rng(options.seed)
    width = suffix_width(n, n_src)
    titles = pa.array(
        [title_variant(t, v) for t in source.titles for v in range(TITLE_VARIANTS)], type=pa.large_string()
    )
    descriptions = pa.array(source.descriptions, type=pa.large_string())
    tags = pa.array(source.tags, type=pa.string())
    start, span = _seconds(options.start), _seconds(options.end) - _seconds(options.start)
    per_chunk = max(1, CHUNK_ROWS // n_src) * n_src
    for first in range(0, n, per_chunk):
        last = min(n, first + per_chunk)
        first_block, blocks = first // n_src, math.ceil((last - first) / n_src)
        order = rng.permuted(np.tile(np.arange(n_src, dtype=np.int64), (blocks, 1)), axis=1).ravel()
        src = order[: last - first]
        i = np.arange(first, last, dtype=np.int64)
        copy = i // n_src
        jitter = rng.random(last - first)
        created = start + np.floor((i + jitter) * (span / n)).astype(np.int64)
        ends = pa.array([suffix(c, width) for c in range(first_block, first_block + blocks)], type=pa.large_string())
        description = pc.binary_join_element_wise(
            descriptions.take(pa.array(src)), ends.take(pa.array(copy - first_block)), pa.scalar("", pa.large_string())
        )
        ids = pa.array(options.id_start + i, type=pa.int64())
        projects = pa.table(
            {
                "id": ids,
                "created_on": pa.array(created, type=pa.timestamp("s")),
                "title": titles.take(pa.array(src * TITLE_VARIANTS + copy % TITLE_VARIANTS)),
                "description": description,
            }
        )
        yield projects, pa.table({"id": ids, "tag": tags.take(pa.array(src))})


def generate(
    rows: int,
    seed: int = 0,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    id_start: int = DEFAULT_ID_START,
    source: Source | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(projects, tags)`` DataFrames of ``rows`` synthetic projects (in memory: for small sizes and tests).
    ``created_on`` is a naive timestamp column here; the files hold it as text, like the real ones."""
    parts = list(chunks(Options(rows, seed, start, end, id_start), source))
    projects = pa.concat_tables([p for p, _ in parts]).to_pandas()
    tags = pa.concat_tables([t for _, t in parts]).to_pandas()
    for df in (projects, tags):
        for col in df.columns:
            if col not in ("id", "created_on"):
                df[col] = df[col].astype(str)
    return projects, tags


@dataclass
class Written:
    """What :func:`write` made."""

    rows: int
    format: str
    projects: str
    tags: str
    bytes: int
    seconds: float
    seed: int
    start: str
    end: str
    id_start: int
    source: str
    source_rows: int
    suffix_words: int
    tag_mix: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def write(
    rows: int,
    out: str | Path,
    fmt: str = "csv",
    seed: int = 0,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    id_start: int = DEFAULT_ID_START,
    source_dir: str | Path = SOURCE_DIR,
) -> Written:
    """Write ``projects.<fmt>`` and ``tags.<fmt>`` of ``rows`` synthetic projects into ``out``."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    began = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = load_source(source_dir)
    paths = {name: out / f"{name}.{fmt}" for name in ("projects", "tags")}
    writers: dict[str, object] = {}
    try:
        for projects, tags in chunks(Options(rows, seed, start, end, id_start), source):
            for name, table in (("projects", projects), ("tags", tags)):
                if fmt == "csv":
                    if "created_on" in table.column_names:  # the real files' text form, to the second
                        table = table.set_column(1, "created_on", table["created_on"].cast(pa.string()))
                    if name not in writers:
                        writers[name] = pacsv.CSVWriter(str(paths[name]), table.schema)
                else:
                    if name not in writers:
                        writers[name] = pq.ParquetWriter(str(paths[name]), table.schema)
                writers[name].write_table(table)
    finally:
        for writer in writers.values():
            writer.close()
    return Written(
        rows=rows,
        format=fmt,
        projects=str(paths["projects"]),
        tags=str(paths["tags"]),
        bytes=sum(p.stat().st_size for p in paths.values()),
        seconds=round(time.perf_counter() - began, 3),
        seed=seed,
        start=start,
        end=end,
        id_start=id_start,
        source=str(source_dir),
        source_rows=len(source),
        suffix_words=suffix_width(rows, len(source)),
        tag_mix=source.tag_mix(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="projects to make")
    parser.add_argument("--out", type=Path, required=True, help="folder for projects.<fmt> and tags.<fmt>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", default="csv", choices=FORMATS)
    parser.add_argument("--start", default=DEFAULT_START, help=f"first created_on (default {DEFAULT_START})")
    parser.add_argument("--end", default=DEFAULT_END, help=f"created_on before this (default {DEFAULT_END})")
    parser.add_argument("--id-start", type=int, default=DEFAULT_ID_START, help="the first id")
    parser.add_argument("--source", type=Path, default=SOURCE_DIR, help="folder with the real projects/tags.csv")
    opts = parser.parse_args(argv)
    try:
        written = write(opts.rows, opts.out, opts.format, opts.seed, opts.start, opts.end, opts.id_start, opts.source)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(written.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
