"""BigQuery as the warehouse (``bigquery://project/dataset``).

Datasets: the dbt models live in ``<dataset>`` (dbt's ``prod`` target), the raw tables that sync loads in
``<dataset>_raw`` (the default schema of dbt's ``raw`` source on BigQuery). A table name given as
``raw.<table>`` or ``main.<table>`` (the DuckDB schema names) maps to those two datasets, so callers
never spell BigQuery dataset names.

Credentials (never logged, never put in a URL or an error message):

* ``TAGIFAI_BQ_KEYFILE``: a service-account key file (the same variable dbt's ``prod`` profile reads);
* otherwise Application Default Credentials: ``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth
  application-default login``, or the attached service account / workload identity on GCP.

Other settings (``tagifai.config.Settings``): ``TAGIFAI_BQ_LOCATION`` (default ``US``, as in dbt's profile
and dlt), ``TAGIFAI_BQ_STORAGE_API=0`` (read tables page by page over REST instead of the Storage Read
API) and ``TAGIFAI_BQ_STORAGE_ENDPOINT`` (``host:port`` of an emulator's BigQuery Storage Read API,
reached over plain gRPC; unset means Google's endpoint with the credentials above).
``BIGQUERY_EMULATOR_HOST`` is honoured by google-cloud-bigquery itself: every REST call, ours, dlt's
and Great Expectations', goes to that host, for an emulator or a test server.

Great Expectations runs the suites as SQL on its BigQuery datasource (sqlalchemy-bigquery): nothing is
downloaded, and the suites' pandas type names are read as BigQuery types (:data:`BIGQUERY_TYPE_NAMES`).

google-cloud-bigquery is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlparse

from tagifai.config import get_settings
from tagifai.warehouse.base import CURATED_SCHEMA, RAW_SCHEMA, STATE_TABLE, Warehouse, WarehouseError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

KEYFILE_ENV = "TAGIFAI_BQ_KEYFILE"
SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform")

#: How the suites' pandas dtype names read as BigQuery column types (sqlalchemy-bigquery type names)
#: when a suite runs on GX's BigQuery SQL datasource. Names not listed are kept as they are, so a
#: suite may also name SQL types directly.
BIGQUERY_TYPE_NAMES: dict[str, list[str]] = {
    **{
        n: ["INTEGER"]
        for n in (
            "int64",
            "int32",
            "int16",
            "int8",
            "uint64",
            "uint32",
            "uint16",
            "uint8",
            "Int64Dtype",
            "Int32Dtype",
            "Int16Dtype",
            "Int8Dtype",
        )
    },
    **{n: ["FLOAT"] for n in ("float64", "float32", "Float64Dtype", "Float32Dtype")},
    **{n: ["BOOLEAN"] for n in ("bool", "boolean", "BooleanDtype")},
    **{n: ["STRING"] for n in ("str", "string", "object", "StringDtype")},
    **{f"datetime64[{u}]": ["TIMESTAMP", "DATETIME"] for u in ("ns", "us", "ms", "s")},
}


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


# ------------------------------------------------------------------------------- settings, credentials


def location() -> str:
    """The BigQuery location of datasets and jobs (``TAGIFAI_BQ_LOCATION``, default ``US``)."""
    return get_settings().bq_location or "US"


def keyfile() -> Path | None:
    """The service-account key file named by ``TAGIFAI_BQ_KEYFILE``, if any (checked to exist)."""
    value = get_settings().bq_keyfile.strip()
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
    path = keyfile()
    if path is not None:
        return _keyfile_credentials(path)
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

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


def _keyfile_credentials(path: Path):
    """Service-account credentials from a key file; :class:`BigQueryError` naming only its path."""
    from google.auth.exceptions import GoogleAuthError
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(str(path), scopes=list(SCOPES))
    except (ValueError, KeyError, GoogleAuthError) as exc:
        # The library's messages name missing fields, never values; still, keep only the type.
        raise BigQueryError(
            f"{KEYFILE_ENV}={path} is not a usable service-account key file ({type(exc).__name__})"
        ) from None


def storage_client(creds=None):
    """A BigQuery Storage Read API client, or None when it is not installed or turned off.

    ``TAGIFAI_BQ_STORAGE_API=0`` turns it off (the Read API needs the ``bigquery.readsessions.create``
    permission, e.g. the BigQuery Read Session User role). ``TAGIFAI_BQ_STORAGE_ENDPOINT=host:port``
    points it at an emulator over plain gRPC.
    """
    settings = get_settings()
    if not settings.bq_storage_api:
        return None
    try:
        from google.cloud import bigquery_storage_v1
    except ImportError:
        return None
    endpoint = settings.bq_storage_endpoint.strip()
    if endpoint:
        import grpc
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

        endpoint = endpoint.split("://", 1)[-1]
        transport = BigQueryReadGrpcTransport(channel=grpc.insecure_channel(endpoint))
        return bigquery_storage_v1.BigQueryReadClient(transport=transport)
    return bigquery_storage_v1.BigQueryReadClient(credentials=creds or credentials())


def _not_found(exc: BaseException) -> bool:
    from google.api_core import exceptions

    return isinstance(exc, exceptions.NotFound)


def _describe(exc: BaseException) -> str:
    """A Google API error as one line: its code and message (never the request's headers)."""
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {' '.join(str(message).split())}"


def _missing_table(ref: TableRef) -> str:
    return f"table {ref.id} not found in BigQuery: run sync (raw tables) or transform (models) first"


# ------------------------------------------------------------------------------------- the warehouse


@dataclass(frozen=True)
class BigQueryWarehouse(Warehouse):
    """One BigQuery dataset (the models) and its ``<dataset>_raw`` sibling (the raw tables)."""

    project: str
    dataset: str

    scheme: ClassVar[str] = "bigquery"
    dbt_target: ClassVar[str] = "prod"
    gx_pandas: ClassVar[bool] = False
    shared_across_pods: ClassVar[bool] = True

    @classmethod
    def from_uri(cls, uri: str) -> BigQueryWarehouse:
        """``bigquery://<project>/<dataset>``."""
        parsed = urlparse(uri)
        dataset = parsed.path.strip("/")
        if parsed.scheme != "bigquery" or not parsed.netloc or not dataset or "/" in dataset:
            raise WarehouseError(f"warehouse {uri!r}: expected bigquery://<project>/<dataset>")
        return cls(project=parsed.netloc, dataset=dataset)

    @property
    def uri(self) -> str:
        """``bigquery://<project>/<dataset>``."""
        return f"bigquery://{self.project}/{self.dataset}"

    # ------------------------------------------------------------------------------------- naming

    @property
    def raw_dataset(self) -> str:
        """The dataset holding the raw tables: ``<dataset>_raw`` (dbt's ``raw`` source on BigQuery)."""
        return f"{self.dataset}_{RAW_SCHEMA}"

    def resolve(self, table: str, schema: str | None = None) -> TableRef:
        """Resolve ``table``, ``schema.table`` or ``dataset.table`` or ``project.dataset.table``.

        ``raw`` means ``<dataset>_raw`` and ``main`` (the default) means ``<dataset>``; any other schema is
        taken as a dataset name of the warehouse's project.
        """
        parts = [p.strip("`") for p in table.split(".")]
        if len(parts) == 1:
            parts = [schema or CURATED_SCHEMA, parts[0]]
        if any(not p for p in parts) or len(parts) > 3:
            raise WarehouseError(f"table {table!r}: expected table, schema.table or project.dataset.table")
        if len(parts) == 3:
            return TableRef(*parts)
        dataset, name = parts
        if dataset == RAW_SCHEMA:
            dataset = self.raw_dataset
        elif dataset == CURATED_SCHEMA:
            dataset = self.dataset
        return TableRef(self.project, dataset, name)

    def table_ref(self, table: str, schema: str | None = None) -> str:
        """The table quoted for GoogleSQL: ```project`.`dataset`.`table```."""
        return self.resolve(table, schema).sql

    # ------------------------------------------------------------------------------------ clients

    def client(self, creds=None):
        """A ``google.cloud.bigquery.Client`` billed to the warehouse's project."""
        try:
            from google.cloud import bigquery
        except ImportError as exc:  # pragma: no cover - depends on the image
            raise BigQueryError(
                "BigQuery needs google-cloud-bigquery (pip install 'tagifai-pipelines[bigquery]')"
            ) from exc
        return bigquery.Client(project=self.project, credentials=creds or credentials(), location=location())

    # ------------------------------------------------------------------------------------ reading

    def count_rows(self, table: str, schema: str | None = None) -> int:
        """``SELECT COUNT(*)`` of a table; 0 when the table (or its dataset) does not exist yet."""
        ref = self.resolve(table, schema)
        bq = self.client()
        try:
            rows = list(bq.query_and_wait(f"SELECT COUNT(*) AS n FROM {ref.sql}"))
        except Exception as exc:  # noqa: BLE001 - google raises many kinds; name the table once
            if _not_found(exc):
                return 0
            raise BigQueryError(f"counting rows of {ref.id} failed: {_describe(exc)}") from exc
        finally:
            bq.close()
        return int(rows[0][0])

    def read_table(self, table: str, schema: str | None = None) -> pd.DataFrame:
        """A whole table as a dataframe, through the BigQuery Storage Read API when it is installed.

        Without google-cloud-bigquery-storage, rows come page by page over the REST API (tabledata.list).
        TIMESTAMP columns (UTC) come back as naive UTC datetimes, like the DuckDB warehouse's, so the same
        table gives the same dataframe (and content hash) on both.
        """
        ref = self.resolve(table, schema)
        creds = credentials()
        bq = self.client(creds)
        bqstorage = storage_client(creds)
        try:
            rows = bq.list_rows(ref.id)
            with warnings.catch_warnings():  # "use pandas-gbq instead": the same calls underneath
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                df = rows.to_dataframe(bqstorage_client=bqstorage, create_bqstorage_client=False)
        except Exception as exc:  # noqa: BLE001
            if _not_found(exc):
                raise WarehouseError(_missing_table(ref)) from exc
            raise BigQueryError(f"reading {ref.id} failed: {_describe(exc)}") from exc
        finally:
            bq.close()
            if bqstorage is not None:
                bqstorage.transport.close()
        how = "storage read API" if bqstorage is not None else "REST"
        log.info("read %s rows from %s (%s)", len(df), ref.id, how)
        return _like_duckdb(df)

    def table_columns(self, table: str, schema: str | None = None) -> list[str]:
        """The column names of a table (tables.get); :class:`WarehouseError` when it does not exist."""
        ref = self.resolve(table, schema)
        bq = self.client()
        try:
            return [f.name for f in bq.get_table(ref.id).schema]
        except Exception as exc:  # noqa: BLE001
            if _not_found(exc):
                raise WarehouseError(_missing_table(ref)) from exc
            raise BigQueryError(f"reading the schema of {ref.id} failed: {_describe(exc)}") from exc
        finally:
            bq.close()

    # -------------------------------------------------------------------------- state (the sensor)

    def read_state(self, name: str) -> dict | None:
        """The value of ``name`` in ``<dataset>.tagifai_watermark``; None when the table or row is missing."""
        import json

        from google.cloud import bigquery

        ref = self.resolve(STATE_TABLE)
        bq = self.client()
        try:
            rows = list(
                bq.query_and_wait(
                    f"SELECT value FROM {ref.sql} WHERE name = @name",
                    job_config=bigquery.QueryJobConfig(
                        query_parameters=[bigquery.ScalarQueryParameter("name", "STRING", name)]
                    ),
                )
            )
        except Exception as exc:  # noqa: BLE001
            if _not_found(exc):
                return None
            raise BigQueryError(f"reading state {name!r} from {ref.id} failed: {_describe(exc)}") from exc
        finally:
            bq.close()
        return json.loads(rows[0][0]) if rows else None

    def write_state(self, name: str, value: dict) -> None:
        """``MERGE`` ``name`` into ``<dataset>.tagifai_watermark`` (one atomic statement; table created if needed)."""
        import json

        from google.cloud import bigquery

        ref = self.resolve(STATE_TABLE)
        params = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("name", "STRING", name),
                bigquery.ScalarQueryParameter("value", "STRING", json.dumps(value, sort_keys=True, default=str)),
            ]
        )
        bq = self.client()
        try:
            bq.create_dataset(f"{ref.project}.{ref.dataset}", exists_ok=True)
            bq.query_and_wait(
                f"CREATE TABLE IF NOT EXISTS {ref.sql} (name STRING NOT NULL, value STRING NOT NULL, "
                "written_at TIMESTAMP NOT NULL)"
            )
            bq.query_and_wait(
                f"MERGE {ref.sql} AS t USING (SELECT @name AS name, @value AS value) AS s ON t.name = s.name "
                "WHEN MATCHED THEN UPDATE SET value = s.value, written_at = CURRENT_TIMESTAMP() "
                "WHEN NOT MATCHED THEN INSERT (name, value, written_at) VALUES (s.name, s.value, CURRENT_TIMESTAMP())",
                job_config=params,
            )
        except Exception as exc:  # noqa: BLE001
            raise BigQueryError(f"writing state {name!r} to {ref.id} failed: {_describe(exc)}") from exc
        finally:
            bq.close()

    # ------------------------------------------------------------------------------------ loading

    def dlt_credentials(self):
        """dlt's credentials spec for the BigQuery destination: the service-account key file, else ADC.

        (dlt 1.31 cannot take a native ``service_account.Credentials`` object: it treats it as the key
        string. Its spec parses the key file's JSON instead, and with no key it resolves ADC itself.)
        """
        from dlt.common.configuration.specs import GcpServiceAccountCredentials

        spec = GcpServiceAccountCredentials()
        path = keyfile()
        # Validate the key file (or fail early, naming what to set, when there are no default
        # credentials either) the same way and with the same message as our own clients.
        credentials()
        if path is not None:
            spec.parse_native_representation(path.read_text(encoding="utf-8"))
        else:
            spec.project_id = self.project
        return spec

    def dlt_destination(self):
        """dlt's BigQuery destination with the same credentials and location as every other call."""
        import dlt

        return dlt.destinations.bigquery(
            credentials=self.dlt_credentials(), project_id=self.project, location=location()
        )

    def dlt_write_disposition(self) -> dict:
        """dlt's upsert: one MERGE statement, which BigQuery applies atomically.

        (dlt's default delete-insert runs here as a script without a transaction.)
        """
        return {"disposition": "merge", "strategy": "upsert"}

    # ----------------------------------------------------------------------------- transform (dbt)

    def dbt_env(self) -> dict[str, str]:
        """The project and dataset of the ``prod`` profile, and its key file and location settings."""
        settings = get_settings()
        env = {
            "TAGIFAI_BQ_PROJECT": self.project,
            "TAGIFAI_BQ_DATASET": self.dataset,
            "TAGIFAI_BQ_LOCATION": settings.bq_location,
        }
        if settings.bq_keyfile:
            env[KEYFILE_ENV] = settings.bq_keyfile
        return env

    # -------------------------------------------------------------------- validation (GX on SQL)

    def gx_connection_string(self) -> str:
        """The SQLAlchemy URL of Great Expectations' BigQuery datasource (sqlalchemy-bigquery).

        ``bigquery://<project>/<dataset>?location=<location>[&credentials_path=<key file>]``: the key file's
        path (not its content) when ``TAGIFAI_BQ_KEYFILE`` is set, else ADC. No secret is ever in it.
        """
        params = {"location": location()}
        path = keyfile()
        if path is not None:
            params["credentials_path"] = str(path.resolve())
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())
        return f"bigquery://{self.project}/{self.dataset}?{query}"

    def gx_table_asset(self, table: str, schema: str | None = None) -> dict[str, Any]:
        """The arguments of GX's ``add_table_asset`` for a table: ``name``, ``table_name``, ``schema_name``."""
        ref = self.resolve(table, schema)
        if ref.project != self.project:
            raise WarehouseError(f"table {ref.id}: Great Expectations reads tables of project {self.project} only")
        return {"name": f"{ref.dataset}.{ref.table}", "table_name": ref.table, "schema_name": ref.dataset}

    def gx_batch_definition(self, context: Any, table: str) -> Any:
        """The whole-table batch definition of ``table`` on this warehouse's BigQuery datasource (made once)."""
        connection_string = self.gx_connection_string()
        asset_args = self.gx_table_asset(table)
        name = "tagifai_bigquery_" + hashlib.sha256(connection_string.encode()).hexdigest()[:12]
        try:
            datasource = context.data_sources.get(name)
        except (KeyError, ValueError, LookupError):
            datasource = None
        if datasource is None:
            datasource = context.data_sources.add_bigquery(name, connection_string=connection_string)
        asset = next((a for a in datasource.assets if a.name == asset_args["name"]), None)
        if asset is None:
            try:
                asset = datasource.add_table_asset(**asset_args)
            except Exception as exc:  # noqa: BLE001 - GX's TestConnectionError and friends
                raise WarehouseError(
                    f"Great Expectations cannot read {self.resolve(table).id}: {type(exc).__name__}: {exc}"
                ) from exc
        existing = [d for d in asset.batch_definitions if d.name == "whole_table"]
        return existing[0] if existing else asset.add_batch_definition_whole_table("whole_table")

    def gx_adapt_expectation(self, expectation: Any) -> None:
        """Rewrite the type names of a type expectation (in place) for the BigQuery dialect."""
        if hasattr(expectation, "type_list") and expectation.type_list:
            names: list[str] = []
            for name in expectation.type_list:
                for mapped in BIGQUERY_TYPE_NAMES.get(name, [name]):
                    if mapped not in names:
                        names.append(mapped)
            expectation.type_list = names
        elif getattr(expectation, "type_", None) in BIGQUERY_TYPE_NAMES:
            expectation.type_ = BIGQUERY_TYPE_NAMES[expectation.type_][0]


def _like_duckdb(df: pd.DataFrame) -> pd.DataFrame:
    """TIMESTAMPs as naive UTC and integer columns without NULLs as int64, as DuckDB returns them."""
    import pandas as pd

    for col in df.columns:
        if isinstance(df[col].dtype, pd.DatetimeTZDtype):
            df[col] = df[col].dt.tz_convert("UTC").dt.tz_localize(None)
        elif isinstance(df[col].dtype, pd.Int64Dtype) and not df[col].isna().any():
            df[col] = df[col].astype("int64")  # the dtype DuckDB gives for a column without NULLs
    return df
