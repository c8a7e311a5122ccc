"""BigQuery as the warehouse (``bigquery://project/dataset``).

Datasets: the dbt models live in ``<dataset>`` (dbt's ``prod`` target), the raw tables that sync loads in
``<dataset>_raw`` (the default schema of dbt's ``raw`` source on BigQuery). A table name given as
``raw.<table>`` or ``main.<table>`` (the DuckDB schema names) maps to those two datasets, so callers
never spell BigQuery dataset names.

Credentials (never logged, never put in a URL or an error message):

* ``TAGIFAI_BQ_KEYFILE``: a service-account key file (the same variable dbt's ``prod`` profile reads);
* otherwise Application Default Credentials: ``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth
  application-default login``, or the attached service account / workload identity on GCP.

Other settings: ``TAGIFAI_BQ_LOCATION`` (default ``US``, as in dbt's profile and dlt),
``BIGQUERY_EMULATOR_HOST`` (honoured by google-cloud-bigquery itself: every REST call, ours, dlt's and
Great Expectations', goes to that host, for an emulator or a test server),
``TAGIFAI_BQ_STORAGE_API=0`` (read tables page by page over REST instead of the Storage Read API) and
``TAGIFAI_BQ_STORAGE_ENDPOINT`` (``host:port`` of an emulator's BigQuery Storage Read API, reached over
plain gRPC; unset means Google's endpoint with the credentials above).

google-cloud-bigquery is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tagifai.warehouse import CURATED_SCHEMA, RAW_SCHEMA, Warehouse, WarehouseError, parse_warehouse

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

KEYFILE_ENV = "TAGIFAI_BQ_KEYFILE"
LOCATION_ENV = "TAGIFAI_BQ_LOCATION"
STORAGE_ENDPOINT_ENV = "TAGIFAI_BQ_STORAGE_ENDPOINT"
STORAGE_API_ENV = "TAGIFAI_BQ_STORAGE_API"
DEFAULT_LOCATION = "US"
SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform")


class BigQueryError(WarehouseError):
    """BigQuery could not be reached, authenticated against, or queried."""


@dataclass(frozen=True)
class TableRef:
    """A fully qualified BigQuery table."""

    project: str
    dataset: str
    table: str

    @property
    def id(self) -> str:
        """``project.dataset.table`` (the form the client library takes)."""
        return f"{self.project}.{self.dataset}.{self.table}"

    @property
    def sql(self) -> str:
        """The table quoted for GoogleSQL: ```project`.`dataset`.`table```."""
        return ".".join(f"`{part}`" for part in (self.project, self.dataset, self.table))


# ------------------------------------------------------------------------------------------ naming


def _bigquery(warehouse: str | Warehouse) -> Warehouse:
    wh = parse_warehouse(warehouse) if isinstance(warehouse, str) else warehouse
    if wh.kind != "bigquery":
        raise WarehouseError(f"warehouse {wh.uri!r} is not a BigQuery warehouse (expected bigquery://<project>/<dataset>)")
    return wh


def raw_dataset(warehouse: str | Warehouse) -> str:
    """The dataset holding the raw tables: ``<dataset>_raw`` (dbt's ``raw`` source on BigQuery)."""
    return f"{_bigquery(warehouse).dataset}_{RAW_SCHEMA}"


def table_ref(warehouse: str | Warehouse, table: str, schema: str | None = None) -> TableRef:
    """Resolve ``table``, ``schema.table`` or ``dataset.table`` or ``project.dataset.table``.

    ``raw`` means ``<dataset>_raw`` and ``main`` (the default) means ``<dataset>``; any other schema is
    taken as a dataset name of the warehouse's project.
    """
    wh = _bigquery(warehouse)
    parts = [p.strip("`") for p in table.split(".")]
    if len(parts) == 1:
        parts = [schema or CURATED_SCHEMA, parts[0]]
    if any(not p for p in parts) or len(parts) > 3:
        raise WarehouseError(f"table {table!r}: expected table, schema.table or project.dataset.table")
    if len(parts) == 3:
        return TableRef(*parts)
    dataset, name = parts
    if dataset == RAW_SCHEMA:
        dataset = raw_dataset(wh)
    elif dataset == CURATED_SCHEMA:
        dataset = wh.dataset
    return TableRef(wh.project, dataset, name)


def location() -> str:
    """The BigQuery location of datasets and jobs (``TAGIFAI_BQ_LOCATION``, default ``US``)."""
    return os.environ.get(LOCATION_ENV) or DEFAULT_LOCATION


# ------------------------------------------------------------------------------------- credentials


def keyfile() -> Path | None:
    """The service-account key file named by ``TAGIFAI_BQ_KEYFILE``, if any (checked to exist)."""
    value = os.environ.get(KEYFILE_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise BigQueryError(f"{KEYFILE_ENV}={value}: no such file (a service-account key file is expected)")
    return path


def credentials():
    """Google credentials for BigQuery: the key file of ``TAGIFAI_BQ_KEYFILE``, else ADC.

    Raises :class:`BigQueryError` saying what to set when there are none. Messages never contain key
    material: only the variable names and the file path.
    """
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

    path = keyfile()
    if path is not None:
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_file(str(path), scopes=list(SCOPES))
        except (ValueError, KeyError, GoogleAuthError) as exc:
            # The library's messages name missing fields, never values; still, keep only the type.
            raise BigQueryError(
                f"{KEYFILE_ENV}={path} is not a usable service-account key file ({type(exc).__name__})"
            ) from None
    try:
        creds, _ = google.auth.default(scopes=list(SCOPES))
    except DefaultCredentialsError:
        raise BigQueryError(
            "no Google Cloud credentials for BigQuery: set TAGIFAI_BQ_KEYFILE (or "
            "GOOGLE_APPLICATION_CREDENTIALS) to a service-account key file, run "
            "`gcloud auth application-default login`, or run with an attached service account "
            "(workload identity on GKE, the pipeline's service account on Vertex AI)"
        ) from None
    return creds


def dlt_credentials(warehouse: str | Warehouse):
    """dlt's credentials spec for the BigQuery destination: the service-account key file, else ADC.

    (dlt 1.31 cannot take a native ``service_account.Credentials`` object: it treats it as the key
    string. Its spec parses the key file's JSON instead, and with no key it resolves ADC itself.)
    """
    from dlt.common.configuration.specs import GcpServiceAccountCredentials

    wh = _bigquery(warehouse)
    spec = GcpServiceAccountCredentials()
    path = keyfile()
    if path is not None:
        credentials()  # validate the file the same way (and with the same message) as our own clients
        spec.parse_native_representation(path.read_text(encoding="utf-8"))
    else:
        credentials()  # fail early, naming what to set, when there are no default credentials either
        spec.project_id = wh.project
    return spec


def client(warehouse: str | Warehouse, creds=None):
    """A ``google.cloud.bigquery.Client`` billed to the warehouse's project."""
    wh = _bigquery(warehouse)
    try:
        from google.cloud import bigquery
    except ImportError as exc:  # pragma: no cover - depends on the image
        raise BigQueryError("BigQuery needs google-cloud-bigquery (pip install 'tagifai-pipelines[bigquery]')") from exc
    return bigquery.Client(project=wh.project, credentials=creds or credentials(), location=location())


def storage_client(creds=None):
    """A BigQuery Storage Read API client, or None when it is not installed or turned off.

    ``TAGIFAI_BQ_STORAGE_API=0`` turns it off (the Read API needs the ``bigquery.readsessions.create``
    permission, e.g. the BigQuery Read Session User role). ``TAGIFAI_BQ_STORAGE_ENDPOINT=host:port``
    points it at an emulator over plain gRPC.
    """
    if os.environ.get(STORAGE_API_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from google.cloud import bigquery_storage_v1
    except ImportError:
        return None
    endpoint = os.environ.get(STORAGE_ENDPOINT_ENV, "").strip()
    if endpoint:
        import grpc
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

        endpoint = endpoint.split("://", 1)[-1]
        transport = BigQueryReadGrpcTransport(channel=grpc.insecure_channel(endpoint))
        return bigquery_storage_v1.BigQueryReadClient(transport=transport)
    return bigquery_storage_v1.BigQueryReadClient(credentials=creds or credentials())


# ------------------------------------------------------------------------------------------ reading


def _not_found(exc: BaseException) -> bool:
    from google.api_core import exceptions

    return isinstance(exc, exceptions.NotFound)


def _describe(exc: BaseException) -> str:
    """A Google API error as one line: its code and message (never the request's headers)."""
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {' '.join(str(message).split())}"


def count_rows(warehouse: str | Warehouse, table: str, schema: str | None = None) -> int:
    """``SELECT COUNT(*)`` of a table; 0 when the table (or its dataset) does not exist yet."""
    ref = table_ref(warehouse, table, schema)
    bq = client(warehouse)
    sql = f"SELECT COUNT(*) AS n FROM {ref.sql}"
    try:
        rows = list(bq.query_and_wait(sql))
    except Exception as exc:  # noqa: BLE001 - google raises many kinds; name the table once
        if _not_found(exc):
            return 0
        raise BigQueryError(f"counting rows of {ref.id} failed: {_describe(exc)}") from exc
    finally:
        bq.close()
    return int(rows[0][0])


def read_table(warehouse: str | Warehouse, table: str, schema: str | None = None) -> "pd.DataFrame":
    """A whole table as a dataframe, through the BigQuery Storage Read API when it is installed.

    Without google-cloud-bigquery-storage, rows come page by page over the REST API (tabledata.list).
    TIMESTAMP columns (UTC) come back as naive UTC datetimes, like the DuckDB warehouse's, so the same
    table gives the same dataframe (and content hash) on both.
    """
    import pandas as pd

    ref = table_ref(warehouse, table, schema)
    creds = credentials()
    bq = client(warehouse, creds)
    bqstorage = storage_client(creds)
    try:
        rows = bq.list_rows(ref.id)
        with warnings.catch_warnings():  # "use pandas-gbq instead": the same calls underneath
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            df = rows.to_dataframe(bqstorage_client=bqstorage, create_bqstorage_client=False)
    except Exception as exc:  # noqa: BLE001
        if _not_found(exc):
            raise WarehouseError(f"table {ref.id} not found in BigQuery: run sync (raw tables) or transform (models) first") from exc
        raise BigQueryError(f"reading {ref.id} failed: {_describe(exc)}") from exc
    finally:
        bq.close()
        if bqstorage is not None:
            bqstorage.transport.close()
    log.info("read %s rows from %s (%s)", len(df), ref.id, "storage read API" if bqstorage is not None else "REST")
    for col in df.columns:
        if isinstance(df[col].dtype, pd.DatetimeTZDtype):
            df[col] = df[col].dt.tz_convert("UTC").dt.tz_localize(None)
        elif isinstance(df[col].dtype, pd.Int64Dtype) and not df[col].isna().any():
            df[col] = df[col].astype("int64")  # the dtype DuckDB gives for a column without NULLs
    return df


def table_columns(warehouse: str | Warehouse, table: str, schema: str | None = None) -> list[str]:
    """The column names of a table (tables.get); :class:`WarehouseError` when it does not exist."""
    ref = table_ref(warehouse, table, schema)
    bq = client(warehouse)
    try:
        return [f.name for f in bq.get_table(ref.id).schema]
    except Exception as exc:  # noqa: BLE001
        if _not_found(exc):
            raise WarehouseError(f"table {ref.id} not found in BigQuery: run sync (raw tables) or transform (models) first") from exc
        raise BigQueryError(f"reading the schema of {ref.id} failed: {_describe(exc)}") from exc
    finally:
        bq.close()


# ----------------------------------------------------------------------- Great Expectations (SQL)


def gx_connection_string(warehouse: str | Warehouse) -> str:
    """The SQLAlchemy URL of Great Expectations' BigQuery datasource (sqlalchemy-bigquery).

    ``bigquery://<project>/<dataset>?location=<location>[&credentials_path=<key file>]``: the key file's
    path (not its content) when ``TAGIFAI_BQ_KEYFILE`` is set, else ADC. No secret is ever in it.
    """
    wh = _bigquery(warehouse)
    params = {"location": location()}
    path = keyfile()
    if path is not None:
        params["credentials_path"] = str(path.resolve())
    query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())
    return f"bigquery://{wh.project}/{wh.dataset}?{query}"


def gx_table_asset(warehouse: str | Warehouse, table: str, schema: str | None = None) -> dict[str, Any]:
    """The arguments of GX's ``add_table_asset`` for a warehouse table: ``table_name`` and ``schema_name``."""
    ref = table_ref(warehouse, table, schema)
    wh = _bigquery(warehouse)
    if ref.project != wh.project:
        raise WarehouseError(f"table {ref.id}: Great Expectations reads tables of project {wh.project} only")
    return {"name": f"{ref.dataset}.{ref.table}", "table_name": ref.table, "schema_name": ref.dataset}
