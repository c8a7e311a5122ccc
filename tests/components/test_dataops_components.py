"""Component functions called directly with real artifact objects pointed at a temp dir."""

from pathlib import Path

import pandas as pd
import pytest
from kfp.dsl import Dataset

from components.extract import extract
from components.sync import sync
from tagifai.sources import SourceError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "madewithml"


def _artifact(cls, tmp_path: Path, name: str):
    path = tmp_path / "artifacts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return cls(name=name, uri=str(path), metadata={})


def test_sync_component_loads_and_records_metadata(tmp_path):
    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    out = _artifact(Dataset, tmp_path, "projects")
    sync.python_func(source=str(DATA / "projects.csv"), table="projects", warehouse=uri, state_dir=str(tmp_path), dataset=out)
    assert out.metadata["table"] == "projects"
    assert out.metadata["rows_read"] == 764 and out.metadata["rows_after"] == 764
    assert len(pd.read_parquet(out.path)) == 764

    again = _artifact(Dataset, tmp_path, "projects-again")
    sync.python_func(source=str(DATA / "projects.csv"), table="projects", warehouse=uri, state_dir=str(tmp_path), dataset=again)
    assert again.metadata["rows_before"] == again.metadata["rows_after"] == 764


def test_sync_component_fails_on_bad_source(tmp_path):
    bad = tmp_path / "tags.csv"
    bad.write_text("id,label\n1,a\n")
    out = _artifact(Dataset, tmp_path, "tags")
    with pytest.raises(SourceError, match="missing column"):
        sync.python_func(source=str(bad), table="tags", warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}", state_dir=str(tmp_path), dataset=out)


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
