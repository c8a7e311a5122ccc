"""tagifai.optimize on large data: the trials search on a stratified, seeded sample above a number of rows
(TAGIFAI_OPTIMIZE_SAMPLE_ROWS), recorded on the study, the MLflow run and the summary."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from tagifai import optimize as optimize_mod
from tagifai.data import prepare, split
from tagifai.model import TagifaiModel, TrainArgs
from tagifai.optimize import (
    DEFAULT_SAMPLE_ROWS,
    SAMPLE_ROWS_ENV,
    dev_folds,
    dev_rows,
    optimize,
    sample_rows_setting,
    stratified_sample,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def frame(n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of unique texts in four classes of 60 %, 30 %, 9.9 % and 0.1 %."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["a", "b", "c", "d"], p=[0.6, 0.3, 0.099, 0.001], size=n)
    return pd.DataFrame({"id": np.arange(n), "text": [f"text {i}" for i in range(n)], "label": labels})


# --------------------------------------------------------------------------- the setting


@pytest.mark.parametrize(
    ("value", "rows"),
    [
        (None, DEFAULT_SAMPLE_ROWS),
        ("", DEFAULT_SAMPLE_ROWS),
        ("  ", DEFAULT_SAMPLE_ROWS),
        ("0", 0),
        ("off", 0),
        ("None", 0),
        ("all", 0),
        ("5000", 5000),
        ("50_000", 50_000),
        (" 123 ", 123),
    ],
)
def test_the_setting(value, rows):
    environ = {} if value is None else {SAMPLE_ROWS_ENV: value}
    assert sample_rows_setting(environ) == rows


@pytest.mark.parametrize("value", ["-1", "many", "1.5", "20k"])
def test_a_wrong_setting_names_the_variable(value):
    with pytest.raises(ValueError, match=SAMPLE_ROWS_ENV):
        sample_rows_setting({SAMPLE_ROWS_ENV: value})


def test_the_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv(SAMPLE_ROWS_ENV, "777")
    assert sample_rows_setting() == 777
    monkeypatch.delenv(SAMPLE_ROWS_ENV)
    assert sample_rows_setting() == DEFAULT_SAMPLE_ROWS == 2_000


# --------------------------------------------------------------------------- the sample


def test_small_frames_and_zero_are_left_as_they_are():
    df = frame(500)
    assert stratified_sample(df, 500, 1) is df
    assert stratified_sample(df, 10_000, 1) is df
    assert stratified_sample(df, 0, 1) is df


def test_the_sample_is_bounded_and_stratified():
    df = frame()
    sample = stratified_sample(df, 1000, 42, min_per_class=5)
    assert len(sample) == 1000 and sample["id"].is_unique and set(sample["id"]) <= set(df["id"])
    counts, sizes = sample["label"].value_counts(), df["label"].value_counts()
    # The rare class (11 rows: 1.1 of 1000 by its share) gets its minimum of 5 ...
    assert sizes["d"] == 11 and counts["d"] == 5
    # ... and the others share the other 995 rows in proportion to their size, to the row (largest remainder).
    others = sizes[["a", "b", "c"]]
    for label, size in others.items():
        assert abs(counts[label] - 995 * size / others.sum()) < 1, (label, counts[label], 995 * size / others.sum())
    # Minimums that alone take more than n: each class its minimum.
    assert stratified_sample(df, 12, 42, min_per_class=5)["label"].value_counts().to_dict() == dict.fromkeys("abcd", 5)
    # A class with fewer rows than the minimum comes whole.
    tiny = pd.concat([df, pd.DataFrame({"id": [-1, -2], "text": ["x", "y"], "label": ["e", "e"]})])
    assert stratified_sample(tiny, 1000, 42, min_per_class=5)["label"].value_counts()["e"] == 2


def test_the_rows_keep_their_order():
    df = frame()
    sample = stratified_sample(df, 1000, 42)
    assert sample["id"].is_monotonic_increasing
    assert list(sample.index) == sorted(sample.index)


def test_the_sample_is_seeded_and_independent_of_the_row_order():
    df = frame()
    first = set(stratified_sample(df, 1000, 42)["id"])
    assert set(stratified_sample(df, 1000, 42)["id"]) == first
    shuffled = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert set(stratified_sample(shuffled, 1000, 42)["id"]) == first
    other_seed = set(stratified_sample(df, 1000, 43)["id"])
    assert len(other_seed) == 1000 and len(other_seed & first) < 300  # about 10 % by chance
    # Not the first rows of each class (a sample of a frame sorted by date would be its oldest rows).
    assert first != set(df.groupby("label").head(600)["id"])


def test_most_of_the_sample_stays_when_rows_are_added():
    df = frame()
    before = set(stratified_sample(df, 1000, 42)["id"])
    grown = pd.concat([df, frame(100, seed=1).assign(id=lambda d: d["id"] + 100_000)])
    after = set(stratified_sample(grown, 1000, 42)["id"])
    assert len(before & after) >= 950  # 1 % new rows: about 1 % of the sample changes


# --------------------------------------------------------------------------- the study on the sample


def test_dev_folds_of_a_sample(_labeled_projects):
    base = TrainArgs(embedding="none", seed=3)
    every = dev_rows(_labeled_projects, base)
    dev, folds = dev_folds(_labeled_projects, base, cv_folds=3, sample_rows=200)
    assert len(every) > 200 and len(dev) == 200 and set(dev["id"]) < set(every["id"])
    assert sorted(np.concatenate([held for _, held in folds])) == list(range(200)) and len(folds) == 3
    same, _ = dev_folds(_labeled_projects, base, cv_folds=3)
    assert same["id"].tolist() == every["id"].tolist()


class _Spy(TagifaiModel):
    seen: set = set()

    def fit(self, X, y):
        _Spy.seen.update(X["id"])
        return super().fit(X, y)

    def predict_proba(self, X):
        _Spy.seen.update(X["id"])
        return super().predict_proba(X)


@pytest.fixture
def spy(monkeypatch):
    _Spy.seen = set()
    monkeypatch.setattr(optimize_mod, "TagifaiModel", _Spy)
    monkeypatch.setenv("TAGIFAI_CV_WORKERS", "1")  # the folds fit in this process, where the spy is
    return _Spy


def _trial_free_args():
    """Base arguments that a one-trial study runs as they are (its first trial): TF-IDF only, quick."""
    return TrainArgs(embedding="none", analyzer="word", ngram_max=1, word_ngram_max=0, seed=5)


def test_above_the_threshold_the_trials_see_only_the_sample(_labeled_projects, spy, tmp_path):
    base = _trial_free_args()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    kwargs = dict(num_trials=1, cv_folds=2, base_args=base, storage=storage, study_name="big")
    _, _, summary = optimize(_labeled_projects, sample_rows=250, **kwargs)
    every = dev_rows(_labeled_projects, base)
    expected = set(stratified_sample(every, 250, base.seed, min_per_class=2)["id"])
    assert spy.seen == expected and len(expected) == 250
    test_ids = set(split(prepare(_labeled_projects), base.val_size, base.test_size, base.seed).test["id"])
    assert not spy.seen & test_ids
    # Its own study, and every place a person looks says which rows the trials saw.
    assert summary["study_name"] == "big-sample250"
    search = summary["search"]
    assert search["sampled"] and search["search_rows"] == 250 and search["dev_rows"] == len(every)
    assert search["search_sample_seed"] == 5 and search["search_sample_setting"] == 250
    assert sum(search["per_label"].values()) == 250
    assert "stratified sample of 250" in summary["metric"]
    assert f"a stratified sample of 250 of the {len(every):,}" in summary["chosen"]["reason"]
    study = optuna.load_study(study_name="big-sample250", storage=storage)
    assert study.user_attrs["search_rows"] == 250 and study.user_attrs["dev_rows"] == len(every)
    assert study.user_attrs["search_sample_seed"] == 5
    # The same call again resumes that study: no new trial, the same rows.
    spy.seen = set()
    _, _, again = optimize(_labeled_projects, sample_rows=250, **kwargs)
    assert again["new_trials"] == 0 and again["study_name"] == "big-sample250" and not spy.seen
    # Another seed of the run: another sample.
    spy.seen = set()
    optimize(_labeled_projects, sample_rows=250, **{**kwargs, "base_args": base.replace(seed=6), "storage": None})
    assert len(spy.seen) == 250 and spy.seen != expected


def test_at_or_below_the_threshold_the_trials_see_every_row(_labeled_projects, spy):
    base = _trial_free_args()
    every = dev_rows(_labeled_projects, base)
    _, _, summary = optimize(_labeled_projects, num_trials=1, cv_folds=2, base_args=base, sample_rows=len(every))
    assert spy.seen == set(every["id"])
    assert summary["study_name"] == "tagifai" and not summary["search"]["sampled"]
    assert summary["search"]["search_rows"] == summary["search"]["dev_rows"] == len(every)
    assert summary["metric"].endswith("folds of train + val") and "sample" not in summary["chosen"]["reason"]


def test_the_environment_decides_when_no_size_is_given(_labeled_projects, spy, monkeypatch):
    base = _trial_free_args()
    monkeypatch.setenv(SAMPLE_ROWS_ENV, "300")
    _, _, summary = optimize(_labeled_projects, num_trials=1, cv_folds=2, base_args=base, study_name="env")
    assert len(spy.seen) == 300 and summary["study_name"] == "env-sample300"
    spy.seen = set()
    monkeypatch.setenv(SAMPLE_ROWS_ENV, "off")
    _, _, summary = optimize(_labeled_projects, num_trials=1, cv_folds=2, base_args=base, study_name="env")
    assert spy.seen == set(dev_rows(_labeled_projects, base)["id"]) and summary["study_name"] == "env"
    with pytest.raises(ValueError, match="sample_rows"):
        optimize(_labeled_projects, num_trials=1, base_args=base, sample_rows=-1)


def test_the_mlflow_run_of_a_sampled_study_is_tagged(_labeled_projects, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from tagifai import tracking

    base = _trial_free_args()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        optimize(
            _labeled_projects,
            num_trials=1,
            cv_folds=2,
            base_args=base,
            study_name="tags",
            sample_rows=250,
            experiment_name="sample-test",
            tracking_uri=uri,
            artifact_root=tmp_path / "artifacts",
        )
    finally:
        tracking._state.clear()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sample-test").experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "optimize-tags-sample250"]
    tags = parent.data.tags
    assert tags["search_rows"] == "250" and tags["search_sampled"] == "true" and tags["search_sample_seed"] == "5"
    assert tags["dev_rows"] == str(len(dev_rows(_labeled_projects, base))) and tags["search_sample_setting"] == "250"


def test_fanned_out_workers_of_a_sampled_study_share_it(_labeled_projects, spy, tmp_path):
    """Workers of one study (components/optimize.py: the same data and run seed, each its own sampler seed)
    draw the same sample, so they fill one study; the rows depend on the run's seed, not the sampler's."""
    base = _trial_free_args()
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    kwargs = dict(num_trials=2, cv_folds=2, base_args=base, storage=storage, study_name="fan", sample_rows=250)
    _, _, first = optimize(_labeled_projects, seed=7, **kwargs)
    seen = set(spy.seen)
    _, _, second = optimize(_labeled_projects, seed=7 + 7919, **kwargs)
    assert first["study_name"] == second["study_name"] == "fan-sample250"
    assert first["new_trials"] == 2 and second["new_trials"] == 0 and spy.seen == seen and len(seen) == 250
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["fan-sample250"]
