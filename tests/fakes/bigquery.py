"""A loopback BigQuery: the REST endpoints (and the Storage Read API over gRPC) that our code, dlt,
sqlalchemy-bigquery and google-cloud-bigquery call, executed on an in-memory DuckDB.

What it is for: the real client libraries send their real requests (OAuth token exchange with a
service-account key, dataset and table calls, query jobs, multipart load jobs, getQueryResults,
CreateReadSession/ReadRows), and the tests assert them: every call is recorded in ``calls``, every SQL
text in ``queries`` and every load job in ``loads``. To let multi-step clients (dlt's merge) go on, the
GoogleSQL they send is translated to DuckDB with sqlglot and run: datasets are DuckDB schemas, sessions
are DuckDB transactions. That proves what is sent and that it has the intended effect under DuckDB's
semantics; it does not prove that BigQuery itself accepts every statement (dlt's and
google-cloud-bigquery's own test suites run against the real service).

Endpoints: POST /token (OAuth JWT-bearer grant); under /bigquery/v2: datasets get/insert/delete/list,
tables get/list/delete, tabledata.list, jobs.insert/get/cancel, jobs.query, jobs.getQueryResults,
multipart and resumable uploads under /upload/bigquery/v2. Storage Read API (gRPC, insecure):
CreateReadSession, ReadRows (Arrow).
"""

from __future__ import annotations

import datetime as dt
import decimal
import email.parser
import json
import re
import tempfile
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

# DuckDB type (information_schema.columns.data_type) -> BigQuery REST type (tables.get schema)
_REST_TYPES = {
    "BIGINT": "INTEGER",
    "INTEGER": "INTEGER",
    "SMALLINT": "INTEGER",
    "TINYINT": "INTEGER",
    "HUGEINT": "INTEGER",
    "VARCHAR": "STRING",
    "DOUBLE": "FLOAT",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "TIMESTAMP": "DATETIME",
    "BLOB": "BYTES",
    "JSON": "JSON",
    "TIME": "TIME",
}
# DuckDB type -> GoogleSQL type (INFORMATION_SCHEMA.COLUMNS.data_type)
_SQL_TYPES = {
    "BIGINT": "INT64",
    "INTEGER": "INT64",
    "VARCHAR": "STRING",
    "DOUBLE": "FLOAT64",
    "BOOLEAN": "BOOL",
    "DATE": "DATE",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "TIMESTAMP": "DATETIME",
    "BLOB": "BYTES",
    "JSON": "JSON",
}
# BigQuery REST type -> DuckDB type (tables created by load jobs with a schema)
_DUCK_TYPES = {
    "INTEGER": "BIGINT",
    "INT64": "BIGINT",
    "STRING": "VARCHAR",
    "FLOAT": "DOUBLE",
    "FLOAT64": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATETIME": "TIMESTAMP",
    "DATE": "DATE",
    "BYTES": "BLOB",
    "JSON": "JSON",
    "NUMERIC": "DECIMAL(38,9)",
    "BIGNUMERIC": "DECIMAL(38,9)",
}


class BigQueryApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict:
        status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}.get(
            self.code, "INTERNAL"
        )
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": status,
                "errors": [{"reason": self.reason, "message": self.message, "domain": "global"}],
            }
        }


def _arrow_rest_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if t.tz else "DATETIME"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_decimal(t):
        return "NUMERIC"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BYTES"
    return "STRING"


def _rest_value(value: Any, bq_type: str, int64_timestamps: bool) -> Any:
    """A cell as the REST API writes it (strings, TIMESTAMP as micros or float seconds)."""
    if value is None:
        return None
    if bq_type == "TIMESTAMP":
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        micros = int(value.timestamp()) * 1_000_000 + value.microsecond
        return str(micros) if int64_timestamps else f"{micros / 1e6:.6f}"
    if bq_type == "DATETIME":
        return value.isoformat(timespec="microseconds")
    if bq_type == "BOOLEAN":
        return "true" if value else "false"
    if bq_type == "BYTES":
        import base64

        return base64.b64encode(value).decode()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def _param_value(param: dict) -> Any:
    kind = param.get("parameterType", {}).get("type", "STRING")
    raw = param.get("parameterValue", {})
    if "arrayValues" in raw:
        return [v.get("value") for v in raw["arrayValues"]]
    value = raw.get("value")
    if value is None:
        return None
    if kind in ("INT64", "INTEGER"):
        return int(value)
    if kind in ("FLOAT64", "FLOAT"):
        return float(value)
    if kind in ("BOOL", "BOOLEAN"):
        return value.lower() == "true"
    return value


@dataclass
class Job:
    resource: dict
    schema: list[dict] | None = None
    table: pa.Table | None = None
    error: BigQueryApiError | None = None


@dataclass
class Call:
    method: str
    path: str
    params: dict
    body: Any
    authorization: str | None


@dataclass
class FakeBigQuery:
    """Start with :meth:`start`; ``endpoint`` is the REST base URL, ``storage_endpoint`` the gRPC one."""

    project: str
    calls: list[Call] = field(default_factory=list)
    queries: list[dict] = field(default_factory=list)  # {"sql", "duckdb", "session", "params"}
    loads: list[dict] = field(default_factory=list)  # the load configuration + "rows"
    read_sessions: list[dict] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_requests: list[dict] = field(default_factory=list)
    #: (method, path regex, HTTP status, how many times) answered before the real handler
    faults: list[list] = field(default_factory=list)
    #: (SQL substring, how many times): query jobs whose SQL holds it fail with invalidQuery
    failing_sql: list[list] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.jobs: dict[str, Job] = {}
        self.sessions: dict[str, Any] = {}
        self.uploads: dict[str, dict] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="fakebq-")
        self._http: ThreadingHTTPServer | None = None
        self._grpc = None

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self, grpc_storage: bool = True) -> FakeBigQuery:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.dispatch(self.command, self.path, dict(self.headers), raw)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        if grpc_storage:
            self._start_grpc()
        return self

    def stop(self) -> None:
        if self._http:
            self._http.shutdown()
            self._http.server_close()
        if self._grpc:
            self._grpc.stop(None)
        with self.lock:
            for cursor in self.sessions.values():
                cursor.close()
            self.sessions.clear()
            self.db.close()
        self._tmp.cleanup()

    @property
    def endpoint(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (the form BIGQUERY_EMULATOR_HOST takes, with http://)."""
        return self.endpoint.split("://", 1)[1]

    def service_account_info(
        self, private_key_pem: str, email: str = "tagifai-test@example.iam.gserviceaccount.com"
    ) -> dict:
        """A service-account key whose token_uri is this server's /token."""
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": "0" * 40,
            "private_key": private_key_pem,
            "client_email": email,
            "client_id": "1",
            "token_uri": f"{self.endpoint}/token",
        }

    # ---------------------------------------------------------------------------------- helpers

    def sql_texts(self) -> list[str]:
        return [q["sql"] for q in self.queries]

    def rest_calls(self, method: str | None = None, contains: str = "") -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method) and contains in c.path]

    def execute(self, sql: str, params: list | None = None):
        """Run DuckDB SQL directly (test setup and assertions)."""
        with self.lock:
            return self.db.execute(sql, params or [])

    def datasets(self) -> set[str]:
        with self.lock:
            rows = self.db.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database()"
            ).fetchall()
        return {r[0] for r in rows} - {"main", "information_schema", "pg_catalog"}

    # ---------------------------------------------------------------------------------- HTTP

    def dispatch(self, method: str, raw_path: str, headers: dict, raw: bytes):
        parsed = urlparse(raw_path)
        path, params = parsed.path, {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        ctype = headers.get("Content-Type") or headers.get("content-type") or ""
        body: Any = None
        if raw and "json" in ctype:
            body = json.loads(raw)
        elif raw and "x-www-form-urlencoded" in ctype:
            body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        auth = headers.get("Authorization") or headers.get("authorization")
        with self.lock:
            self.calls.append(
                Call(method, path, params, body if body is not None else (f"<{len(raw)} bytes>" if raw else None), auth)
            )
            for fault in self.faults:
                if fault[3] > 0 and fault[0] == method and re.search(fault[1], path):
                    fault[3] -= 1
                    err = BigQueryApiError(fault[2], "backendError", f"injected {fault[2]}")
                    return fault[2], err.body(), None
        try:
            if path == "/token":
                return 200, self._token(body or {}), None
            if not auth or not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                raise BigQueryApiError(401, "unauthorized", "Request had invalid authentication credentials.")
            if path.startswith("/upload/bigquery/v2"):
                return self._upload(method, path[len("/upload/bigquery/v2") :], params, headers, raw, ctype)
            if path.startswith("/bigquery/v2"):
                return self._rest(method, path[len("/bigquery/v2") :], params, body)
            raise BigQueryApiError(404, "notFound", f"no route {method} {path}")
        except BigQueryApiError as err:
            return err.code, err.body(), None

    def _token(self, form: dict) -> dict:
        self.token_requests.append(form)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("assertion"):
            raise BigQueryApiError(400, "invalid_grant", "expected a JWT bearer assertion")
        token = f"fake-access-{uuid.uuid4().hex[:12]}"
        self.tokens.append(token)
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _rest(self, method: str, path: str, params: dict, body: Any):
        m = re.fullmatch(r"/projects/([^/]+)(/.*)?", path)
        if not m:
            raise BigQueryApiError(404, "notFound", f"no route {path}")
        project, rest = m.group(1), m.group(2) or ""
        if project != self.project:
            raise BigQueryApiError(404, "notFound", f"Not found: Project {project}")
        routes = [
            ("GET", r"/datasets", self._list_datasets),
            ("POST", r"/datasets", self._insert_dataset),
            ("GET", r"/datasets/([^/]+)", self._get_dataset),
            ("DELETE", r"/datasets/([^/]+)", self._delete_dataset),
            ("GET", r"/datasets/([^/]+)/tables", self._list_tables),
            ("GET", r"/datasets/([^/]+)/tables/([^/]+)", self._get_table),
            ("DELETE", r"/datasets/([^/]+)/tables/([^/]+)", self._delete_table),
            ("GET", r"/datasets/([^/]+)/tables/([^/]+)/data", self._list_rows),
            ("POST", r"/queries", self._jobs_query),
            ("GET", r"/queries/([^/]+)", self._get_query_results),
            ("POST", r"/jobs", self._insert_job),
            ("GET", r"/jobs/([^/]+)", self._get_job),
            ("POST", r"/jobs/([^/]+)/cancel", self._cancel_job),
        ]
        for verb, pattern, handler in routes:
            hit = re.fullmatch(pattern, rest)
            if verb == method and hit:
                with self.lock:
                    return 200, handler(*hit.groups(), params=params, body=body), None
        raise BigQueryApiError(404, "notFound", f"no route {method} {path}")

    # ---------------------------------------------------------------------------------- datasets

    def _dataset_resource(self, dataset: str) -> dict:
        return {
            "kind": "bigquery#dataset",
            "id": f"{self.project}:{dataset}",
            "location": "US",
            "datasetReference": {"projectId": self.project, "datasetId": dataset},
        }

    def _list_datasets(self, params, body):
        return {
            "kind": "bigquery#datasetList",
            "datasets": [self._dataset_resource(d) for d in sorted(self.datasets())],
        }

    def _insert_dataset(self, params, body):
        dataset = body["datasetReference"]["datasetId"]
        if dataset in self.datasets():
            raise BigQueryApiError(409, "duplicate", f"Already Exists: Dataset {self.project}:{dataset}")
        self.db.execute(f'CREATE SCHEMA "{dataset}"')
        return {**self._dataset_resource(dataset), **{k: v for k, v in body.items() if k != "datasetReference"}}

    def _get_dataset(self, dataset, params, body):
        if dataset not in self.datasets():
            raise BigQueryApiError(404, "notFound", f"Not found: Dataset {self.project}:{dataset}")
        return self._dataset_resource(dataset)

    def _delete_dataset(self, dataset, params, body):
        if dataset not in self.datasets():
            raise BigQueryApiError(404, "notFound", f"Not found: Dataset {self.project}:{dataset}")
        self.db.execute(f'DROP SCHEMA "{dataset}"' + (" CASCADE" if params.get("deleteContents") == "true" else ""))
        return None

    # ---------------------------------------------------------------------------------- tables

    def _columns(self, dataset: str, table: str) -> list[tuple]:
        return self.db.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [dataset, table],
        ).fetchall()

    def _schema(self, dataset: str, table: str) -> list[dict]:
        cols = self._columns(dataset, table)
        if not cols:
            raise BigQueryApiError(404, "notFound", f"Not found: Table {self.project}:{dataset}.{table}")
        return [
            {
                "name": n,
                "type": _REST_TYPES.get(t, "NUMERIC" if t.startswith("DECIMAL") else "STRING"),
                "mode": "NULLABLE" if nullable == "YES" else "REQUIRED",
            }
            for n, t, nullable in cols
        ]

    def _list_tables(self, dataset, params, body):
        names = [
            r[0]
            for r in self.db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [dataset]
            ).fetchall()
        ]
        return {
            "kind": "bigquery#tableList",
            "totalItems": len(names),
            "tables": [
                {
                    "kind": "bigquery#table",
                    "type": "TABLE",
                    "tableReference": {"projectId": self.project, "datasetId": dataset, "tableId": n},
                }
                for n in names
            ],
        }

    def _get_table(self, dataset, table, params, body):
        schema = self._schema(dataset, table)
        rows = self.db.execute(f'SELECT count(*) FROM "{dataset}"."{table}"').fetchall()[0][0]
        return {
            "kind": "bigquery#table",
            "id": f"{self.project}:{dataset}.{table}",
            "type": "TABLE",
            "location": "US",
            "tableReference": {"projectId": self.project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": schema},
            "numRows": str(rows),
            "numBytes": "0",
            "creationTime": str(int(time.time() * 1000)),
        }

    def _delete_table(self, dataset, table, params, body):
        self._schema(dataset, table)
        self.db.execute(f'DROP TABLE "{dataset}"."{table}"')
        return None

    def _list_rows(self, dataset, table, params, body):
        schema = self._schema(dataset, table)
        data = self.db.sql(f'SELECT * FROM "{dataset}"."{table}"').to_arrow_table()
        return self._rows_page(schema, data, params, kind="bigquery#tableDataList")

    def _rows_page(self, schema, data: pa.Table, params: dict, kind: str) -> dict:
        start = int(params.get("pageToken") or params.get("startIndex") or 0)
        size = int(params.get("maxResults") or 100_000)
        int64_ts = str(params.get("formatOptions.useInt64Timestamp", "")).lower() == "true"
        page = data.slice(start, size).to_pylist()
        types = [f["type"] for f in schema]
        rows = [
            {"f": [{"v": _rest_value(row[f["name"]], t, int64_ts)} for f, t in zip(schema, types, strict=False)]}
            for row in page
        ]
        out = {"kind": kind, "totalRows": str(data.num_rows), "rows": rows}
        if start + size < data.num_rows:
            out["pageToken"] = str(start + size)
        return out

    # ---------------------------------------------------------------------------------- queries

    @staticmethod
    def _split(sql: str) -> list[str]:
        """Top-level statements of a GoogleSQL script (``IF ... END IF`` kept whole)."""
        pieces, buf, quote, i = [], [], None, 0
        while i < len(sql):
            ch = sql[i]
            if quote:
                buf.append(ch)
                if ch == "\\" and i + 1 < len(sql):
                    buf.append(sql[i + 1])
                    i += 1
                elif ch == quote:
                    quote = None
            elif ch in "'\"`":
                quote = ch
                buf.append(ch)
            elif ch == ";":
                pieces.append("".join(buf).strip())
                buf = []
            else:
                buf.append(ch)
            i += 1
        pieces.append("".join(buf).strip())
        out: list[str] = []
        for piece in (p for p in pieces if p):
            if out and re.match(r"(?is)^IF\b", out[-1]) and not re.search(r"(?is)\bEND\s+IF$", out[-1]):
                out[-1] += "; " + piece
            else:
                out.append(piece)
        return out

    def _translate(self, sql: str, default_dataset: str | None) -> tuple[str, exp.Expression]:
        """One GoogleSQL statement -> DuckDB (project qualifiers dropped, INFORMATION_SCHEMA mapped)."""
        stmt = sqlglot.parse_one(sql, read="bigquery")
        for param in stmt.find_all(exp.Parameter):  # @`name` -> $name
            param.set("this", exp.var(param.name))
        for table in list(stmt.find_all(exp.Table)):
            parts = [name for p in table.parts for name in p.name.split(".")]
            upper = [p.upper() for p in parts]
            if "INFORMATION_SCHEMA" in upper:
                k = upper.index("INFORMATION_SCHEMA")
                dataset = parts[k - 1] if k >= 1 else default_dataset
                view = ".".join(upper[k + 1 :]) or parts[-1].upper()
                if view == "COLUMNS":
                    mapping = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in _SQL_TYPES.items())
                    sub = (
                        f"SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, is_nullable, "
                        f"CASE data_type {mapping} ELSE data_type END AS data_type, "
                        f"NULL AS numeric_precision, NULL AS numeric_scale "
                        f"FROM information_schema.columns WHERE table_schema = '{dataset}'"
                    )
                elif view == "TABLES":
                    sub = (
                        "SELECT table_catalog, table_schema, table_name, table_type "
                        f"FROM information_schema.tables WHERE table_schema = '{dataset}'"
                    )
                else:
                    raise BigQueryApiError(
                        400, "invalidQuery", f"INFORMATION_SCHEMA.{view} is not supported by the fake"
                    )
                alias = table.alias if table.alias and table.alias.upper() != view else view
                table.replace(
                    exp.Subquery(
                        this=sqlglot.parse_one(sub, read="duckdb"), alias=exp.TableAlias(this=exp.to_identifier(alias))
                    )
                )
                continue
            if table.catalog == self.project:
                table.set("catalog", None)
            if (
                not table.db
                and default_dataset
                and table.name
                and not isinstance(table.parent, exp.Schema)
                and table.name not in {c.alias for c in stmt.find_all(exp.CTE)}
            ):
                table.set("db", exp.to_identifier(default_dataset, quoted=True))
        return stmt.sql("duckdb"), stmt

    def _run_query(self, config: dict, job_id: str) -> Job:
        sql = config["query"]
        default = (config.get("defaultDataset") or {}).get("datasetId")
        session = None
        for prop in config.get("connectionProperties") or []:
            if prop.get("key") == "session_id":
                session = prop["value"]
        params = [_param_value(p) for p in config.get("queryParameters") or []]
        named = {p["name"]: _param_value(p) for p in config.get("queryParameters") or [] if p.get("name")}
        now = str(int(time.time() * 1000))
        resource = {
            "kind": "bigquery#job",
            "id": f"{self.project}:US.{job_id}",
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": "US"},
            "configuration": {"query": config, "jobType": "QUERY"},
            "status": {"state": "DONE"},
            "statistics": {
                "creationTime": now,
                "startTime": now,
                "endTime": now,
                "query": {"totalBytesProcessed": "0"},
            },
        }
        job = Job(resource)
        executed: list[str] = []
        variables: dict[str, Any] = {}
        try:
            for rule in self.failing_sql:
                if rule[1] > 0 and rule[0] in sql:
                    rule[1] -= 1
                    raise BigQueryApiError(400, "invalidQuery", f"injected failure of a query holding {rule[0]!r}")
            statements = self._split(sql)
            resource["statistics"]["query"]["statementType"] = "SCRIPT" if len(statements) > 1 else None
            if config.get("createSession"):
                session = f"session-{uuid.uuid4().hex[:10]}"
                self.sessions[session] = self.db.cursor()
                resource["statistics"]["sessionInfo"] = {"sessionId": session}
            con = self.sessions.get(session, self.db) if session else self.db
            affected = 0
            pending = list(statements)
            while pending:
                text = pending.pop(0)
                upper = " ".join(text.upper().split())
                if upper.startswith("CALL BQ.ABORT_SESSION"):
                    continue
                if upper in ("BEGIN TRANSACTION", "BEGIN"):
                    con.execute("BEGIN TRANSACTION")
                    continue
                if upper in ("COMMIT TRANSACTION", "COMMIT"):
                    con.execute("COMMIT")
                    continue
                if upper in ("ROLLBACK TRANSACTION", "ROLLBACK"):
                    con.execute("ROLLBACK")
                    continue
                m = re.fullmatch(r"(?is)DECLARE\s+(\w+)\s+\w+", text)
                if m:
                    variables[m.group(1).lower()] = None
                    continue
                m = re.fullmatch(r"(?is)SET\s+(\w+)\s*=\s*(.+)", text)
                if m and m.group(1).lower() in variables:
                    duck, _ = self._translate(f"SELECT {m.group(2)}", default)
                    executed.append(duck)
                    variables[m.group(1).lower()] = con.execute(duck).fetchall()[0][0]
                    continue
                m = re.fullmatch(r"(?is)IF\s+(\w+)\s+THEN\s+(.*?);?\s*END\s+IF", text)
                if m:
                    if variables.get(m.group(1).lower()):
                        body = m.group(2).strip()
                        imm = re.fullmatch(r"(?is)EXECUTE\s+IMMEDIATE\s+'((?:[^'\\]|\\.)*)'", body)
                        pending[:0] = self._split(imm.group(1).replace("\\'", "'") if imm else body)
                    continue
                duck, stmt = self._translate(text, default)
                executed.append(duck)
                if named:
                    use = {p.name: named[p.name] for p in stmt.find_all(exp.Parameter) if p.name in named}
                else:
                    n_params = len(list(stmt.find_all(exp.Placeholder)))
                    use, params = params[:n_params], params[n_params:]
                if resource["statistics"]["query"]["statementType"] is None:
                    resource["statistics"]["query"]["statementType"] = {
                        exp.Select: "SELECT",
                        exp.Union: "SELECT",
                        exp.Insert: "INSERT",
                        exp.Delete: "DELETE",
                        exp.Update: "UPDATE",
                        exp.Merge: "MERGE",
                        exp.Create: "CREATE_TABLE",
                        exp.Drop: "DROP_TABLE",
                        exp.Alter: "ALTER_TABLE",
                    }.get(type(stmt), "SCRIPT")
                if isinstance(stmt, exp.Select | exp.Union):
                    job.table = con.sql(duck, params=use or None).to_arrow_table()
                else:
                    result = con.execute(duck, use).fetchall()
                    if isinstance(stmt, exp.Insert | exp.Delete | exp.Update | exp.Merge) and result:
                        affected += int(result[0][0])
            resource["statistics"]["query"]["statementType"] = (
                resource["statistics"]["query"]["statementType"] or "SCRIPT"
            )
            if job.table is not None:
                job.schema = [
                    {"name": f.name, "type": _arrow_rest_type(f.type), "mode": "NULLABLE"} for f in job.table.schema
                ]
                resource["statistics"]["query"]["schema"] = {"fields": job.schema}
            else:
                resource["statistics"]["query"]["numDmlAffectedRows"] = str(affected)
        except (duckdb.Error, sqlglot.errors.SqlglotError, BigQueryApiError) as exc:
            if isinstance(exc, BigQueryApiError):
                job.error = exc
            else:
                text = str(exc)
                not_found = isinstance(exc, duckdb.CatalogException) and "does not exist" in text
                job.error = BigQueryApiError(
                    404 if not_found else 400,
                    "notFound" if not_found else "invalidQuery",
                    ("Not found: " if not_found else "") + text.splitlines()[0],
                )
            resource["status"]["errorResult"] = {"reason": job.error.reason, "message": job.error.message}
            resource["status"]["errors"] = [dict(resource["status"]["errorResult"])]
        self.queries.append(
            {
                "sql": sql,
                "duckdb": executed,
                "session": session,
                "params": [_param_value(p) for p in config.get("queryParameters") or []],
                "job_id": job_id,
                "error": job.error.message if job.error else None,
            }
        )
        self.jobs[job_id] = job
        return job

    def _query_response(self, job: Job, params: dict) -> dict:
        if job.error:
            raise job.error
        out = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": job.resource["jobReference"],
            "jobComplete": True,
            "cacheHit": False,
        }
        if job.table is not None:
            out.update(self._rows_page(job.schema, job.table, params, kind=out["kind"]))
            out["schema"] = {"fields": job.schema}
        else:
            out["totalRows"] = "0"
            out["numDmlAffectedRows"] = job.resource["statistics"]["query"].get("numDmlAffectedRows", "0")
        if "sessionInfo" in job.resource["statistics"]:
            out["sessionInfo"] = job.resource["statistics"]["sessionInfo"]
        return out

    def _jobs_query(self, params, body):
        job_id = f"job_{uuid.uuid4().hex[:16]}"
        config = {
            k: v
            for k, v in body.items()
            if k not in ("requestId", "formatOptions", "maxResults", "timeoutMs", "location", "jobCreationMode")
        }
        job = self._run_query(config, job_id)
        fmt = body.get("formatOptions") or {}
        page_params = {"formatOptions.useInt64Timestamp": "true" if fmt.get("useInt64Timestamp") else "false"}
        if body.get("maxResults"):
            page_params["maxResults"] = body["maxResults"]
        out = self._query_response(job, page_params)
        out["kind"] = "bigquery#queryResponse"
        return out

    def _get_query_results(self, job_id, params, body):
        job = self.jobs.get(job_id)
        if job is None:
            raise BigQueryApiError(404, "notFound", f"Not found: Job {self.project}:{job_id}")
        return self._query_response(job, params)

    def _insert_job(self, params, body):
        ref = body.get("jobReference") or {}
        job_id = ref.get("jobId") or f"job_{uuid.uuid4().hex[:16]}"
        config = body.get("configuration") or {}
        if job_id in self.jobs:
            raise BigQueryApiError(409, "duplicate", f"Already Exists: Job {self.project}:US.{job_id}")
        if "query" in config:
            return self._run_query(config["query"], job_id).resource
        if "load" in config:  # a load from URIs (gs://) is not supported here
            raise BigQueryApiError(400, "invalid", "load jobs from source URIs are not supported by the fake")
        raise BigQueryApiError(400, "invalid", f"unsupported job configuration {sorted(config)}")

    def _get_job(self, job_id, params, body):
        job = self.jobs.get(job_id)
        if job is None:
            raise BigQueryApiError(404, "notFound", f"Not found: Job {self.project}:{job_id}")
        return job.resource

    def _cancel_job(self, job_id, params, body):
        return {"kind": "bigquery#jobCancelResponse", "job": self._get_job(job_id, params, body)}

    # ---------------------------------------------------------------------------------- loads

    def _upload(self, method: str, path: str, params: dict, headers: dict, raw: bytes, ctype: str):
        upload_type = params.get("uploadType")
        if method == "POST" and upload_type == "multipart":
            msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
            parts = msg.get_payload()
            job_body = json.loads(parts[0].get_payload(decode=True))
            data = parts[1].get_payload(decode=True) or b""
            with self.lock:
                return 200, self._load(job_body, data), None
        if method == "POST" and upload_type == "resumable":
            upload_id = uuid.uuid4().hex
            self.uploads[upload_id] = {"job": json.loads(raw), "data": b""}
            location = f"{self.endpoint}/upload/bigquery/v2{path}?uploadType=resumable&upload_id={upload_id}"
            return 200, None, {"Location": location}
        if method == "PUT" and upload_type == "resumable":
            upload = self.uploads[params["upload_id"]]
            upload["data"] += raw
            content_range = headers.get("Content-Range") or headers.get("content-range") or ""
            total = content_range.rsplit("/", 1)[-1] if "/" in content_range else ""
            if total == "*":
                return 308, None, {"Range": f"bytes=0-{len(upload['data']) - 1}"}
            with self.lock:
                return 200, self._load(upload["job"], upload["data"]), None
        raise BigQueryApiError(400, "invalid", f"unsupported upload {method} {upload_type}")

    def _load(self, job_body: dict, data: bytes) -> dict:
        ref = job_body.get("jobReference") or {}
        job_id = ref.get("jobId") or f"job_{uuid.uuid4().hex[:16]}"
        config = job_body["configuration"]["load"]
        dest = config["destinationTable"]
        dataset, table = dest["datasetId"], dest["tableId"]
        fmt = config.get("sourceFormat", "CSV")
        resource = {
            "kind": "bigquery#job",
            "id": f"{self.project}:US.{job_id}",
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": "US"},
            "configuration": {"load": config, "jobType": "LOAD"},
            "status": {"state": "DONE"},
            "statistics": {"creationTime": str(int(time.time() * 1000)), "load": {}},
        }
        record = {**config, "rows": 0, "job_id": job_id, "bytes": len(data)}
        try:
            exists = bool(self._columns(dataset, table))
            if not exists:
                fields = (config.get("schema") or {}).get("fields")
                if config.get("createDisposition") == "CREATE_NEVER" or not fields:
                    raise BigQueryApiError(404, "notFound", f"Not found: Table {self.project}:{dataset}.{table}")
                cols = ", ".join(f'"{f["name"]}" {_DUCK_TYPES.get(f["type"], "VARCHAR")}' for f in fields)
                self.db.execute(f'CREATE TABLE "{dataset}"."{table}" ({cols})')
            if data[:2] == b"\x1f\x8b":  # BigQuery takes gzip-compressed CSV and JSON files
                import gzip

                data = gzip.decompress(data)
            path = Path(self._tmp.name) / f"{job_id}.{fmt.lower()}"
            path.write_bytes(data)
            if config.get("writeDisposition") in ("WRITE_TRUNCATE", "WRITE_TRUNCATE_DATA"):
                self.db.execute(f'DELETE FROM "{dataset}"."{table}"')
            if data.strip():
                reader = {
                    "PARQUET": f"read_parquet('{path}')",
                    "NEWLINE_DELIMITED_JSON": f"read_json('{path}', format = 'newline_delimited')",
                    "CSV": f"read_csv('{path}')",
                }[fmt]
                result = self.db.execute(f'INSERT INTO "{dataset}"."{table}" BY NAME SELECT * FROM {reader}').fetchall()
                record["rows"] = int(result[0][0])
            resource["statistics"]["load"]["outputRows"] = str(record["rows"])
        except BigQueryApiError as err:
            resource["status"]["errorResult"] = {"reason": err.reason, "message": err.message}
            resource["status"]["errors"] = [dict(resource["status"]["errorResult"])]
            record["error"] = err.message
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            resource["status"]["errorResult"] = {"reason": "invalid", "message": message}
            resource["status"]["errors"] = [dict(resource["status"]["errorResult"])]
            record["error"] = message
        self.loads.append(record)
        self.jobs[job_id] = Job(resource)
        return resource

    # ---------------------------------------------------------------------------------- storage API

    def _start_grpc(self) -> None:
        import grpc
        from google.cloud.bigquery_storage_v1 import types

        fake = self

        def create_read_session(request, context):
            table_path = request.read_session.table  # projects/p/datasets/d/tables/t
            m = re.fullmatch(r"projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", table_path)
            if not m or m.group(1) != fake.project:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Not found: Table {table_path}")
            dataset, table = m.group(2), m.group(3)
            selected = list(request.read_session.read_options.selected_fields)
            with fake.lock:
                if not fake._columns(dataset, table):
                    context.abort(grpc.StatusCode.NOT_FOUND, f"Not found: Table {fake.project}:{dataset}.{table}")
                cols = ", ".join(f'"{c}"' for c in selected) if selected else "*"
                data = fake.db.sql(f'SELECT {cols} FROM "{dataset}"."{table}"').to_arrow_table()
            data = _plain_arrow(data)
            name = f"projects/{fake.project}/locations/us/sessions/{uuid.uuid4().hex[:12]}"
            streams = []
            if data.num_rows:
                streams = [types.ReadStream(name=f"{name}/streams/0")]
                fake._stream_data[f"{name}/streams/0"] = data
            fake.read_sessions.append(
                {
                    "parent": request.parent,
                    "table": table_path,
                    "selected_fields": selected,
                    "data_format": types.DataFormat(request.read_session.data_format).name,
                    "max_stream_count": request.max_stream_count,
                    "rows": data.num_rows,
                }
            )
            return types.ReadSession(
                name=name,
                table=table_path,
                data_format=types.DataFormat.ARROW,
                streams=streams,
                arrow_schema=types.ArrowSchema(serialized_schema=data.schema.serialize().to_pybytes()),
            )

        def read_rows(request, context):
            data = fake._stream_data.get(request.read_stream)
            if data is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no stream {request.read_stream}")
            schema = types.ArrowSchema(serialized_schema=data.schema.serialize().to_pybytes())
            for batch in data.slice(request.offset).to_batches(max_chunksize=500):
                yield types.ReadRowsResponse(
                    row_count=batch.num_rows,
                    arrow_schema=schema,  # the real service sends it with the first response at least
                    arrow_record_batch=types.ArrowRecordBatch(
                        serialized_record_batch=batch.serialize().to_pybytes(), row_count=batch.num_rows
                    ),
                )

        self._stream_data: dict[str, pa.Table] = {}
        handler = grpc.method_handlers_generic_handler(
            "google.cloud.bigquery.storage.v1.BigQueryRead",
            {
                "CreateReadSession": grpc.unary_unary_rpc_method_handler(
                    create_read_session,
                    request_deserializer=types.CreateReadSessionRequest.deserialize,
                    response_serializer=types.ReadSession.serialize,
                ),
                "ReadRows": grpc.unary_stream_rpc_method_handler(
                    read_rows,
                    request_deserializer=types.ReadRowsRequest.deserialize,
                    response_serializer=types.ReadRowsResponse.serialize,
                ),
            },
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._grpc = server
        self.storage_endpoint = f"127.0.0.1:{port}"


def _plain_arrow(table: pa.Table) -> pa.Table:
    """Arrow types as the Storage API sends them: string, int64, timestamp[us] (UTC for TIMESTAMP)."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
            t = pa.string()
        elif pa.types.is_timestamp(t) and t.tz:
            t = pa.timestamp("us", tz="UTC")
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))
