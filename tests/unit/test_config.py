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


# --- settings read from the environment by modules that do not import tagifai.config: the Settings field
# declares each one (docs/settings.md); its reader must take the same name, default and values.
ENGINE_VALUES = ["auto", "sql", "gx", "GX", " Sql ", "", "  ", "pandas", "0", "sql,gx"]
INT8_VALUES = ["0", "1", "auto", "AUTO", " on ", "off", "true", "false", "yes", "no", "", "2", "maybe", "int8"]
SAMPLE_VALUES = ["2000", "0", "off", "None", "ALL", "1_000", " 12 ", "", "-1", "-0", "1.5", "1e3", "x", "+7"]


def _field(monkeypatch, name: str, value: str | None):
    """The Settings field ``name`` with TAGIFAI_<NAME> = value (None: unset), or the ValidationError."""
    from pydantic import ValidationError

    from tagifai.config import Settings

    var = f"TAGIFAI_{name.upper()}"
    if value is None:
        monkeypatch.delenv(var, raising=False)
    else:
        monkeypatch.setenv(var, value)
    try:
        return getattr(Settings(_env_file=None), name)
    except ValidationError as exc:
        assert exc.errors()[0]["loc"] == (name,)
        return exc


def _reader(read):
    try:
        return read()
    except ValueError as exc:
        return exc


@pytest.mark.parametrize("value", [None, *ENGINE_VALUES])
def test_validation_engine_field_agrees_with_its_reader(monkeypatch, value):
    from tagifai.validation.run import ENGINES, engine_of

    field, read = _field(monkeypatch, "validation_engine", value), _reader(engine_of)
    assert isinstance(field, Exception) == isinstance(read, Exception), (value, field, read)
    if not isinstance(read, Exception):
        assert field == read in ENGINES
    if value is None:
        from tagifai.config import Settings

        assert read == Settings.model_fields["validation_engine"].default == "auto"


@pytest.mark.parametrize("value", [None, *INT8_VALUES])
def test_encoder_int8_field_agrees_with_its_reader(monkeypatch, value):
    from tagifai import embeddings

    assert embeddings.INT8_ENV == "TAGIFAI_ENCODER_INT8"
    field, read = _field(monkeypatch, "encoder_int8", value), _reader(embeddings.encoder_graph)
    assert isinstance(field, Exception) == isinstance(read, Exception), (value, field, read)
    if not isinstance(read, Exception):
        auto = "int8" if embeddings.int8_dot_products() else "float"
        assert {"0": "float", "1": "int8", "auto": auto}[field] == read
    if value is None:
        from tagifai.config import Settings

        assert Settings.model_fields["encoder_int8"].default == "0" and read == "float"


@pytest.mark.parametrize("value", [None, *SAMPLE_VALUES])
def test_optimize_sample_rows_field_agrees_with_its_reader(monkeypatch, value):
    from tagifai.optimize import DEFAULT_SAMPLE_ROWS, SAMPLE_ROWS_ENV, sample_rows_setting

    assert SAMPLE_ROWS_ENV == "TAGIFAI_OPTIMIZE_SAMPLE_ROWS"
    field, read = _field(monkeypatch, "optimize_sample_rows", value), _reader(sample_rows_setting)
    assert isinstance(field, Exception) == isinstance(read, Exception), (value, field, read)
    if not isinstance(read, Exception):
        assert field == read
    if value is None:
        from tagifai.config import Settings

        assert read == Settings.model_fields["optimize_sample_rows"].default == DEFAULT_SAMPLE_ROWS


WORKERS_VALUES = ["auto", "AUTO", " auto ", "", "0", "1", "4", " 3 ", "+7", "1_0", "off", "None", "-1", "two", "1.5"]


@pytest.mark.parametrize("value", [None, *WORKERS_VALUES])
def test_cv_workers_field_agrees_with_its_reader(monkeypatch, value):
    from tagifai.parallel import WORKERS_ENV, available_cpus, workers_setting

    assert WORKERS_ENV == "TAGIFAI_CV_WORKERS"
    field, read = _field(monkeypatch, "cv_workers", value), _reader(workers_setting)
    assert isinstance(field, Exception) == isinstance(read, Exception), (value, field, read)
    if not isinstance(read, Exception):
        assert (available_cpus() if field == "auto" else max(1, int(field))) == read
    if value is None:
        from tagifai.config import Settings

        assert Settings.model_fields["cv_workers"].default == "auto" and read == available_cpus()


def test_environment_readers_do_not_import_the_settings():
    """The readers above stay free of pydantic (tagifai.embeddings is on the prediction path)."""
    import subprocess
    import sys

    code = (
        "import sys, tagifai.embeddings, tagifai.validation.run, tagifai.parallel; "
        "print(sorted(m for m in ('pydantic', 'pydantic_settings', 'tagifai.config') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
