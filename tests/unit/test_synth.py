"""benchmarks/synth.py: synthetic projects that the sync step, the suites and the dbt tests accept."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tagifai_synth", ROOT / "benchmarks" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = synth  # dataclasses look their module up there
_spec.loader.exec_module(synth)

SOURCE = synth.load_source(ROOT / "data" / "madewithml")
#: Five full blocks of the real rows and part of a sixth.
ROWS = 5 * len(SOURCE) + 123


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synth.generate(ROWS, seed=7, source=SOURCE)


def _accepted_tags() -> set[str]:
    suite = json.loads((ROOT / "great_expectations" / "gx" / "expectations" / "labeled_projects.json").read_text())
    (expectation,) = [e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set"]
    return set(expectation["kwargs"]["value_set"])


def test_ids_are_new_unique_and_in_order(frames):
    projects, tags = frames
    assert len(projects) == len(tags) == ROWS
    assert projects["id"].is_unique
    assert projects["id"].tolist() == list(range(synth.DEFAULT_ID_START, synth.DEFAULT_ID_START + ROWS))
    assert projects["id"].tolist() == tags["id"].tolist()
    real = pd.read_csv(ROOT / "data" / "madewithml" / "projects.csv")
    assert not set(projects["id"]) & set(real["id"])


def test_title_and_description_stay_unique_after_trimming(frames):
    projects, _ = frames
    trimmed = projects.assign(title=projects["title"].str.strip(), description=projects["description"].str.strip())
    assert not trimmed.duplicated(["title", "description"]).any()
    assert (trimmed["title"] == projects["title"]).all() and (trimmed["description"] == projects["description"]).all()
    assert projects["title"].str.contains(r"\S").all() and projects["description"].str.contains(r"\S").all()


def test_text_is_the_real_text_perturbed(frames):
    projects, _ = frames
    width = synth.suffix_width(ROWS, len(SOURCE))
    real = set(zip(SOURCE.titles, SOURCE.descriptions, strict=True))
    for i, row in enumerate(projects.head(2 * len(SOURCE)).itertuples()):
        copy = i // len(SOURCE)
        words = row.description.split(" ")
        assert " " + " ".join(words[-width:]) == synth.suffix(copy, width)
        description = " ".join(words[:-width])
        title = synth.title_variant(row.title, copy % synth.TITLE_VARIANTS)  # a swap undoes itself
        assert (title, description) in real
    # every real row once in each full block
    first = projects.head(len(SOURCE))
    assert first["description"].str.rsplit(" ", n=width).str[0].nunique() >= len(set(SOURCE.descriptions))


def test_tag_mix_is_the_real_one(frames):
    _, tags = frames
    real = SOURCE.tag_mix()
    mix = tags["tag"].value_counts(normalize=True).to_dict()
    assert set(mix) == set(real)
    for tag, share in real.items():
        assert mix[tag] == pytest.approx(share, abs=0.01), tag
    # full blocks hold exactly the real counts
    full = tags.head(5 * len(SOURCE))["tag"].value_counts()
    assert full.to_dict() == {t: 5 * c for t, c in pd.Series(SOURCE.tags).value_counts().items()}
    assert set(mix) <= _accepted_tags()
    assert tags["tag"].str.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*").all()


def test_created_on_is_spread_over_the_range_in_id_order(frames):
    projects, _ = frames
    created = pd.to_datetime(projects["created_on"])
    start, end = pd.Timestamp(synth.DEFAULT_START), pd.Timestamp(synth.DEFAULT_END)
    assert created.min() >= start and created.max() < end
    assert created.is_monotonic_increasing
    assert (created.dt.floor("s") == created).all()
    span = (end - start) / ROWS
    assert created.min() - start < 2 * span and end - created.max() < 2 * span
    assert created.dt.year.nunique() == end.year - start.year + 1


def test_range_and_ids_are_configurable():
    projects, tags = synth.generate(100, seed=1, start="2024-01-01", end="2024-01-02", id_start=5, source=SOURCE)
    created = pd.to_datetime(projects["created_on"])
    assert created.min() >= pd.Timestamp("2024-01-01") and created.max() < pd.Timestamp("2024-01-02")
    assert projects["id"].tolist() == list(range(5, 105))
    with pytest.raises(ValueError, match="after start"):
        synth.generate(10, start="2024-01-02", end="2024-01-01", source=SOURCE)
    with pytest.raises(ValueError, match="at least 1"):
        synth.generate(0, source=SOURCE)


def test_deterministic_per_seed():
    a = synth.generate(2000, seed=3, source=SOURCE)
    b = synth.generate(2000, seed=3, source=SOURCE)
    c = synth.generate(2000, seed=4, source=SOURCE)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not a[0]["title"].equals(c[0]["title"])


def test_suffix_spells_the_copy_in_base_64():
    assert len(synth.SUFFIX_WORDS) == len(set(synth.SUFFIX_WORDS)) == 64
    assert all(w.isalpha() and w.islower() for w in synth.SUFFIX_WORDS)
    assert synth.suffix_width(764, 764) == 2
    assert synth.suffix_width(764 * 64**2, 764) == 2
    assert synth.suffix_width(764 * 64**2 + 1, 764) == 3
    ends = {synth.suffix(c, 3) for c in range(64**2 + 5)}
    assert len(ends) == 64**2 + 5


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_files_have_the_real_columns_and_pass_the_sync_conformance(tmp_path, fmt):
    from tagifai.sources import read_raw, read_source

    written = synth.write(1500, tmp_path, fmt=fmt, seed=2)
    assert written.rows == 1500 and written.bytes > 0
    for table in ("projects", "tags"):
        path = tmp_path / f"{table}.{fmt}"
        real = pd.read_csv(ROOT / "data" / "madewithml" / f"{table}.csv", nrows=1)
        assert list(read_raw(str(path)).columns) == list(real.columns)
        conformed = read_source(str(path), table)  # what the sync step loads; raises on any schema error
        assert len(conformed) == 1500
    if fmt == "csv":  # the real files' timestamp text
        raw = read_raw(str(tmp_path / "projects.csv"))
        assert raw["created_on"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
        assert raw["description"].str.contains("\n").any()  # multi-line descriptions survive the round trip


def test_cli_writes_the_files(tmp_path, capsys):
    assert synth.main(["--rows", "50", "--out", str(tmp_path), "--seed", "5", "--start", "2021-01-01"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 50 and summary["suffix_words"] == 2
    assert (tmp_path / "projects.csv").exists() and (tmp_path / "tags.csv").exists()


def test_the_validation_suites_accept_it(frames):
    from tagifai.validation import validate_dataframe

    projects, tags = frames
    labeled = projects.merge(tags, on="id")
    for suite, df in (("projects", projects), ("tags", tags), ("labeled_projects", labeled)):
        report = validate_dataframe(df, suite, f"synthetic {suite}")
        assert report.success, [f for f in report.failures]
