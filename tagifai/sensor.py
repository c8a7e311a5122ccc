"""The sensor of the continual-learning loop: is there enough new data in the projects source to retrain?

KFP and Vertex AI have no sensors, so this is a step of the suite (``components/sense.py``, the ``sensor``
pipeline, ``tagifai sense`` / ``tagifai watch``). It is cheap: it reads only the ``id`` and ``created_on``
columns of the projects source and one row of the warehouse's state table.

**The watermark** (state ``continual`` in ``main.tagifai_watermark``, through
:meth:`tagifai.warehouse.Warehouse.read_state` / ``write_state``) says what the last successful ``continual``
run processed::

    {"last_created_on": "2020-05-01T10:00:00", "content_hash": "<sha256>", "rows": 400,
     "run_key": "continual-0123456789ab", "written_at": "2026-12-02T07:00:00+00:00"}

``content_hash`` is the sha256 of the sorted ``(id, created_on)`` pairs of the rows up to
``last_created_on``.

**New rows** are the rows whose ``created_on`` is after the watermark's ``last_created_on``: the source is
append-only by creation time, so this needs no list of processed ids (which would grow with the source).
Rows that appear (or change, or disappear) at or before the watermark are not counted as new; they change
the content hash of that range, which the decision reports as ``history_changed`` (a drift check is then
needed, and the run key changes, but they alone do not trigger a retraining).

**The run key** names the data a run would process: ``continual-`` + the first 12 hex digits of
sha256(``last_created_on`` + ``|`` + ``content_hash``) of the *new* watermark (all rows of the source now).
The same data always gives the same key (Kubeflow/Vertex-safe: lowercase, digits, hyphens, 22 characters),
so it is the idempotency key of the run: ``tagifai sense --run`` records
``$TAGIFAI_HOME/sensor/<run_key>.json``, ``tagifai sense --submit kubeflow`` names the KFP run by it (and
submits nothing when a run of that name exists), and ``--submit vertex`` and the Cloud Run function
(functions/vertex_sensor) use it as the Vertex ``job_id``, which Vertex refuses to reuse. With nothing
new it is the current watermark's key.

:func:`advance` writes the new watermark, only after the triggered run succeeded; :func:`advance_for`
re-senses first and refuses (returns False) when the run key no longer matches, so a stale advance cannot
move the watermark past data the run did not process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from tagifai.sources import SourceError, _sniff_separator, detect_format
from tagifai.warehouse import parse_warehouse

#: The state name of the continual loop's watermark.
WATERMARK = "continual"
RUN_KEY_PREFIX = "continual-"
_COLUMNS = ("id", "created_on")


@dataclass(frozen=True)
class Snapshot:
    """The ``(id, created_on)`` pairs of a source, sorted by id (created_on as ISO text, seconds)."""

    source: str
    rows: list[tuple[int, str]]

    @property
    def last_created_on(self) -> str | None:
        return max((c for _, c in self.rows), default=None)

    def content_hash(self, until: str | None = None) -> str:
        """sha256 of the pairs with ``created_on <= until`` (all of them when ``until`` is None)."""
        digest = hashlib.sha256()
        for id_, created in self.rows:
            if until is None or created <= until:
                digest.update(f"{id_}\t{created}\n".encode())
        return digest.hexdigest()

    def count_after(self, moment: str) -> int:
        return sum(1 for _, c in self.rows if c > moment)


@dataclass(frozen=True)
class Decision:
    """What the sensor decided, and the watermark a successful run would leave (``last_created_on``, ...)."""

    retrain: bool
    new_rows: int
    drift_check_needed: bool
    run_key: str
    reason: str
    source: str
    rows: int
    last_created_on: str | None
    content_hash: str
    history_changed: bool
    previous: dict | None
    sensed_at: str

    def to_dict(self) -> dict:
        return asdict(self)

    def watermark(self) -> dict:
        """The watermark :func:`advance` writes for this decision."""
        return {
            "last_created_on": self.last_created_on,
            "content_hash": self.content_hash,
            "rows": self.rows,
            "run_key": self.run_key,
            "source": self.source,
        }


def run_key(last_created_on: str | None, content_hash: str) -> str:
    """``continual-<12 hex>``: deterministic for the data, valid as a Kubeflow/Vertex run or resource name."""
    digest = hashlib.sha256(f"{last_created_on or ''}|{content_hash}".encode()).hexdigest()
    return f"{RUN_KEY_PREFIX}{digest[:12]}"


def _local_path(uri: str) -> str | None:
    """The local path of ``uri`` (plain path or file://), None for a remote source."""
    if "://" not in uri:
        return uri
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "file" else None


def read_snapshot(projects_source: str) -> Snapshot:
    """The ``id`` and ``created_on`` of every row of the projects source.

    A local file is read by DuckDB (``read_csv``/``read_json``/``read_parquet``, only the two columns, no
    pandas; a CSV's separator sniffed as :mod:`tagifai.sources` does). A remote one (http(s)://, gs://) is
    read with :func:`tagifai.sources.read_raw` (fsspec and its credentials; DuckDB would need its httpfs
    extension downloaded at run time). :class:`SourceError` names the source and the column when a column
    is missing, an id is not an integer or is duplicated, or a created_on is not a timestamp.
    """
    fmt = detect_format(projects_source)
    path = _local_path(projects_source)
    if path is None:
        return _snapshot_remote(projects_source)
    if not Path(path).is_file():
        raise SourceError(f"{projects_source}: no such file")
    import duckdb

    if fmt == "csv":
        reader = "read_csv(?, all_varchar = true, header = true, delim = ?)"
        params: list = [path, _sniff_separator(path)]
    elif fmt == "json":
        reader, params = "read_json_auto(?)", [path]
    else:
        reader, params = "read_parquet(?)", [path]
    with duckdb.connect(":memory:") as con:
        try:
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}", params).fetchall()]
        except duckdb.Error as exc:
            raise SourceError(f"{projects_source}: could not read as {fmt}: {exc}") from exc
        lowered = {c.strip().lower(): c for c in columns}
        missing = [c for c in _COLUMNS if c not in lowered]
        if missing:
            raise SourceError(
                f"{projects_source}: missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}"
            )
        id_col, created_col = (lowered[c].replace('"', '""') for c in _COLUMNS)
        select = (
            f'SELECT CAST("{id_col}" AS VARCHAR), TRY_CAST(TRIM(CAST("{id_col}" AS VARCHAR)) AS BIGINT), '
            f'CAST("{created_col}" AS VARCHAR), TRY_CAST("{created_col}" AS TIMESTAMP) FROM {reader}'
        )
        try:
            raw = con.execute(select, params).fetchall()
        except duckdb.Error as exc:
            raise SourceError(f"{projects_source}: could not read id and created_on: {exc}") from exc
    return _checked(projects_source, raw)


def _snapshot_remote(projects_source: str) -> Snapshot:
    import pandas as pd

    from tagifai.sources import read_raw

    df = read_raw(projects_source)
    lowered = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in _COLUMNS if c not in lowered]
    if missing:
        found = ", ".join(map(str, df.columns)) or "none"
        raise SourceError(f"{projects_source}: missing column(s) {', '.join(missing)}; found {found}")
    ids = df[lowered["id"]]
    created = df[lowered["created_on"]]
    parsed_ids = pd.to_numeric(ids, errors="coerce")
    parsed_times = pd.to_datetime(created, errors="coerce", utc=True).dt.tz_localize(None)
    raw = [
        (
            None if pd.isna(i) else str(i),
            None if pd.isna(p) or float(p) != int(p) else int(p),
            None if pd.isna(c) else str(c),
            None if pd.isna(t) else t.to_pydatetime(),
        )
        for i, p, c, t in zip(ids, parsed_ids, created, parsed_times, strict=True)
    ]
    return _checked(projects_source, raw)


def _checked(source: str, raw: list[tuple]) -> Snapshot:
    """Rows of (id text, id int, created_on text, created_on timestamp) checked and made into a Snapshot."""
    bad_ids = [(n, i) for n, (i, parsed, _, _) in enumerate(raw, start=1) if parsed is None]
    if bad_ids:
        sample = ", ".join(f"row {n}: {i!r}" for n, i in bad_ids[:5])
        raise SourceError(f"{source}: column id: {len(bad_ids)} value(s) not an integer ({sample})")
    bad_times = [(n, c) for n, (_, _, c, t) in enumerate(raw, start=1) if t is None]
    if bad_times:
        sample = ", ".join(f"row {n}: {c!r}" for n, c in bad_times[:5])
        raise SourceError(f"{source}: column created_on: {len(bad_times)} value(s) not a timestamp ({sample})")
    pairs: dict[int, str] = {}
    duplicated: list[int] = []
    for _, id_, _, moment in raw:
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        if id_ in pairs:
            duplicated.append(id_)
        pairs[id_] = moment.isoformat(timespec="seconds")
    if duplicated:
        raise SourceError(f"{source}: column id: duplicated id(s) {', '.join(map(str, sorted(set(duplicated))[:5]))}")
    return Snapshot(source, sorted(pairs.items()))


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


def decide(
    snapshot: Snapshot,
    watermark: dict | None,
    min_new_rows: int,
    max_age_days: float,
    now: dt.datetime | None = None,
) -> Decision:
    """The decision for ``snapshot`` against ``watermark`` (pure: no I/O)."""
    now = _now(now)
    last = snapshot.last_created_on
    content = snapshot.content_hash()
    key = run_key(last, content)
    common = dict(
        run_key=key,
        source=snapshot.source,
        rows=len(snapshot.rows),
        last_created_on=last,
        content_hash=content,
        previous=watermark,
        sensed_at=now.isoformat(timespec="seconds"),
    )
    if watermark is None:
        new = len(snapshot.rows)
        reason = "no watermark yet: first run" if new else "the source has no rows"
        return Decision(
            retrain=new > 0, new_rows=new, drift_check_needed=new > 0, history_changed=False, reason=reason, **common
        )
    mark = watermark.get("last_created_on")
    new = snapshot.count_after(mark) if mark else len(snapshot.rows)
    history_changed = snapshot.content_hash(mark) != watermark.get("content_hash") if mark else False
    written = watermark.get("written_at")
    age_days = (now - dt.datetime.fromisoformat(written)).total_seconds() / 86400 if written else None
    if new >= min_new_rows:
        retrain, reason = True, f"{new} new row(s) >= {min_new_rows}"
    elif new and age_days is not None and age_days >= max_age_days:
        retrain, reason = True, f"{new} new row(s) and the watermark is {age_days:.1f} days old (>= {max_age_days})"
    elif new:
        retrain, reason = False, f"{new} new row(s) < {min_new_rows}"
    else:
        retrain, reason = False, "nothing new"
    if history_changed:
        reason += "; rows at or before the watermark changed"
    if not new and not history_changed:
        key = watermark.get("run_key") or key
    return Decision(
        retrain=retrain,
        new_rows=new,
        drift_check_needed=bool(new) or history_changed,
        history_changed=history_changed,
        reason=reason,
        **{**common, "run_key": key},
    )


def sense(
    projects_source: str,
    warehouse_uri: str,
    min_new_rows: int,
    max_age_days: float,
    now: dt.datetime | None = None,
    name: str = WATERMARK,
) -> Decision:
    """Read the source's ids and timestamps and the watermark ``name``; decide whether to retrain."""
    if min_new_rows < 1:
        raise ValueError(f"min_new_rows must be >= 1, not {min_new_rows}")
    if max_age_days <= 0:
        raise ValueError(f"max_age_days must be > 0, not {max_age_days}")
    snapshot = read_snapshot(projects_source)
    watermark = parse_warehouse(warehouse_uri).read_state(name)
    return decide(snapshot, watermark, min_new_rows, max_age_days, now)


def advance(warehouse_uri: str, decision: Decision, now: dt.datetime | None = None, name: str = WATERMARK) -> dict:
    """Write ``decision``'s watermark (after its run succeeded); the watermark now stored.

    Idempotent: when the stored watermark already has the decision's run key, nothing is written.
    """
    wh = parse_warehouse(warehouse_uri)
    current = wh.read_state(name)
    if current is not None and current.get("run_key") == decision.run_key:
        return current
    value = {**decision.watermark(), "written_at": _now(now).isoformat(timespec="seconds")}
    wh.write_state(name, value)
    return value


def advance_for(
    projects_source: str,
    warehouse_uri: str,
    key: str,
    now: dt.datetime | None = None,
    name: str = WATERMARK,
) -> tuple[bool, Decision]:
    """Re-sense, and advance only when the source still gives run key ``key``: ``(advanced, decision)``.

    A different key means the source changed since the run was decided: the run did not process all of it,
    so the watermark stays and the next sense counts those rows again (at least once, never skipped).
    """
    decision = sense(projects_source, warehouse_uri, min_new_rows=1, max_age_days=1.0, now=now, name=name)
    if decision.run_key != key:
        return False, decision
    advance(warehouse_uri, decision, now=now, name=name)
    return True, decision
