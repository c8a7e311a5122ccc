"""tagifai.seeds: what a new state folder copies instead of building it (dbt's parse is in test_transform)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tagifai import seeds


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tagifai"


def schema(path: Path) -> dict[str, list[tuple]]:
    """Each table's and index's columns (name, type, not null, key); not the SQL text, which MLflow's migrations
    write with their constraints in an order that varies from process to process."""
    with sqlite3.connect(path) as con:
        objects = con.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
        return {
            f"{kind} {name}": sorted(
                con.execute(f"PRAGMA {'table_info' if kind == 'table' else 'index_info'}('{name}')").fetchall()
            )
            for kind, name in sorted(objects)
        }


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute(sql).fetchall()


def test_cache_folder_follows_xdg(cache):
    assert seeds.cache_folder() == cache


def test_copy_whole_replaces_or_keeps(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "deeper" / "dest"
    assert seeds.copy_whole(source, dest) is False and not dest.exists()  # nothing to copy
    source.write_text("one")
    assert seeds.copy_whole(source, dest) is True and dest.read_text() == "one"
    source.write_text("two")
    assert seeds.copy_whole(source, dest, replace=False) is False and dest.read_text() == "one"
    assert seeds.copy_whole(source, dest) is True and dest.read_text() == "two"
    umask = os.umask(0o022)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # a new file's mode, readable by others
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dest"]  # no temporary file left
    (tmp_path / "file").write_text("")
    assert seeds.copy_whole(source, tmp_path / "file" / "below") is False  # a folder that cannot be made


def test_sqlite_from_template_makes_the_template_once_and_never_overwrites(cache, tmp_path):
    made = []

    def create(url: str) -> None:
        made.append(url)
        with sqlite3.connect(url[len("sqlite:///") :]) as con:
            con.execute("CREATE TABLE t (x INTEGER)")

    first, second = tmp_path / "a" / "one.db", tmp_path / "b" / "two.db"
    assert seeds.sqlite_from_template(f"sqlite:///{first}", "lib", "1.0", create) is True
    assert seeds.sqlite_from_template(f"sqlite:///{second}", "lib", "1.0", create) is True
    assert len(made) == 1 and (cache / "sqlite" / "lib-1.0.db").is_file()
    assert list(schema(first)) == list(schema(second)) == ["table t"]
    with sqlite3.connect(first) as con:
        con.execute("INSERT INTO t VALUES (7)")
    assert seeds.sqlite_from_template(f"sqlite:///{first}", "lib", "1.0", create) is False  # exists: kept
    assert rows(first, "SELECT x FROM t") == [(7,)]
    assert seeds.sqlite_from_template(f"sqlite:///{tmp_path / 'c.db'}", "lib", "2.0", create) is True
    assert len(made) == 2  # another version, another template
    for url in ("postgresql://host/db", "sqlite:///:memory:", "sqlite://"):
        assert seeds.sqlite_from_template(url, "lib", "1.0", create) is False
    options = tmp_path / "deep" / "er" / "opts.db"
    assert seeds.sqlite_from_template(f"sqlite:///{options}?timeout=5", "lib", "1.0", create) is False
    assert options.parent.is_dir() and not options.exists()  # the folder is made; no copy under URI options


def test_a_template_that_cannot_be_made_leaves_the_database_to_the_library(cache, tmp_path):
    def broken(url: str) -> None:
        raise RuntimeError("no schema today")

    target = tmp_path / "new.db"
    assert seeds.sqlite_from_template(f"sqlite:///{target}", "lib", "1.0", broken) is False
    assert not target.exists() and not (cache / "sqlite" / "lib-1.0.db").exists()


def test_mlflow_store_from_the_template_is_the_store_mlflow_makes(cache, tmp_path):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    from tagifai import tracking

    fresh = tmp_path / "fresh.db"
    SqlAlchemyStore(f"sqlite:///{fresh}", str(tmp_path / "fresh-art")).engine.dispose()
    for name in ("first", "second"):  # the first makes the template, the second only copies it
        url = f"sqlite:///{tmp_path / name}.db"
        experiment_id = tracking.configure(url, "tagifai", tmp_path / f"{name}-art")
        assert schema(tmp_path / f"{name}.db") == schema(fresh)
        version = "SELECT version_num FROM alembic_version"
        assert rows(tmp_path / f"{name}.db", version) == rows(fresh, version)
        client = MlflowClient(tracking_uri=url)
        assert client.get_experiment(experiment_id).artifact_location.endswith(f"{name}-art/tagifai")
        assert client.get_experiment("0").name == "Default"  # made by the store that opened it
    assert (cache / "sqlite").is_dir() and len(list((cache / "sqlite").glob("mlflow-*.db"))) == 1
    template = next((cache / "sqlite").glob("mlflow-*.db"))
    assert rows(template, "SELECT count(*) FROM experiments") == [(0,)]  # nothing of a run in it


def test_optuna_storage_from_the_template_is_the_storage_optuna_makes(cache, tmp_path):
    import optuna

    from tagifai.optimize import _storage

    fresh = tmp_path / "fresh.db"
    optuna.storages.RDBStorage(f"sqlite:///{fresh}").engine.dispose()
    for name in ("first", "second"):
        storage = _storage(f"sqlite:///{tmp_path / name}.db", None)
        assert schema(tmp_path / f"{name}.db") == schema(fresh)
        study = optuna.create_study(storage=storage, study_name="s")
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        assert len(optuna.load_study(study_name="s", storage=storage).trials) == 2
    template = next((cache / "sqlite").glob("optuna-*.db"))
    assert rows(template, "SELECT count(*) FROM studies") == [(0,)]
