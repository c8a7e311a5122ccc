"""tagifai.compose and extract_table's composition, on the real labeled projects and small frames."""

from __future__ import annotations

import json
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest

from tagifai.compose import CompositionPolicy, compose, content_hash, replay_quota
from tagifai.data import DataError

WINDOW = CompositionPolicy("window", window_days=60, replay_share=0.3, replay_min_per_class=10)


def _split(df: pd.DataFrame, days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The window (created_on > newest - days) and the older rows, computed independently of compose."""
    start = df["created_on"].max() - pd.Timedelta(days=days)
    return df[df["created_on"] > start], df[df["created_on"] <= start]


def _frame(counts_older: dict[str, int], window_rows: int) -> pd.DataFrame:
    """Older rows on 2020-01-01 with the given tag counts, then ``window_rows`` rows on 2020-12-01."""
    tags = [t for t, n in counts_older.items() for _ in range(n)] + ["nlp"] * window_rows
    days = ["2020-01-01"] * (len(tags) - window_rows) + ["2020-12-01"] * window_rows
    return pd.DataFrame(
        {
            "id": np.arange(len(tags))[::-1],  # ids not in time order: the output must still be sorted by id
            "created_on": pd.to_datetime(days),
            "title": [f"t{i}" for i in range(len(tags))],
            "description": "",
            "tag": tags,
        }
    )


def test_full_is_the_input_sorted_by_id(labeled_df):
    shuffled = labeled_df.sample(frac=1, random_state=3)
    out, c = compose(shuffled)
    pd.testing.assert_frame_equal(out, labeled_df.sort_values("id").reset_index(drop=True))
    assert c["policy"] == "full" and c["rows"] == len(labeled_df) == 764
    assert c["content_hash"] == content_hash(labeled_df)
    assert c["window_start"] is None and c["replay_rows"] is None and c["notes"] == []
    assert c["rows_per_class"] == labeled_df["tag"].value_counts().sort_index().to_dict()
    assert sum(c["rows_per_period"].values()) == 764 and c["rows_per_period"]["2020-04"] == 160
    assert list(c["rows_per_class"]) == sorted(c["rows_per_class"])
    json.dumps(c)  # metadata of a KFP artifact: JSON only


def test_window_keeps_every_window_row_and_replays_older_rows(labeled_df):
    out, c = compose(labeled_df, WINDOW, seed=1)
    window, older = _split(labeled_df, 60)
    assert set(window["id"]) <= set(out["id"])
    replay = out[~out["id"].isin(window["id"])]
    assert set(replay["id"]) <= set(older["id"])
    assert out["id"].is_monotonic_increasing and out["id"].is_unique
    assert c["window_rows"] == len(window) == 117 and c["older_rows"] == len(older)
    assert c["replay_rows"] == len(replay) and c["rows"] == len(out) == len(window) + len(replay)
    assert c["window_start"] == (labeled_df["created_on"].max() - pd.Timedelta(days=60)).isoformat()
    assert c["content_hash"] == content_hash(out)
    assert c["rows_per_class"] == out["tag"].value_counts().sort_index().to_dict()
    assert c["rows_per_period"] == out["created_on"].dt.strftime("%Y-%m").value_counts().sort_index().to_dict()
    # at least replay_min_per_class of each tag, where the older rows have that many
    older_counts = older["tag"].value_counts()
    for tag, n in older_counts.items():
        assert (replay["tag"] == tag).sum() >= min(n, 10), tag
    # the rows are the input's rows, unchanged
    pd.testing.assert_frame_equal(out, labeled_df[labeled_df["id"].isin(out["id"])].reset_index(drop=True))


def test_replay_follows_the_older_tag_mix(labeled_df):
    policy = CompositionPolicy("window", window_days=60, replay_share=1.0, replay_min_per_class=0)
    out, c = compose(labeled_df, policy, seed=0)
    window, older = _split(labeled_df, 60)
    replay = out[~out["id"].isin(window["id"])]
    assert len(replay) == c["replay_rows"] == len(window)  # round(1.0 * 117)
    share = older["tag"].value_counts() / len(older)
    got = replay["tag"].value_counts()
    for tag, p in share.items():
        assert abs(got.get(tag, 0) - p * len(replay)) <= 1, (tag, got.get(tag, 0), p * len(replay))


def test_replay_quota_minimums_and_caps():
    counts = pd.Series({"a": 900, "b": 90, "c": 3, "d": 7})
    assert replay_quota(counts, 100, 0) == {"a": 90, "b": 9, "c": 0, "d": 1}
    # raised to the minimum, capped at what exists
    assert replay_quota(counts, 100, 5) == {"a": 90, "b": 9, "c": 3, "d": 5}
    assert replay_quota(counts, 10_000, 0) == {"a": 900, "b": 90, "c": 3, "d": 7}  # no more than exists
    assert sum(replay_quota(counts, 37, 0).values()) == 37


def test_minimum_per_class_is_capped_at_what_exists():
    df = _frame({"cv": 50, "mlops": 4, "rare": 2}, window_rows=20)
    out, c = compose(df, CompositionPolicy("window", 30, replay_share=0.5, replay_min_per_class=5), seed=0)
    replay = out[out["created_on"] < "2020-06-01"]
    assert replay["tag"].value_counts().to_dict() == {"cv": 9, "mlops": 4, "rare": 2}  # 10: cv 9 (8.9), mlops 1 (0.7)
    assert c["replay_rows"] == 15 and c["window_rows"] == 20 and c["older_rows"] == 56


def test_the_same_seed_draws_the_same_rows_another_seed_others(labeled_df):
    first, c1 = compose(labeled_df, WINDOW, seed=7)
    again, c2 = compose(labeled_df.sample(frac=1, random_state=1), WINDOW, seed=7)  # input order does not matter
    other, c3 = compose(labeled_df, WINDOW, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert c1 == c2
    assert set(first["id"]) != set(other["id"]) and c1["content_hash"] != c3["content_hash"]
    assert c3["seed"] == 8 and c3["replay_rows"] == c1["replay_rows"]  # same quota, other rows


def test_never_the_window_alone_while_older_rows_exist(labeled_df):
    tiny = CompositionPolicy("window", window_days=0.5, replay_share=0.01, replay_min_per_class=0)
    out, c = compose(labeled_df, tiny)
    window, _ = _split(labeled_df, 0.5)
    assert c["window_rows"] == len(window) >= 1
    assert round(0.01 * len(window)) == 0 and c["replay_rows"] == 1 and len(out) == len(window) + 1
    assert c["notes"] == []


def test_the_window_alone_is_said_in_the_notes(labeled_df):
    everything = CompositionPolicy("window", window_days=10_000)
    out, c = compose(labeled_df, everything)
    assert c["older_rows"] == 0 and c["replay_rows"] == 0 and len(out) == 764
    assert "window alone" in c["notes"][0] and "nothing to replay" in c["notes"][0]
    no_replay = CompositionPolicy("window", window_days=60, replay_share=0, replay_min_per_class=0)
    out, c = compose(labeled_df, no_replay)
    assert c["replay_rows"] == 0 and len(out) == c["window_rows"] == 117
    assert "window alone" in c["notes"][0] and f"{c['older_rows']} older rows" in c["notes"][0]


def test_an_empty_window_is_an_error_naming_table_window_and_newest(labeled_df):
    with pytest.raises(
        ValueError, match=r"labeled_projects: the window of the last 60 days .* newest created_on is None"
    ):
        compose(labeled_df.iloc[:0], WINDOW, table="labeled_projects")
    undated = labeled_df.assign(created_on=pd.NaT)
    with pytest.raises(ValueError, match=r"main\.labeled_projects: the window of the last 60 days"):
        compose(undated, WINDOW, table="main.labeled_projects")
    with pytest.raises(DataError, match="'tag'"):
        compose(labeled_df.drop(columns=["tag"]), WINDOW, table="t")
    assert compose(labeled_df.iloc[:0])[1]["rows"] == 0  # full: an empty table is what it is


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("policy", "recent"),
        ("window_days", 0),
        ("window_days", -3.0),
        ("window_days", float("nan")),
        ("replay_share", 1.5),
        ("replay_share", -0.1),
        ("replay_min_per_class", -1),
        ("replay_min_per_class", 2.5),
        ("replay_min_per_class", True),
    ],
)
def test_bad_policy_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        CompositionPolicy(**{field: value})


def test_policy_from_settings_with_overrides():
    from tagifai.config import get_settings

    settings = get_settings(training_data="window", window_days=30, replay_share=0.5, replay_min_per_class=2)
    assert CompositionPolicy.from_settings(settings) == CompositionPolicy("window", 30.0, 0.5, 2)
    assert CompositionPolicy.from_settings(settings, window_days=7, replay_share=None) == CompositionPolicy(
        "window", 7, 0.5, 2
    )
    fake = SimpleNamespace(training_data="full", window_days=90.0, replay_share=0.3, replay_min_per_class=10)
    with pytest.raises(ValueError, match="replay_share"):
        CompositionPolicy.from_settings(fake, replay_share=2.0)
    with pytest.raises(TypeError, match="window"):
        CompositionPolicy.from_settings(fake, window=3)


@pytest.fixture
def warehouse(tmp_path, labeled_df):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", labeled_df)
        con.execute("CREATE TABLE main.labeled_projects AS SELECT * FROM frame")
    return f"duckdb:///{path}"


def test_extract_table_writes_the_composed_rows_and_their_metadata(warehouse, tmp_path, labeled_df):
    from tagifai.extract import extract_table

    meta = extract_table(warehouse, "labeled_projects", tmp_path / "out" / "w.parquet", WINDOW, seed=3)
    written = pd.read_parquet(tmp_path / "out" / "w.parquet")
    expected, composition = compose(labeled_df, WINDOW, seed=3)
    assert written["id"].tolist() == expected["id"].tolist()
    assert meta["composition"] == composition and meta["composition"]["policy"] == "window"
    assert meta["rows"] == len(written) == composition["rows"] < 764
    assert meta["content_hash"] == content_hash(written) == composition["content_hash"]
    assert meta["created_on_max"] == labeled_df["created_on"].max().isoformat()  # the window holds the newest
    assert meta["created_on_min"] == written["created_on"].min().isoformat()
    assert meta["table"] == "labeled_projects" and meta["columns"] == list(labeled_df.columns)
    assert not list((tmp_path / "out").glob("*.tmp"))
    json.dumps(meta)


def test_extract_table_full_is_todays_file(warehouse, tmp_path, labeled_df):
    from tagifai.extract import extract_table
    from tagifai.warehouse import read_table

    meta = extract_table(warehouse, "labeled_projects", tmp_path / "full.parquet")
    today = read_table(warehouse, "labeled_projects").sort_values("id", kind="stable").reset_index(drop=True)
    today.to_parquet(tmp_path / "today.parquet", index=False)  # what extract_table wrote before compositions
    assert (tmp_path / "full.parquet").read_bytes() == (tmp_path / "today.parquet").read_bytes()
    assert meta["rows"] == 764 and meta["composition"]["policy"] == "full"
    assert meta["content_hash"] == meta["composition"]["content_hash"] == content_hash(labeled_df)


def test_extract_table_names_the_table_of_an_empty_window(warehouse, tmp_path):
    from tagifai.extract import extract_table

    path = warehouse.removeprefix("duckdb:///")
    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE main.empty AS SELECT * FROM main.labeled_projects LIMIT 0")
    with pytest.raises(ValueError, match=r"empty: the window of the last 60 days .* newest created_on is None"):
        extract_table(warehouse, "empty", tmp_path / "e.parquet", WINDOW)
    assert not (tmp_path / "e.parquet").exists()


@pytest.mark.parametrize(
    "times",
    [
        pd.Series(pd.to_datetime(["2020-01-05", None, "0999-03-01", "2020-01-31"], format="mixed", errors="coerce")),
        pd.Series(pd.to_datetime(["2020-01-05T23:00:00+00:00", "2021-12-31T23:30:00+00:00"], utc=True)).dt.tz_convert(
            "Asia/Tokyo"
        ),
        pd.Series([], dtype="datetime64[us]"),
        pd.Series([pd.NaT, pd.NaT], dtype="datetime64[ns]"),
        pd.Series(pd.date_range("2019-11-30", periods=2000, freq="17h")),
    ],
)
def test_rows_per_period_are_strftime_counts(times):
    from tagifai.compose import _per_period

    expected = times.dt.strftime("%Y-%m").astype(object).where(times.notna(), "unknown").value_counts().sort_index()
    got = _per_period(times)
    assert got == {str(k): int(v) for k, v in expected.items()} and list(got) == sorted(got)
