from pathlib import Path

import pytest

from tagifai.config import PUBLIC_SOURCES, get_settings
from tagifai.warehouse import WarehouseError, parse_warehouse


def test_defaults_live_under_one_state_folder(monkeypatch, tmp_path):
    for var in ("TAGIFAI_WAREHOUSE", "TAGIFAI_MLFLOW_TRACKING_URI", "TAGIFAI_OPTUNA_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TAGIFAI_HOME", str(tmp_path / "state"))
    s = get_settings()
    assert s.warehouse == f"duckdb:///{tmp_path / 'state' / 'warehouse.duckdb'}"
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    assert s.optuna_storage == f"sqlite:///{tmp_path / 'state' / 'optuna.db'}"
    assert s.mlflow_artifact_root == (tmp_path / "state" / "mlartifacts").as_uri()


def test_overrides_beat_environment(monkeypatch):
    monkeypatch.setenv("TAGIFAI_WAREHOUSE", "duckdb:///from/env.duckdb")
    assert get_settings().warehouse == "duckdb:///from/env.duckdb"
    assert get_settings(warehouse="bigquery://p/d").warehouse == "bigquery://p/d"
    assert get_settings(warehouse="").warehouse == "duckdb:///from/env.duckdb"  # empty = not given


def test_sources_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.delenv("TAGIFAI_DATA_DIR", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert get_settings().sources() == {"projects": str(tmp_path / "projects.csv"), "tags": str(tmp_path / "tags.csv")}
    monkeypatch.setenv("DATA_DIR", "https://example.org/data/")
    assert get_settings().sources()["tags"] == "https://example.org/data/tags.csv"
    monkeypatch.delenv("DATA_DIR")
    # no DATA_DIR and no shared copy beside the project: the pinned public URLs
    assert get_settings(project_dir=tmp_path / "nowhere").sources() == PUBLIC_SOURCES


def test_image_names_come_from_settings(monkeypatch):
    monkeypatch.setenv("TAGIFAI_REGISTRY", "europe-docker.pkg.dev/p/r/")
    monkeypatch.setenv("TAGIFAI_IMAGE_TAG", "v2")
    assert get_settings().image("train") == "europe-docker.pkg.dev/p/r/tagifai-train:v2"


@pytest.mark.parametrize(
    "uri,kind",
    [("duckdb:////tmp/w.duckdb", "duckdb"), ("/tmp/w.duckdb", "duckdb"), ("bigquery://proj/ds", "bigquery")],
)
def test_parse_warehouse(uri, kind):
    assert parse_warehouse(uri).scheme == kind


@pytest.mark.parametrize("uri", ["postgres://x/y", "bigquery://proj", "bigquery:///ds", "duckdb://"])
def test_bad_warehouse_uris_are_named(uri):
    with pytest.raises(WarehouseError, match="warehouse"):
        parse_warehouse(uri)


def test_duckdb_warehouse_is_a_file():
    assert parse_warehouse("duckdb:////tmp/x.duckdb").path == Path("/tmp/x.duckdb")
