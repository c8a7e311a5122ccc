"""Composition of the training data: which rows of the curated history a (re)training sees.

Retraining on the newest rows alone forgets what older rows taught (catastrophic forgetting); retraining
on everything forever lets stale rows outweigh the recent ones. :func:`compose` applies a
:class:`CompositionPolicy`:

- ``full`` (the default): the whole history, sorted by id (what extract always wrote);
- ``window``: every row of the recent window (``created_on`` > newest ``created_on`` - ``window_days``)
  plus a replay sample of the older rows, stratified by ``tag``: ``round(replay_share * window rows)``
  rows (rounded half up, at least one when ``replay_share`` > 0 and older rows exist), shared between
  the tags in proportion to the older rows' tag mix (largest remainders), then raised to
  ``replay_min_per_class`` for every tag (capped at the older rows the tag has). Sampled with ``seed``:
  the same rows for the same input, policy and seed.

The composition (what was kept, per class and per month, and the content hash of the result) is what the
extract step writes on its Dataset and the train step logs to MLflow. :func:`content_hash` lives here
(re-exported by :mod:`tagifai.extract`) because the composition records it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import require_columns

#: Values of ``CompositionPolicy.policy`` (the setting ``training_data``).
POLICIES: tuple[str, ...] = ("full", "window")
TIME_COLUMN = "created_on"
CLASS_COLUMN = "tag"
KEY_COLUMN = "id"
#: The composition's fields of the ``window`` policy (None under ``full``).
_WINDOW_FIELDS = (
    "window_days",
    "window_start",
    "window_rows",
    "replay_share",
    "replay_min_per_class",
    "replay_rows",
    "older_rows",
)


def content_hash(df: pd.DataFrame, key: str = KEY_COLUMN) -> str:
    """A sha256 of the rows' values, independent of row order and of the file format."""
    if key in df.columns:
        df = df.sort_values(key, kind="stable")
    digest = hashlib.sha256(_row_hashes(df))
    digest.update(",".join(map(str, df.columns)).encode())
    return digest.hexdigest()


def _row_hashes(df: pd.DataFrame) -> bytes:
    """pandas' hash of each row, in order (a row's hash depends on that row alone)."""
    return pd.util.hash_pandas_object(df.reset_index(drop=True), index=False).to_numpy().tobytes()


class Tally:
    """What :func:`compose` (``full``) and :func:`tagifai.extract.describe` say of a table, gathered from its rows
    batch by batch (sorted by :data:`KEY_COLUMN`, as :meth:`tagifai.warehouse.base.Warehouse.iter_rows` gives
    them): the same values as computed on the whole, with the memory of one batch."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns: list[str] | None = None
        self._digest = hashlib.sha256()
        self._per_class: dict[str, int] = {}
        self._per_period: dict[str, int] = {}
        self._times: list[Any] = []

    def add(self, df: pd.DataFrame) -> None:
        if self.columns is None:
            self.columns = list(map(str, df.columns))
        elif list(map(str, df.columns)) != self.columns:
            raise ValueError(f"batch columns {list(df.columns)} differ from the first batch's {self.columns}")
        self.rows += len(df)
        self._digest.update(_row_hashes(df))
        times = pd.to_datetime(df[TIME_COLUMN]) if TIME_COLUMN in df.columns else None
        periods = _per_period(times) if times is not None else {}
        for total, part in ((self._per_class, _per_class(df)), (self._per_period, periods)):
            for k, v in part.items():
                total[k] = total.get(k, 0) + v
        if times is not None and len(df):
            self._times += [times.min(), times.max()]

    def content_hash(self) -> str:
        digest = self._digest.copy()
        digest.update(",".join(self.columns or []).encode())
        return digest.hexdigest()

    def composition(self, seed: int) -> dict[str, Any]:
        """:func:`compose`'s composition of the ``full`` policy."""
        return {
            "policy": "full",
            **dict.fromkeys(_WINDOW_FIELDS),
            "seed": int(seed),
            "rows": self.rows,
            "rows_per_class": dict(sorted(self._per_class.items())),
            "rows_per_period": dict(sorted(self._per_period.items())),
            "content_hash": self.content_hash(),
            "notes": [],
        }

    def time_range(self) -> tuple[Any, Any] | None:
        """(min, max) of ``created_on`` as ``pd.to_datetime`` of the whole gives them (None: no rows or column)."""
        if not self._times:
            return None
        times = pd.Series(self._times)
        return times.min(), times.max()


@dataclass(frozen=True)
class CompositionPolicy:
    """How to compose the training data (module docstring). Invalid values are a ValueError naming the field."""

    policy: str = "full"
    window_days: float = 90.0
    replay_share: float = 0.3
    replay_min_per_class: int = 10

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"training_data (policy): expected one of {', '.join(POLICIES)}, got {self.policy!r}")
        days = self.window_days
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not math.isfinite(days) or days <= 0:
            raise ValueError(f"window_days: expected a number of days > 0, got {days!r}")
        share = self.replay_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(f"replay_share: expected a share of the window's rows in [0, 1], got {share!r}")
        least = self.replay_min_per_class
        if isinstance(least, bool) or not isinstance(least, (int, np.integer)) or least < 0:
            raise ValueError(f"replay_min_per_class: expected an integer >= 0, got {least!r}")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CompositionPolicy:
        """The policy of ``settings`` (``training_data``, ``window_days``, ``replay_share``,
        ``replay_min_per_class``), with ``overrides`` (same names; None: the setting) on top."""
        unknown = set(overrides) - {"training_data", "window_days", "replay_share", "replay_min_per_class"}
        if unknown:
            raise TypeError(f"unknown composition setting(s): {', '.join(sorted(unknown))}")
        values = {
            name: overrides[name] if overrides.get(name) is not None else getattr(settings, name)
            for name in ("training_data", "window_days", "replay_share", "replay_min_per_class")
        }
        return cls(
            policy=values["training_data"],
            window_days=values["window_days"],
            replay_share=values["replay_share"],
            replay_min_per_class=values["replay_min_per_class"],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def replay_quota(older_counts: pd.Series, size: int, min_per_class: int) -> dict[str, int]:
    """Rows to replay per class: ``size`` shared in proportion to ``older_counts`` (largest remainders,
    ties to the larger class, then by name), each raised to ``min_per_class``, each capped at its count."""
    counts = {str(k): int(v) for k, v in older_counts.items() if int(v) > 0}
    total = sum(counts.values())
    size = max(0, min(int(size), total))
    quota = dict.fromkeys(counts, 0)
    if size and total:
        exact = {k: size * n / total for k, n in counts.items()}
        quota = {k: int(math.floor(v)) for k, v in exact.items()}
        left = size - sum(quota.values())
        order = sorted(counts, key=lambda k: (-(exact[k] - quota[k]), -counts[k], k))
        for k in order[:left]:
            quota[k] += 1
    return {k: min(counts[k], max(quota[k], int(min_per_class))) for k in sorted(counts)}


def _per_period(times: pd.Series) -> dict[str, int]:
    """Rows per ``strftime("%Y-%m")`` of ``times`` (missing: "unknown"), sorted: counted on year * 100 + month,
    and only each distinct month formatted (formatting every value took 1.2 s a million rows)."""
    known = times.dropna()
    months = known.dt.year * 100 + known.dt.month
    first = months.drop_duplicates()  # one timestamp of each month, to format it as strftime does
    label = dict(zip(first.to_numpy().tolist(), known.loc[first.index].dt.strftime("%Y-%m"), strict=True))
    counts = {label[key]: int(n) for key, n in months.value_counts().items()}
    if missing := int(times.isna().sum()):
        counts["unknown"] = missing
    return dict(sorted(counts.items()))


def _per_class(df: pd.DataFrame) -> dict[str, int]:
    if CLASS_COLUMN not in df.columns:
        return {}
    counts = df[CLASS_COLUMN].astype(object).fillna("unknown").astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.sort_index().items()}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    if KEY_COLUMN in df.columns:
        return df.sort_values(KEY_COLUMN, kind="stable").reset_index(drop=True)
    return df


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def compose(
    df: pd.DataFrame, policy: CompositionPolicy | None = None, seed: int = 42, *, table: str = "the input"
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The training rows of ``df`` under ``policy`` (None: ``full``), sorted by id, and the composition:

    ``policy``, ``window_days``, ``window_start`` (ISO; rows strictly after it are the window),
    ``window_rows``, ``replay_share``, ``replay_min_per_class``, ``replay_rows``, ``older_rows`` (rows
    before the window, the pool replayed from), ``seed``, ``rows``, ``rows_per_class`` ({tag: n}),
    ``rows_per_period`` ({"YYYY-MM": n}), ``content_hash`` (:func:`content_hash` of the result) and
    ``notes`` (why the result is the window alone, when it is). The window fields are None for ``full``.

    ``window`` needs the columns ``created_on`` and ``tag`` (:class:`~tagifai.data.DataError` names a
    missing one); an empty window (no rows, or no ``created_on``) is a ValueError naming ``table``, the
    window and the newest ``created_on``.
    """
    policy = policy if policy is not None else CompositionPolicy()
    notes: list[str] = []
    window_fields: dict[str, Any] = dict.fromkeys(_WINDOW_FIELDS)
    if policy.policy == "full":
        out = _sorted(df)
    else:
        require_columns(df, (TIME_COLUMN, CLASS_COLUMN), f"{table} (training_data=window)")
        times = pd.to_datetime(df[TIME_COLUMN])
        newest = times.max()
        start = newest - pd.Timedelta(days=float(policy.window_days)) if pd.notna(newest) else None
        in_window = (times > start) if start is not None else pd.Series(False, index=df.index)
        window = df[in_window.to_numpy()]
        if window.empty:
            raise ValueError(
                f"{table}: the window of the last {policy.window_days:g} days (created_on > {_iso(start)}) is "
                f"empty: newest created_on is {_iso(newest)} ({len(df)} rows); nothing to train on"
            )
        older = _sorted(df[~in_window.to_numpy()])
        size = _round_half_up(policy.replay_share * len(window))
        if policy.replay_share > 0 and len(older):
            size = max(size, 1)  # never the new batch alone while older rows exist
        classes = older[CLASS_COLUMN].astype(object).fillna("unknown").astype(str)
        quota = replay_quota(classes.value_counts(), size, policy.replay_min_per_class)
        rng = np.random.default_rng(seed)
        picked: list[np.ndarray] = []
        for cls, n in quota.items():  # sorted by class: the same draws for the same input and seed
            if n:
                rows = np.flatnonzero((classes == cls).to_numpy())
                picked.append(np.sort(rng.choice(rows, size=n, replace=False)))
        replay = older.iloc[np.concatenate(picked)] if picked else older.iloc[:0]
        out = _sorted(pd.concat([window, replay]))
        if older.empty:
            notes.append(
                f"no rows older than the window (created_on <= {_iso(start)}): the training data is the window "
                "alone, nothing to replay"
            )
        elif replay.empty:
            notes.append(
                "replay_share and replay_min_per_class are 0: the training data is the window alone "
                f"({len(older)} older rows not replayed)"
            )
        window_fields = {
            "window_days": float(policy.window_days),
            "window_start": _iso(start),
            "window_rows": int(len(window)),
            "replay_share": float(policy.replay_share),
            "replay_min_per_class": int(policy.replay_min_per_class),
            "replay_rows": int(len(replay)),
            "older_rows": int(len(older)),
        }
    composition: dict[str, Any] = {
        "policy": policy.policy,
        **window_fields,
        "seed": int(seed),
        "rows": int(len(out)),
        "rows_per_class": _per_class(out),
        "rows_per_period": _per_period(pd.to_datetime(out[TIME_COLUMN])) if TIME_COLUMN in out.columns else {},
        "content_hash": content_hash(out),
        "notes": notes,
    }
    return out, composition
