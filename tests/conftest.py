"""Shared fixtures: the Made With ML labeled projects (projects.csv merged with tags.csv)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The vendored Made With ML data (data/madewithml/README.md); DATA_DIR overrides.
DATA_DIR = Path(os.environ.get("DATA_DIR") or ROOT / "data" / "madewithml")


def load_labeled_projects(data_dir: Path = DATA_DIR) -> pd.DataFrame:
    """projects.csv joined with tags.csv on id (764 rows), created_on parsed, ordered by id."""
    from tagifai.sources import load_labeled_projects as load

    return load(data_dir)


@pytest.fixture(scope="session", autouse=True)
def _own_cache_folder(tmp_path_factory):
    """A cache folder of the test session's own (``XDG_CACHE_HOME``; dbt's kept parse,
    tagifai.transform.parse_seed), so no test starts from what another session or a user's run left."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="session", autouse=True)
def _shared_embedding_memo():
    """Encode each text once per test session (the sentence embedding of the default model costs
    seconds per training run; tests train dozens of models on the same texts). Benchmarks and the
    pipeline steps never share it: their timings include encoding."""
    try:
        from tagifai import embeddings
    except ImportError:  # pragma: no cover - the library is always importable in this repo
        yield
        return
    embeddings.share_memo(True)
    yield
    embeddings.share_memo(False)


@pytest.fixture(scope="session")
def _labeled_projects() -> pd.DataFrame:
    if not (DATA_DIR / "projects.csv").exists():
        pytest.fail(f"Made With ML data not found in {DATA_DIR} (set DATA_DIR)")
    return load_labeled_projects()


@pytest.fixture
def labeled_df(_labeled_projects: pd.DataFrame) -> pd.DataFrame:
    """The labeled projects frame (id, created_on, title, description, tag); a fresh copy per test."""
    return _labeled_projects.copy()


@pytest.fixture(scope="session")
def trained_default(_labeled_projects: pd.DataFrame):
    """One training run with the default TrainArgs on the real data (shared by the unit tests)."""
    from tagifai.train import TrainArgs, train

    return train(_labeled_projects.copy(), TrainArgs())


@pytest.fixture(scope="session")
def gate_models(_labeled_projects):
    """A good model and one trained on shuffled labels (same rows, same split seed), TF-IDF only: for the
    tests of the registry and the human gate, which are about promotion, not quality."""
    import numpy as np

    from tagifai.train import TrainArgs, train

    args = TrainArgs(seed=7, embedding="none")
    good = train(_labeled_projects.copy(), args)
    shuffled = _labeled_projects.copy()
    shuffled["tag"] = np.random.default_rng(0).permutation(shuffled["tag"].to_numpy())
    return {"good": good, "bad": train(shuffled, args), "test": good.splits.test}


@pytest.fixture(scope="module")
def isolated_mlflow(tmp_path_factory):
    """Keep MLflow's global URIs and ./mlruns of the current directory as they were."""
    import mlflow

    from tagifai import tracking

    cwd = tmp_path_factory.mktemp("cwd")
    before, old_cwd = os.environ.get("MLFLOW_TRACKING_URI"), os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        tracking._state.clear()
        mlflow.set_tracking_uri(before)
        mlflow.set_registry_uri(before)
