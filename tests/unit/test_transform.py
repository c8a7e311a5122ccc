"""The dbt transform layer: real dbt runs (dbt-duckdb, in-process) on real DuckDB files.

Speed: dbt's first parse of a project costs several seconds, a partial parse well under one. All tests
share one state folder, so after the first build only changed inputs are re-parsed. A different
DuckDB path changes dbt's profile hash and forces one full re-parse, so the failure tests all use the
same second file (``broken/warehouse.duckdb``), rewritten before each test from the built warehouse.
Tests run in file order; the order only matters for speed, never for correctness.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tagifai.config import PACKAGE_ROOT
from tagifai.transform import DbtReport, TransformError, keep_parse, parse_seed, run_dbt

DATA = PACKAGE_ROOT / "data" / "madewithml"
DBT_PROJECT = PACKAGE_ROOT / "dbt_transforms"
COLUMNS = ["id", "created_on", "title", "description", "tag"]
RAW_TAG_COUNTS = {
    "natural-language-processing": 310,
    "computer-vision": 285,
    "mlops": 63,
    "reinforcement-learning": 45,
    "graph-learning": 33,
    "time-series": 28,
}

pytestmark = pytest.mark.timeout(300)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def load_raw(path: Path) -> None:
    """Create raw.projects and raw.tags from the CSVs, shaped like dlt's tables (with _dlt_* columns)."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(
            f"""CREATE OR REPLACE TABLE raw.projects AS SELECT
                    CAST(id AS BIGINT) AS id, CAST(created_on AS TIMESTAMP) AS created_on,
                    CAST(title AS VARCHAR) AS title, CAST(description AS VARCHAR) AS description,
                    CAST(epoch(now()) AS VARCHAR) AS _dlt_load_id, md5(CAST(id AS VARCHAR)) AS _dlt_id
                FROM read_csv('{DATA / "projects.csv"}', header = true)"""
        )
        con.execute(
            f"""CREATE OR REPLACE TABLE raw.tags AS SELECT
                    CAST(id AS BIGINT) AS id, CAST(tag AS VARCHAR) AS tag,
                    CAST(epoch(now()) AS VARCHAR) AS _dlt_load_id, md5(CAST(id AS VARCHAR)) AS _dlt_id
                FROM read_csv('{DATA / "tags.csv"}', header = true)"""
        )


def query(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql).df()


def labeled(path: Path) -> pd.DataFrame:
    return query(path, "SELECT * FROM main.labeled_projects ORDER BY id")


def execute(path: Path, *statements: str) -> None:
    with duckdb.connect(str(path)) as con:
        for sql in statements:
            con.execute(sql)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def repo_files() -> set[str]:
    """The files of dbt_transforms/ before any dbt run."""
    return _tree(DBT_PROJECT)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dbt-state")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, repo_files, state_dir) -> dict:
    """One warehouse built from the CSVs, shared by the module: its path, URI and first build report."""
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    load_raw(path)
    uri = f"duckdb:///{path}"
    report = run_dbt("build", uri, project_dir=DBT_PROJECT, state_dir=state_dir)
    return {"path": path, "uri": uri, "report": report}


@pytest.fixture(scope="module")
def broken_path(tmp_path_factory) -> Path:
    """One fixed path for every failure test, so that they all share dbt's partial-parse state."""
    return tmp_path_factory.mktemp("broken") / "warehouse.duckdb"


@pytest.fixture
def broken(warehouse, broken_path) -> Path:
    """A fresh copy of the built warehouse (raw tables and a good labeled_projects) to break."""
    for suffix in ("", ".wal"):
        Path(f"{broken_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(warehouse["path"], broken_path)
    return broken_path


def build_broken(path: Path, state_dir: Path, **kw) -> DbtReport:
    return run_dbt("build", f"duckdb:///{path}", project_dir=DBT_PROJECT, state_dir=state_dir, **kw)


# ----------------------------------------------------------------------------------- successes


def test_build_succeeds(warehouse):
    report = warehouse["report"]
    print(f"\nfirst dbt build (full parse): {report.elapsed:.1f} s")
    assert report.success, report.to_markdown()
    counts = report.counts()
    assert counts["models_passed"] == 3
    assert counts["tests_passed"] >= 20
    assert counts["tests_failed"] == counts["tests_errored"] == counts["models_errored"] == 0
    assert {r["name"] for r in report.results} >= {"stg_projects", "stg_tags", "labeled_projects"}
    assert all(
        set(r) == {"unique_id", "resource_type", "name", "status", "message", "failures", "execution_time"}
        for r in report.results
    )
    report.raise_for_failures()  # no-op
    markdown = report.to_markdown()
    assert "succeeded" in markdown and "| `labeled_projects` | model | success |" in markdown


def test_labeled_projects_joins_tags(warehouse):
    df = labeled(warehouse["path"])
    assert list(df.columns) == COLUMNS
    assert len(df) == 764 and df["id"].is_unique
    assert not df.isna().any().any()
    assert str(df["id"].dtype) == "int64" and str(df["created_on"].dtype).startswith("datetime64")
    assert df["tag"].value_counts().to_dict() == RAW_TAG_COUNTS

    projects = pd.read_csv(DATA / "projects.csv")
    tags = pd.read_csv(DATA / "tags.csv")
    expected = projects.merge(tags, on="id", how="left").sort_values("id").reset_index(drop=True)
    assert df["id"].tolist() == expected["id"].tolist()
    assert df["tag"].tolist() == expected["tag"].tolist()
    ws = " \t\n\r"
    assert df["title"].tolist() == [t.strip(ws) for t in expected["title"]]
    assert df["description"].tolist() == [d.strip(ws) for d in expected["description"]]
    assert (df["created_on"] == pd.to_datetime(expected["created_on"])).all()


def test_staging_views_drop_loader_columns(warehouse):
    for view, columns in {"stg_projects": COLUMNS[:4], "stg_tags": ["id", "tag"]}.items():
        info = query(warehouse["path"], f"DESCRIBE main.{view}")
        assert info["column_name"].tolist() == columns
    kinds = query(
        warehouse["path"],
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1",
    )
    assert dict(zip(kinds["table_name"], kinds["table_type"], strict=False)) == {
        "labeled_projects": "BASE TABLE",
        "stg_projects": "VIEW",
        "stg_tags": "VIEW",
    }


def test_second_build_is_idempotent_and_partially_parsed(warehouse, state_dir):
    before = labeled(warehouse["path"])
    log = state_dir / "local" / "logs" / "dbt.log"
    seen = len(log.read_text())
    report = run_dbt("build", warehouse["uri"], project_dir=DBT_PROJECT, state_dir=state_dir)
    print(f"\nfirst dbt build {warehouse['report'].elapsed:.1f} s, second {report.elapsed:.1f} s")
    assert report.success
    pd.testing.assert_frame_equal(labeled(warehouse["path"]), before)
    this_run = log.read_text()[seen:]
    assert "Nothing changed, skipping partial parsing" in this_run
    assert "full parse" not in this_run.lower()
    assert (state_dir / "local" / "target" / "partial_parse.msgpack").exists()


def test_a_new_state_folder_starts_from_the_last_parse(warehouse, tmp_path, monkeypatch):
    """The first build of a state folder reuses the project's parse an earlier state folder kept, whatever
    the warehouse's path (the profile names only its file); a seed dbt cannot use means a full parse."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seed = parse_seed(DBT_PROJECT, "local")
    assert seed == tmp_path / "cache" / "tagifai" / "dbt-parse" / seed.name and not seed.exists()
    copies = []
    for name in ("one", "two", "three"):
        (tmp_path / name).mkdir()
        copies.append(tmp_path / name / "warehouse.duckdb")
        shutil.copyfile(warehouse["path"], copies[-1])

    def build(path: Path, state: str) -> str:
        report = run_dbt("build", f"duckdb:///{path}", project_dir=DBT_PROJECT, state_dir=tmp_path / state)
        assert report.success, report.to_markdown()
        assert len(labeled(path)) == 764
        return (tmp_path / state / "local" / "logs" / "dbt.log").read_text().lower()

    assert "full parse" in build(copies[0], "state-one")
    assert seed.is_file()
    cwd = os.getcwd()
    log = build(copies[1], "state-two")
    assert os.getcwd() == cwd
    assert "full parse" not in log and "unable to do partial parsing" not in log
    assert (tmp_path / "state-two" / "local" / "target" / "partial_parse.msgpack").is_file()
    seed.write_bytes(b"not a dbt manifest")
    assert "failed to load parsed file" in build(copies[2], "state-three")  # then parsed it all
    assert seed.read_bytes() != b"not a dbt manifest"  # the new parse is kept


def test_keep_parse_needs_no_warehouse_and_serves_the_next_build(warehouse, tmp_path, monkeypatch):
    """What the transform image runs when it is built: a parse kept for later state folders."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    nowhere = tmp_path / "not-yet" / "warehouse.duckdb"
    seed = keep_parse(f"duckdb:///{nowhere}", DBT_PROJECT)
    assert seed == parse_seed(DBT_PROJECT, "local") and seed.is_file()
    assert not nowhere.parent.exists()  # dbt parse opened no warehouse
    (tmp_path / "later").mkdir()
    shutil.copyfile(warehouse["path"], tmp_path / "later" / "warehouse.duckdb")
    report = run_dbt("build", f"duckdb:///{tmp_path / 'later' / 'warehouse.duckdb'}", DBT_PROJECT, None, tmp_path / "s")
    assert report.success, report.to_markdown()
    assert "full parse" not in (tmp_path / "s" / "local" / "logs" / "dbt.log").read_text().lower()


def test_env_is_restored(warehouse, state_dir, monkeypatch):
    monkeypatch.setenv("TAGIFAI_DUCKDB_PATH", "/nonexistent/sentinel.duckdb")
    report = run_dbt("parse", warehouse["uri"], project_dir=DBT_PROJECT, state_dir=state_dir)
    assert report.success, report.to_markdown()
    assert os.environ["TAGIFAI_DUCKDB_PATH"] == "/nonexistent/sentinel.duckdb"
    monkeypatch.delenv("TAGIFAI_DUCKDB_PATH")
    run_dbt("parse", warehouse["uri"], project_dir=DBT_PROJECT, state_dir=state_dir)
    assert "TAGIFAI_DUCKDB_PATH" not in os.environ


# ------------------------------------------------------------------------------------ failures
# Each one breaks raw data in a copy of the built warehouse. The gating tests fail, dbt skips the
# mart, and the previous labeled_projects (764 good rows) is still there afterwards.


def assert_previous_table_kept(path: Path, warehouse) -> None:
    pd.testing.assert_frame_equal(labeled(path), labeled(warehouse["path"]))


def test_duplicated_id_fails_unique(broken, warehouse, state_dir):
    execute(broken, "INSERT INTO raw.projects SELECT * FROM raw.projects WHERE id = (SELECT min(id) FROM raw.projects)")
    report = build_broken(broken, state_dir)
    assert not report.success
    failed = [r["name"] for r in report.failed()]
    assert "source_unique_raw_projects_id" in failed
    assert all(r["status"] == "fail" and r["failures"] == 1 for r in report.failed())
    assert next(r for r in report.results if r["name"] == "labeled_projects")["status"] == "skipped"
    markdown = report.to_markdown()
    assert "FAILED" in markdown and "source_unique_raw_projects_id" in markdown
    assert markdown.index("source_unique_raw_projects_id") < markdown.index("| `stg_projects` |")  # failures first
    with pytest.raises(TransformError, match="source_unique_raw_projects_id"):
        report.raise_for_failures()
    assert_previous_table_kept(broken, warehouse)


def test_unknown_tag_fails_accepted_values(broken, warehouse, state_dir):
    execute(broken, "UPDATE raw.tags SET tag = 'quantum-computing' WHERE id = (SELECT min(id) FROM raw.tags)")
    report = build_broken(broken, state_dir)
    with pytest.raises(TransformError, match="accepted_values_stg_tags_tag") as info:
        report.raise_for_failures()
    assert "Got 1 result" in str(info.value)
    assert_previous_table_kept(broken, warehouse)


@pytest.mark.parametrize("value", ["NULL", "' ' || chr(10) || chr(9) || ' '"], ids=["null", "blank"])
def test_missing_title_fails_not_null(broken, warehouse, state_dir, value):
    execute(broken, f"UPDATE raw.projects SET title = {value} WHERE id % 7 = 0")
    report = build_broken(broken, state_dir)
    assert [r["name"] for r in report.failed()] == ["not_null_stg_projects_title"]
    assert "not_null_stg_projects_title" in report.to_markdown()
    assert report.counts()["tests_failed"] == 1 and report.counts()["models_skipped"] == 1
    assert_previous_table_kept(broken, warehouse)


def test_project_without_tag_fails_relationships(broken, warehouse, state_dir):
    execute(broken, "DELETE FROM raw.tags WHERE id = (SELECT max(id) FROM raw.tags)")
    report = build_broken(broken, state_dir)
    assert [r["name"] for r in report.failed()] == ["relationships_stg_projects_id__stg_tags_id"]
    assert_previous_table_kept(broken, warehouse)


def test_contract_keeps_previous_table_when_mart_alone_is_built(broken, warehouse, state_dir):
    """Building only the mart skips the staging tests; the enforced contract still rejects the bad rows."""
    execute(broken, "UPDATE raw.projects SET title = NULL WHERE id = (SELECT min(id) FROM raw.projects)")
    report = build_broken(broken, state_dir, select=["labeled_projects"])
    failed = report.failed()
    assert [(r["name"], r["status"]) for r in failed] == [("labeled_projects", "error")]
    assert "NOT NULL constraint failed" in failed[0]["message"]
    with pytest.raises(TransformError, match="model labeled_projects errored: .*NOT NULL constraint"):
        report.raise_for_failures()
    assert_previous_table_kept(broken, warehouse)
    leftovers = "SELECT count(*) AS n FROM information_schema.tables WHERE table_name LIKE '%dbt_tmp%'"
    assert query(broken, leftovers)["n"][0] == 0


def test_missing_raw_table_is_a_model_error(broken, warehouse, state_dir):
    execute(broken, "DROP TABLE raw.tags")
    report = build_broken(broken, state_dir)
    assert not report.success
    errored = {r["name"]: r["message"] for r in report.failed()}
    assert any("tags" in (message or "") for message in errored.values()), errored
    with pytest.raises(TransformError):
        report.raise_for_failures()


def test_dbt_errors_become_failed_reports(warehouse, state_dir, tmp_path):
    # A missing warehouse file: no dbt run at all.
    report = run_dbt("build", f"duckdb:///{tmp_path / 'missing.duckdb'}", project_dir=DBT_PROJECT, state_dir=state_dir)
    assert not report.success and "run sync first" in report.error
    assert not (tmp_path / "missing.duckdb").exists()
    # dbt stops before running anything (unknown target): its message, not a traceback.
    report = run_dbt("build", warehouse["uri"], project_dir=DBT_PROJECT, state_dir=state_dir, target="nope")
    assert not report.success and report.results == []
    assert "nope" in report.error
    assert "nope" in report.to_markdown()
    with pytest.raises(TransformError, match="nope"):
        report.raise_for_failures()


def test_compile_error_in_a_model(warehouse, tmp_path):
    project = tmp_path / "dbt_transforms"
    shutil.copytree(DBT_PROJECT, project)
    (project / "models" / "marts" / "labeled_projects.sql").write_text("select * from {{ ref('no_such_model') }}\n")
    report = run_dbt("build", warehouse["uri"], project_dir=project, state_dir=tmp_path / "state")
    assert not report.success
    assert "no_such_model" in report.error
    with pytest.raises(TransformError, match="no_such_model"):
        report.raise_for_failures()


def test_accepted_tags_var(broken, state_dir):
    """Users can widen the accepted tags with the dbt var; the contract's check follows the same var."""
    execute(broken, "UPDATE raw.tags SET tag = 'quantum-computing' WHERE id = (SELECT min(id) FROM raw.tags)")
    tags = [*RAW_TAG_COUNTS, "quantum-computing"]
    report = build_broken(broken, state_dir, vars={"accepted_tags": tags})
    assert report.success, report.to_markdown()
    assert "quantum-computing" in set(labeled(broken)["tag"])


TRICKY_TEXT = [
    " a ",
    "\ta\n",
    "\r\na b\r\n",
    "a \t b",
    "\u00a0a\u00a0",  # a no-break space is not trimmed (as before)
    "  日本語 ",
    "é",
    "\n",
    " \t\r\n ",
    "",
    "x" * 300 + " ",
]


def test_clean_text_trims_exactly_what_trim_trims(broken, state_dir):
    """The staging views trim the four whitespace characters from both ends and make blank text NULL: for every
    value, what DuckDB's trim(x, ' \t\n\r') with nullif(.., '') gives (the macro only skips values that need no
    trimming)."""
    ids = query(broken, f"SELECT id FROM raw.projects ORDER BY id LIMIT {len(TRICKY_TEXT)}")["id"].tolist()
    values = ", ".join(f"({i}, '{v}')" for i, v in zip(ids, TRICKY_TEXT, strict=True))
    execute(broken, f"UPDATE raw.projects SET title = v.t FROM (VALUES {values}) AS v(i, t) WHERE id = v.i")
    report = run_dbt(
        "run", f"duckdb:///{broken}", project_dir=DBT_PROJECT, state_dir=state_dir, select=["stg_projects"]
    )
    assert report.success, report.to_markdown()
    got = query(
        broken,
        "SELECT r.title AS raw, s.title AS staged, nullif(trim(r.title, ' ' || chr(9) || chr(10) || chr(13)), '') "
        "AS expected FROM raw.projects r JOIN main.stg_projects s USING (id)",
    )
    assert len(got) == 764
    assert got["staged"].isna().equals(got["expected"].isna())
    both = got["expected"].notna()
    assert (got.loc[both, "staged"] == got.loc[both, "expected"]).all()
    assert set(TRICKY_TEXT) <= set(got["raw"])
    assert got.loc[got["raw"] == "\u00a0a\u00a0", "staged"].tolist() == ["\u00a0a\u00a0"]
    assert got.loc[got["raw"].isin(["\n", " \t\r\n ", ""]), "staged"].isna().all()


def test_nothing_written_into_the_project(repo_files, warehouse, state_dir):
    assert _tree(DBT_PROJECT) == repo_files
    for folder in ("target", "logs", "dbt_packages"):
        assert not (DBT_PROJECT / folder).exists()
    assert (state_dir / "local" / "target" / "manifest.json").exists()
    assert (state_dir / "local" / "logs" / "dbt.log").exists()
