"""tagifai.data: cleaning, label mapping, preparation, splitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tagifai.data import (
    ACCEPTED_TAGS,
    DEFAULT_MIN_FREQ,
    STOPWORDS,
    DataError,
    build_text,
    clean_text,
    map_labels,
    prepare,
    split,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello World", "hello world"),
        ("The quick brown fox is in the box", "quick brown fox box"),  # stop words
        ("See https://github.com/GokuMohandas/Made-With-ML now", "see"),  # URL (and stop word "now")
        ("Go to www.example.com/page for BERT", "go bert"),
        ("State-of-the-art: NLP, CV & MLOps!!!", "state art nlp cv mlops"),  # punctuation -> spaces
        ("  lots   of\n\tspace  ", "lots space"),
        (
            "Transformers applied to NLP have revolutionized machine learning.",
            "transformers applied nlp revolutionized machine learning",
        ),
        ("It's a don't-miss", "miss"),  # contractions are stop words too
        ("", ""),
    ],
)
def test_clean_text_examples(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_missing_values_and_options():
    assert clean_text(None) == ""
    assert clean_text(float("nan")) == ""
    assert clean_text("The CAT", stopwords=()) == "the cat"
    assert clean_text("The CAT", lower=False, stopwords=()) == "The CAT"
    assert "the" in STOPWORDS and "machine" not in STOPWORDS


def test_map_labels_on_real_tags(labeled_df):
    labels = map_labels(labeled_df["tag"])
    assert labels.value_counts().to_dict() == {
        "natural-language-processing": 310,
        "computer-vision": 285,
        "other": 106,  # graph-learning 33 + reinforcement-learning 45 + time-series 28
        "mlops": 63,
    }
    assert len(labels) == len(labeled_df)


def test_map_labels_min_freq_absolute_and_relative(labeled_df):
    # The course's absolute 75 (meant for 955 rows) folds mlops (63) into "other" here.
    course = map_labels(labeled_df["tag"], min_freq=75)
    assert set(course) == {"natural-language-processing", "computer-vision", "other"}
    assert (course == "other").sum() == 106 + 63
    # Low enough to keep graph-learning (33): five classes.
    low = map_labels(labeled_df["tag"], min_freq=30)
    assert (low == "graph-learning").sum() == 33
    # Relative: 0.05 of 764 rows = 38.2, same as an absolute 39..63.
    assert DEFAULT_MIN_FREQ == 0.05
    pd.testing.assert_series_equal(
        map_labels(labeled_df["tag"], min_freq=0.05), map_labels(labeled_df["tag"], min_freq=50)
    )


def test_map_labels_unaccepted_tag_is_other_even_when_frequent():
    tags = ["a"] * 10 + ["natural-language-processing"] * 10
    labels = map_labels(tags, min_freq=1)
    assert labels.tolist() == ["other"] * 10 + ["natural-language-processing"] * 10
    assert map_labels(tags, accepted_tags=["a"], min_freq=1).tolist()[:10] == ["a"] * 10
    with pytest.raises(DataError, match="min_freq"):
        map_labels(tags, min_freq=-1)
    assert "graph-learning" in ACCEPTED_TAGS


def test_prepare_adds_text_and_label_without_mutating(labeled_df):
    before = labeled_df.copy()
    out = prepare(labeled_df)
    pd.testing.assert_frame_equal(labeled_df, before)
    assert {"text", "label"} <= set(out.columns)
    assert len(out) == len(labeled_df)
    row = out.iloc[0]
    assert row["text"] == clean_text(row["title"] + " " + row["description"])
    assert out["label"].nunique() == 4


def test_prepare_missing_column_is_named(labeled_df):
    with pytest.raises(DataError, match="'tag'"):
        prepare(labeled_df.drop(columns=["tag"]))
    with pytest.raises(DataError, match="'title'.*'description'"):
        prepare(labeled_df.drop(columns=["title", "description"]))


def test_build_text_handles_missing_description():
    df = pd.DataFrame({"title": ["Graph Nets", "A"], "description": [np.nan, "Image segmentation."]})
    assert build_text(df).tolist() == ["graph nets", "image segmentation"]


def test_split_sizes_disjoint_stratified_deterministic(labeled_df):
    df = prepare(labeled_df)
    train, val, test = split(df, val_size=0.15, test_size=0.2, seed=7)
    assert len(test) == round(0.2 * len(df))
    assert abs(len(val) - 0.15 * len(df)) <= 2
    ids = [set(part["id"]) for part in (train, val, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == set(df["id"])
    overall = df["label"].value_counts(normalize=True)
    for part in (train, val, test):
        share = part["label"].value_counts(normalize=True).reindex(overall.index)
        assert (share - overall).abs().max() < 0.02, share
    again = split(df, val_size=0.15, test_size=0.2, seed=7)
    for a, b in zip((train, val, test), again, strict=False):
        assert a["id"].tolist() == b["id"].tolist()
    other = split(df, val_size=0.15, test_size=0.2, seed=8)
    assert other.test["id"].tolist() != test["id"].tolist()
    # The test rows depend on test_size and seed only, not on val_size.
    assert set(split(df, val_size=0.3, test_size=0.2, seed=7).test["id"]) == ids[2]


def test_split_zero_sizes_and_errors(labeled_df):
    df = prepare(labeled_df)
    parts = split(df, val_size=0.15, test_size=0, seed=1)
    assert len(parts.test) == 0 and list(parts.test.columns) == list(df.columns)
    assert len(parts.train) + len(parts.val) == len(df)
    with pytest.raises(DataError, match="'label'"):
        split(labeled_df)
    with pytest.raises(DataError, match="val_size \\+ test_size"):
        split(df, val_size=0.5, test_size=0.5)
    with pytest.raises(DataError, match="test_size"):
        split(df, test_size=1.5)
