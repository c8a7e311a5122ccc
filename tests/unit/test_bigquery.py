"""The BigQuery warehouse, verified without BigQuery.

What runs is the real client code: google-auth signs a JWT with a (throw-away) service-account key and
exchanges it for an access token; google-cloud-bigquery, dlt's BigQuery destination, the BigQuery Storage
Read API client and sqlalchemy-bigquery (under Great Expectations) send their real requests. They go to
a loopback server (tests/fakes/bigquery.py, reached through BIGQUERY_EMULATOR_HOST and
TAGIFAI_BQ_STORAGE_ENDPOINT) that records every call, SQL text and load job, and executes the
GoogleSQL on DuckDB after translating it with sqlglot, so multi-step clients (dlt's merge) can go on.
The tests assert what is sent (datasets, load jobs, MERGE on id, COUNT(*) queries, read sessions,
GX's SQL) and its effect under DuckDB; that BigQuery itself accepts each statement is not proven here.
dbt's ``prod`` target is parsed and compiled offline with a dummy service-account key.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pandas as pd
import pytest
from fakes.bigquery import FakeBigQuery

from tagifai.config import PACKAGE_ROOT
from tagifai.extract import content_hash, extract_table
from tagifai.sources import read_source
from tagifai.sync import SyncError, sync
from tagifai.warehouse import WarehouseError, bigquery, parse_warehouse, read_table
from tagifai.warehouse.bigquery import BigQueryWarehouse

DATA = PACKAGE_ROOT / "data" / "madewithml"
PROJECT, DATASET = "tagifai-test", "tagifai"
URI = f"bigquery://{PROJECT}/{DATASET}"
WH = BigQueryWarehouse(PROJECT, DATASET)
BQ_ENV = (
    "TAGIFAI_BQ_KEYFILE",
    "BIGQUERY_EMULATOR_HOST",
    "TAGIFAI_BQ_STORAGE_ENDPOINT",
    "TAGIFAI_BQ_STORAGE_API",
    "TAGIFAI_BQ_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "TAGIFAI_RAW_SCHEMA",
)

pytestmark = pytest.mark.timeout(300)


def _private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


@pytest.fixture(scope="module")
def pem() -> str:
    return _private_key_pem()


@pytest.fixture(scope="module")
def bq(tmp_path_factory, pem):
    """The fake BigQuery, a key file whose token_uri is the fake, and the environment pointing at both."""
    tmp = tmp_path_factory.mktemp("bq")
    fake = FakeBigQuery(PROJECT).start()
    keyfile = tmp / "key.json"
    keyfile.write_text(json.dumps(fake.service_account_info(pem)))
    with pytest.MonkeyPatch.context() as mp:
        for var in BQ_ENV:
            mp.delenv(var, raising=False)
        mp.setenv("TAGIFAI_BQ_KEYFILE", str(keyfile))
        mp.setenv("BIGQUERY_EMULATOR_HOST", fake.endpoint)
        mp.setenv("TAGIFAI_BQ_STORAGE_ENDPOINT", fake.storage_endpoint)
        fake.keyfile, fake.state = keyfile, tmp / "state"
        yield fake
    fake.stop()


@pytest.fixture(scope="module")
def loaded(bq):
    """projects synced twice and tags once into bigquery://tagifai-test/tagifai (module-wide)."""
    first = sync(str(DATA / "projects.csv"), "projects", URI, bq.state)
    marks = {"projects_first": (len(bq.calls), len(bq.queries), len(bq.loads))}
    second = sync(str(DATA / "projects.csv"), "projects", URI, bq.state)
    tags = sync(str(DATA / "tags.csv"), "tags", URI, bq.state)
    return {"first": first, "second": second, "tags": tags, "marks": marks}


def _pages(fake: FakeBigQuery) -> int:
    """tabledata.list calls so far (rows read over REST)."""
    return sum(1 for c in fake.calls if c.method == "GET" and c.path.endswith("/data"))


# ------------------------------------------------------------------------------------ naming & errors


def test_table_names_map_to_the_datasets_dbt_uses():
    assert parse_warehouse(URI) == WH and WH.uri == URI
    assert WH.raw_dataset == "tagifai_raw"  # dbt prod: source raw = target.schema ~ '_raw'
    assert WH.table_ref("raw.projects") == "`tagifai-test`.`tagifai_raw`.`projects`"
    assert WH.resolve("labeled_projects").id == "tagifai-test.tagifai.labeled_projects"
    assert WH.resolve("main.labeled_projects").id == "tagifai-test.tagifai.labeled_projects"
    assert WH.resolve("scratch.t").id == "tagifai-test.scratch.t"
    assert WH.resolve("other-proj.d.t").id == "other-proj.d.t"
    with pytest.raises(WarehouseError, match="expected table, schema.table or project.dataset.table"):
        WH.table_ref("a.b.c.d")


def test_dbt_and_dlt_settings_come_from_the_warehouse(monkeypatch, tmp_path):
    for var in BQ_ENV:
        monkeypatch.delenv(var, raising=False)
    assert WH.dbt_target == "prod" and not WH.gx_pandas
    assert WH.dbt_env() == {"TAGIFAI_BQ_PROJECT": PROJECT, "TAGIFAI_BQ_DATASET": DATASET, "TAGIFAI_BQ_LOCATION": "US"}
    monkeypatch.setenv("TAGIFAI_BQ_KEYFILE", str(tmp_path / "key.json"))
    monkeypatch.setenv("TAGIFAI_BQ_LOCATION", "EU")
    assert WH.dbt_env()["TAGIFAI_BQ_KEYFILE"] == str(tmp_path / "key.json")
    assert WH.dbt_env()["TAGIFAI_BQ_LOCATION"] == "EU"
    assert WH.dlt_write_disposition() == {"disposition": "merge", "strategy": "upsert"}  # one atomic MERGE


@pytest.mark.parametrize("uri", ["bigquery://only-project", "bigquery:///dataset", "bigquery://p/d/extra"])
def test_bad_bigquery_uris_say_what_is_expected(uri):
    with pytest.raises(WarehouseError, match=r"expected bigquery://<project>/<dataset>"):
        parse_warehouse(uri)


def test_missing_credentials_are_named(tmp_path):
    """No key file, no GOOGLE_APPLICATION_CREDENTIALS, no gcloud login, not on GCP: one clear message.

    Run in a fresh interpreter: google-auth reads its metadata-server settings at import time.
    """
    env = {k: v for k, v in os.environ.items() if k not in BQ_ENV}
    env.update(CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="true", HOME=str(tmp_path))
    code = "from tagifai.warehouse import read_table\nread_table('bigquery://p/d', 'raw.projects')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    expected = "no Google Cloud credentials for BigQuery: set TAGIFAI_BQ_KEYFILE"
    assert f"tagifai.warehouse.bigquery.BigQueryError: {expected}" in out.stderr


def test_bad_key_files_are_named_without_their_content(tmp_path, monkeypatch, pem):
    monkeypatch.setenv("TAGIFAI_BQ_KEYFILE", str(tmp_path / "missing.json"))
    with pytest.raises(bigquery.BigQueryError, match="TAGIFAI_BQ_KEYFILE=.*missing.json: no such file"):
        bigquery.credentials()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"type": "service_account", "private_key": pem}))  # no client_email, token_uri
    monkeypatch.setenv("TAGIFAI_BQ_KEYFILE", str(broken))
    with pytest.raises(bigquery.BigQueryError, match="is not a usable service-account key file") as info:
        sync(str(DATA / "tags.csv"), "tags", URI, tmp_path / "state")
    assert "PRIVATE KEY" not in str(info.value) and pem.splitlines()[1] not in str(info.value)


# ------------------------------------------------------------------------------------------ sync


def test_first_sync_creates_the_raw_dataset_loads_to_staging_and_merges_on_id(bq, loaded):
    first = loaded["first"]
    assert (first.rows_read, first.rows_before, first.rows_after) == (764, 0, 764)
    n_calls, n_queries, n_loads = loaded["marks"]["projects_first"]

    # auth: a JWT-bearer grant at the key's token_uri, then only the issued token is used
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert bq.token_requests and all(r["grant_type"] == grant for r in bq.token_requests)
    api_calls = [c for c in bq.calls[:n_calls] if c.path != "/token"]
    assert api_calls and all(c.authorization in {f"Bearer {t}" for t in bq.tokens} for c in api_calls)

    # the raw dataset is created in the configured location, with dlt's staging dataset beside it
    created = [c.body for c in bq.calls[:n_calls] if c.method == "POST" and c.path.endswith("/datasets")]
    assert {"datasetId": "tagifai_raw", "projectId": PROJECT} in [b["datasetReference"] for b in created]
    assert all(b["location"] == "US" for b in created)

    # the batch goes to the staging table with a Parquet load job (append, never creating tables)
    load = next(x for x in bq.loads[:n_loads] if x["destinationTable"]["tableId"] == "projects")
    assert load["destinationTable"] == {"projectId": PROJECT, "datasetId": "tagifai_raw_staging", "tableId": "projects"}
    assert (load["sourceFormat"], load["writeDisposition"], load["createDisposition"], load["rows"]) == (
        "PARQUET",
        "WRITE_APPEND",
        "CREATE_NEVER",
        764,
    )

    # then one MERGE statement on id applies it (atomic in BigQuery), before any row count is read
    sqls = [q["sql"] for q in bq.queries[:n_queries]]
    merges = [s for s in sqls if s.lstrip().startswith("MERGE")]
    assert len(merges) == 1
    merge = " ".join(merges[0].split())
    assert merge.startswith(
        f"MERGE INTO `{PROJECT}`.`tagifai_raw`.`projects` d "
        f"USING `{PROJECT}`.`tagifai_raw_staging`.`projects` s ON d.`id` = s.`id`"
    )
    assert "WHEN MATCHED THEN UPDATE SET" in merge
    assert "WHEN NOT MATCHED THEN INSERT (`id`, `created_on`, `title`, `description`)" in merge
    assert not any(s.lstrip().startswith("DELETE") for s in sqls)  # no non-atomic delete-insert script
    counts = [s for s in sqls if s.startswith("SELECT COUNT(*)")]
    assert counts == [f"SELECT COUNT(*) AS n FROM `{PROJECT}`.`tagifai_raw`.`projects`"] * 2  # before and after


def test_second_sync_leaves_one_copy_of_each_row(bq, loaded):
    second = loaded["second"]
    assert (second.rows_before, second.rows_after) == (764, 764)
    ids = bq.execute('SELECT count(*), count(DISTINCT id) FROM "tagifai_raw"."projects"').fetchall()[0]
    assert ids == (764, 764)


def test_merge_updates_changed_rows_and_adds_new_ones(bq, loaded, tmp_path):
    changed = pd.read_csv(DATA / "tags.csv")
    first_id = int(changed.loc[0, "id"])
    changed.loc[0, "tag"] = "mlops" if changed.loc[0, "tag"] != "mlops" else "computer-vision"
    changed = pd.concat([changed, pd.DataFrame([{"id": 10_000_001, "tag": "time-series"}])])
    src = tmp_path / "tags_v2.csv"
    changed.to_csv(src, index=False)
    result = sync(str(src), "tags", URI, bq.state)
    assert (result.rows_before, result.rows_after) == (764, 765)
    tags = dict(bq.execute('SELECT id, tag FROM "tagifai_raw"."tags"').fetchall())
    assert tags[first_id] == changed.iloc[0]["tag"] and tags[10_000_001] == "time-series"
    # put the original back for the tests that follow
    sync(str(DATA / "tags.csv"), "tags", URI, bq.state)
    bq.execute('DELETE FROM "tagifai_raw"."tags" WHERE id = 10000001')


def test_a_failed_merge_leaves_the_table_unchanged(bq, loaded, tmp_path):
    before = read_table(URI, "raw.tags")
    changed = pd.read_csv(DATA / "tags.csv")
    changed["tag"] = "other"
    src = tmp_path / "tags_bad.csv"
    changed.to_csv(src, index=False)
    bq.failing_sql = [["MERGE INTO", 99]]  # dlt retries a failed merge job a few times, then gives up
    try:
        unchanged = "loading tags into bigquery://tagifai-test/tagifai failed; the table is unchanged"
        with pytest.raises(SyncError, match=unchanged):
            sync(str(src), "tags", URI, bq.state)
        assert 99 - bq.failing_sql[0][1] >= 2
    finally:
        bq.failing_sql = []
    after = read_table(URI, "raw.tags")
    assert content_hash(after) == content_hash(before)


def test_count_query_retries_a_transient_5xx(bq, loaded):
    bq.faults = [["POST", r"/queries$", 503, 1]]
    assert WH.count_rows("raw.projects") == 764
    assert bq.faults[0][3] == 0  # the 503 was answered, and the client library retried
    assert WH.count_rows("raw.not_there") == 0


# ------------------------------------------------------------------------------------------ reading


def test_read_table_uses_the_storage_read_api_and_matches_the_source(bq, loaded):
    sessions = len(bq.read_sessions)
    df = read_table(URI, "raw.projects")
    session = bq.read_sessions[sessions]
    assert session["table"] == f"projects/{PROJECT}/datasets/tagifai_raw/tables/projects"
    assert (session["parent"], session["data_format"], session["rows"]) == (f"projects/{PROJECT}", "ARROW", 764)
    expected = read_source(str(DATA / "projects.csv"), "projects")
    assert list(df.columns) == list(expected.columns)
    assert str(df["id"].dtype) == "int64" and str(df["created_on"].dtype).startswith("datetime64")
    assert df["created_on"].dt.tz is None  # TIMESTAMP (UTC) comes back naive UTC, as from DuckDB
    assert content_hash(df.sort_values("id")) == content_hash(expected)


def test_rest_reads_give_the_same_frame(bq, loaded, monkeypatch):
    monkeypatch.setenv("TAGIFAI_BQ_STORAGE_API", "0")
    sessions, pages = len(bq.read_sessions), _pages(bq)
    df = read_table(URI, "raw.projects")
    assert len(bq.read_sessions) == sessions and _pages(bq) > pages  # tabledata.list
    assert content_hash(df.sort_values("id")) == content_hash(read_source(str(DATA / "projects.csv"), "projects"))


def test_extract_writes_the_bigquery_table_as_parquet(bq, loaded, tmp_path):
    meta = extract_table(URI, "raw.tags", tmp_path / "tags.parquet")
    assert meta["table"] == "raw.tags" and meta["rows"] == 764 and meta["columns"] == ["id", "tag"]
    assert meta["content_hash"] == content_hash(read_source(str(DATA / "tags.csv"), "tags"))


def test_reading_a_missing_table_says_what_to_run(bq, loaded):
    missing = "table tagifai-test.tagifai.labeled_projects not found in BigQuery: run sync"
    with pytest.raises(WarehouseError, match=missing):
        read_table(URI, "labeled_projects")


def test_no_secret_reaches_the_logs(bq, loaded, caplog, pem):
    caplog.set_level(logging.DEBUG)
    WH.count_rows("raw.tags")
    read_table(URI, "raw.tags")
    assert "tagifai_raw" in caplog.text  # requests were logged (urllib3 at DEBUG)
    for secret in [*bq.tokens, pem.splitlines()[1], *[r["assertion"][-40:] for r in bq.token_requests]]:
        assert secret not in caplog.text


# ------------------------------------------------------------------------------- Great Expectations


def test_gx_bigquery_datasource_configuration(bq, monkeypatch, pem):
    conn = WH.gx_connection_string()
    assert conn == f"bigquery://{PROJECT}/{DATASET}?location=US&credentials_path={bq.keyfile.resolve()}"
    assert WH.gx_table_asset("raw.projects") == {
        "name": "tagifai_raw.projects",
        "table_name": "projects",
        "schema_name": "tagifai_raw",
    }
    monkeypatch.delenv("TAGIFAI_BQ_KEYFILE")
    monkeypatch.setenv("TAGIFAI_BQ_LOCATION", "EU")
    assert WH.gx_connection_string() == f"bigquery://{PROJECT}/{DATASET}?location=EU"  # ADC: no credentials in it

    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    ds = context.data_sources.add_bigquery("check", connection_string=conn)
    config = ds.dict()
    assert config["type"] == "bigquery" and config["connection_string"] == conn
    assert pem.splitlines()[1] not in json.dumps(config, default=str)


def test_gx_validates_bigquery_tables_with_sql(bq, loaded):
    from tagifai.validation import validate_table

    n_queries, sessions, pages = len(bq.queries), len(bq.read_sessions), _pages(bq)
    report = validate_table(URI, "raw.projects", "projects")
    assert report.success and report.evaluated == report.successful >= 16, report.failure_message()
    sent = [q["sql"] for q in bq.queries[n_queries:]]
    # the expectations ran as BigQuery SQL from sqlalchemy-bigquery; no row was downloaded
    assert any("REGEXP_CONTAINS(`title`" in s for s in sent)
    assert any("count(*) AS `table_row_count`" in s and "FROM `tagifai_raw`.projects" in s for s in sent)
    assert len(bq.read_sessions) == sessions and _pages(bq) == pages

    bq.execute('INSERT INTO "tagifai_raw"."tags" SELECT * FROM "tagifai_raw"."tags" ORDER BY id LIMIT 2')
    try:
        bad = validate_table(URI, "raw.tags", "tags")
    finally:
        bq.execute('DELETE FROM "tagifai_raw"."tags"')
        sync(str(DATA / "tags.csv"), "tags", URI, bq.state)
    assert not bad.success
    failed = {f["expectation"]: f for f in bad.failures}
    assert failed["expect_column_values_to_be_unique"]["unexpected_count"] == 4
    assert "expect_column_values_to_be_unique on column 'id'" in bad.failure_message()


def test_gx_on_a_missing_table_is_a_clear_error(bq, loaded):
    from tagifai.validation import validate_table

    with pytest.raises(WarehouseError, match="tagifai-test.tagifai.labeled_projects not found in BigQuery"):
        validate_table(URI, "main.labeled_projects", "labeled_projects")


# --------------------------------------------------------------------------------------------- dbt


def test_dbt_prod_target_parses_and_compiles_offline(tmp_path, monkeypatch, pem):
    """dbt's prod (BigQuery) target with a dummy service-account key: parse and compile, no network."""
    from tagifai.transform import run_dbt

    for var in BQ_ENV:
        monkeypatch.delenv(var, raising=False)
    key = {
        "type": "service_account",
        "project_id": "acme-ml",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "dbt@acme-ml.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token",
    }  # nothing listens there: any token request would fail
    keyfile = tmp_path / "key.json"
    keyfile.write_text(json.dumps(key))
    monkeypatch.setenv("TAGIFAI_BQ_KEYFILE", str(keyfile))
    uri, state = "bigquery://acme-ml/tagifai_prod", tmp_path / "dbt"

    parsed = run_dbt("parse", uri, state_dir=state)  # the warehouse's dbt target: prod
    assert parsed.success, parsed.error
    compiled = run_dbt("compile --no-populate-cache", uri, target="prod", state_dir=state)
    assert compiled.success, compiled.error
    assert {r["name"] for r in compiled.results} >= {"stg_projects", "stg_tags", "labeled_projects"}

    out = state / "prod" / "target" / "compiled" / "tagifai" / "models"
    stg_projects = (out / "staging" / "stg_projects.sql").read_text()
    stg_tags = (out / "staging" / "stg_tags.sql").read_text()
    mart = (out / "marts" / "labeled_projects.sql").read_text()
    # the sources are the raw tables sync loads (same naming on both sides)
    wh = parse_warehouse(uri)
    assert f"from {wh.table_ref('raw.projects')}" in stg_projects
    assert f"from {wh.table_ref('raw.tags')}" in stg_tags
    assert "`acme-ml`.`tagifai_prod_raw`.`projects`" in stg_projects
    assert "`acme-ml`.`tagifai_prod`.`stg_projects`" in mart and "`acme-ml`.`tagifai_prod`.`stg_tags`" in mart
    assert "as string" in stg_projects and "varchar" not in stg_projects  # the BigQuery dialect of clean_text

    manifest = json.loads((state / "prod" / "target" / "manifest.json").read_text())
    node = manifest["nodes"]["model.tagifai.labeled_projects"]
    assert (node["database"], node["schema"], node["config"]["materialized"]) == ("acme-ml", "tagifai_prod", "table")
    source = manifest["sources"]["source.tagifai.raw.projects"]
    assert (source["database"], source["schema"]) == ("acme-ml", "tagifai_prod_raw")
    assert manifest["metadata"]["adapter_type"] == "bigquery"

    logs = "".join(p.read_text(errors="replace") for p in (state / "prod" / "logs").rglob("*") if p.is_file())
    assert pem.splitlines()[1] not in logs and pem.splitlines()[1] not in json.dumps(manifest)
