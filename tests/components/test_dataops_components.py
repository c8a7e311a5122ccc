"""Component functions called directly with real artifact objects pointed at a temp dir."""

from pathlib import Path

import pandas as pd
import pytest
from _artifacts import make_artifact
from kfp.dsl import Dataset

from components.extract import extract
from components.sync import sync
from tagifai.sources import SourceError

DATA = Path(__file__).resolve().parents[2] / "data" / "madewithml"


_artifact = make_artifact


def test_sync_component_loads_and_records_metadata(tmp_path):
    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    out = _artifact(Dataset, tmp_path, "projects")
    sync.python_func(
        source=str(DATA / "projects.csv"), table="projects", warehouse=uri, state_dir=str(tmp_path), dataset=out
    )
    assert out.metadata["table"] == "projects"
    assert out.metadata["rows_read"] == 764 and out.metadata["rows_after"] == 764
    assert len(pd.read_parquet(out.path)) == 764

    again = _artifact(Dataset, tmp_path, "projects-again")
    sync.python_func(
        source=str(DATA / "projects.csv"), table="projects", warehouse=uri, state_dir=str(tmp_path), dataset=again
    )
    assert again.metadata["rows_before"] == again.metadata["rows_after"] == 764


def test_fingerprint_keys_sync_and_a_changed_source_is_refused(tmp_path):
    """sync is cached on the fingerprint task's output: it loads only the bytes that fingerprint names."""
    from components.sync import fingerprint

    source = tmp_path / "tags.csv"
    source.write_bytes((DATA / "tags.csv").read_bytes())
    seen = fingerprint.python_func(source=str(source))
    assert seen.startswith("sha256:") and seen == fingerprint.python_func(source=str(source))
    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    out = _artifact(Dataset, tmp_path, "tags")
    sync.python_func(
        source=str(source), table="tags", warehouse=uri, state_dir=str(tmp_path), dataset=out, source_fingerprint=seen
    )
    assert out.metadata["fingerprint"] == seen and out.metadata["warehouse_table"] == "raw.tags"

    source.write_text(source.read_text() + "99999,mlops\n")  # changed after the fingerprint was taken
    assert fingerprint.python_func(source=str(source)) != seen
    with pytest.raises(SourceError, match="changed since this run took its fingerprint"):
        sync.python_func(
            source=str(source),
            table="tags",
            warehouse=uri,
            state_dir=str(tmp_path),
            dataset=_artifact(Dataset, tmp_path, "tags-2"),
            source_fingerprint=seen,
        )
    import duckdb

    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from raw.tags").fetchone()[0] == 764  # nothing loaded
    with pytest.raises(SourceError, match="no such file"):
        fingerprint.python_func(source=str(tmp_path / "missing.csv"))


def test_extract_reads_the_table_its_curated_input_names_and_checks_its_hash(tmp_path):
    """In continual, extract takes transform's Dataset: it reads the table that names, as it was described."""
    import duckdb

    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    sync.python_func(
        source=str(DATA / "tags.csv"),
        table="tags",
        warehouse=uri,
        state_dir=str(tmp_path),
        dataset=_artifact(Dataset, tmp_path, "snap"),
    )
    described = _artifact(Dataset, tmp_path, "described")
    extract.python_func(warehouse=uri, table="raw.tags", dataset=described)
    names = {"warehouse_table": "raw.tags", "content_hash": described.metadata["content_hash"]}
    curated = _artifact(Dataset, tmp_path, "curated", names)
    out = _artifact(Dataset, tmp_path, "out")
    extract.python_func(warehouse=uri, table="ignored", dataset=out, curated=curated)
    assert out.metadata["table"] == "raw.tags" and out.metadata["rows"] == 764

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:  # another run writes the table meanwhile
        con.execute("delete from raw.tags where id = (select min(id) from raw.tags)")
    late = _artifact(Dataset, tmp_path, "late")
    with pytest.raises(ValueError, match="changed since the step that built it"):
        extract.python_func(warehouse=uri, table="ignored", dataset=late, curated=curated)
    assert not Path(late.path).exists()


def test_sync_component_fails_on_bad_source(tmp_path):
    bad = tmp_path / "tags.csv"
    bad.write_text("id,label\n1,a\n")
    out = _artifact(Dataset, tmp_path, "tags")
    with pytest.raises(SourceError, match="missing column"):
        sync.python_func(
            source=str(bad),
            table="tags",
            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}",
            state_dir=str(tmp_path),
            dataset=out,
        )


def test_extract_component_writes_parquet_with_metadata(tmp_path):
    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    snap = _artifact(Dataset, tmp_path, "snap")
    sync.python_func(source=str(DATA / "tags.csv"), table="tags", warehouse=uri, state_dir=str(tmp_path), dataset=snap)
    out = _artifact(Dataset, tmp_path, "extracted")
    extract.python_func(warehouse=uri, table="raw.tags", dataset=out)
    df = pd.read_parquet(out.path)
    assert out.metadata["rows"] == len(df) == 764
    assert df["id"].is_monotonic_increasing
    assert len(out.metadata["content_hash"]) == 64
    # the hash follows the content: the same table extracted twice gives the same hash
    out2 = _artifact(Dataset, tmp_path, "extracted2")
    extract.python_func(warehouse=uri, table="raw.tags", dataset=out2)
    assert out2.metadata["content_hash"] == out.metadata["content_hash"]


@pytest.fixture(scope="module")
def loaded_warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wh")
    uri = f"duckdb:///{tmp / 'w.duckdb'}"
    for table in ("projects", "tags"):
        sync.python_func(
            source=str(DATA / f"{table}.csv"),
            table=table,
            warehouse=uri,
            state_dir=str(tmp),
            dataset=_artifact(Dataset, tmp, table),
        )
    return tmp, uri


def test_validate_component_on_a_table_and_on_a_dataset(loaded_warehouse, tmp_path):
    from kfp.dsl import HTML, Metrics

    from components.validate import validate_dataset, validate_table

    tmp, uri = loaded_warehouse
    # the table read is the one the upstream Dataset names (sync's metadata), not a parameter
    upstream = _artifact(Dataset, tmp_path, "upstream")
    upstream.metadata["warehouse_table"] = "raw.projects"
    report, metrics = _artifact(HTML, tmp_path, "report"), _artifact(Metrics, tmp_path, "metrics")
    validate_table.python_func(suite="projects", warehouse=uri, upstream=upstream, report=report, metrics=metrics)
    assert metrics.metadata["success_percent"] == 100.0 and metrics.metadata["evaluated"] >= 8
    assert "<html" in Path(report.path).read_text().lower()
    # an upstream that names no table is a clear error, not a validation of some default
    with pytest.raises(ValueError, match="names no warehouse_table"):
        validate_table.python_func(
            suite="projects",
            warehouse=uri,
            upstream=_artifact(Dataset, tmp_path, "bare"),
            report=_artifact(HTML, tmp_path, "r0"),
            metrics=_artifact(Metrics, tmp_path, "m0"),
        )

    bad = pd.read_csv(DATA / "tags.csv")
    bad.loc[3, "tag"] = None
    dataset = _artifact(Dataset, tmp_path, "bad_tags")
    bad.to_parquet(dataset.path)
    report2, metrics2 = _artifact(HTML, tmp_path, "report2"), _artifact(Metrics, tmp_path, "metrics2")
    from tagifai.validation import DataValidationError

    with pytest.raises(DataValidationError, match=r"not_be_null on column 'tag'"):
        validate_dataset.python_func(suite="tags", dataset=dataset, report=report2, metrics=metrics2)
    # the report and metrics are written before the step fails, for the UI
    assert metrics2.metadata["unsuccessful"] >= 1
    assert Path(report2.path).exists()


def test_transform_component_builds_labeled_projects(loaded_warehouse, tmp_path):
    from kfp.dsl import Markdown, Metrics

    from components.transform import transform

    tmp, uri = loaded_warehouse
    report, metrics, out = (
        _artifact(Markdown, tmp_path, "report"),
        _artifact(Metrics, tmp_path, "metrics"),
        _artifact(Dataset, tmp_path, "labeled"),
    )
    batch = {"source": "p.csv", "fingerprint": "sha256:p", "rows_after": 764}
    projects = _artifact(Dataset, tmp_path, "projects", batch)
    tags = _artifact(Dataset, tmp_path, "tags", {"source": "t.csv", "fingerprint": "sha256:t", "rows_after": 764})
    transform.python_func(
        warehouse=uri,
        state_dir=str(tmp),
        target="local",
        projects=projects,
        tags=tags,
        report=report,
        metrics=metrics,
        labeled_projects=out,
    )
    assert out.metadata["rows"] == 764
    # the lineage: what validation and extract read, and the batches this build saw
    assert out.metadata["warehouse_table"] == "labeled_projects"
    assert out.metadata["sources"]["tags"] == {"source": "t.csv", "fingerprint": "sha256:t", "rows_after": 764}
    assert set(pd.read_parquet(out.path).columns) >= {"id", "title", "description", "tag", "created_on"}
    assert metrics.metadata["tests_failed"] == 0 and metrics.metadata["models_passed"] == 3
    assert "labeled_projects" in Path(report.path).read_text()
