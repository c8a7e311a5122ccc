"""One settings object, read from the environment (and an optional ``.env``).

Environments are configuration, not branches: the same code runs on the embedded default (a DuckDB
file, MLflow and Optuna in SQLite under one state folder) and in production (BigQuery, a tracking
server). Only the values below change.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tagifai import __version__

#: The repository root when running from a checkout (``pip install -e .``) or from an image that
#: copies the project to a folder; overridable with TAGIFAI_PROJECT_DIR.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

#: Public Made With ML sources, pinned to a commit (see ../shared/data/madewithml/SOURCES.md).
PUBLIC_SOURCES = {
    "projects": "https://raw.githubusercontent.com/GokuMohandas/Made-With-ML/"
    "05d62c1a78a071794df7c945d8b42c3fbf3fdc96/datasets/projects.csv",
    "tags": "https://raw.githubusercontent.com/GokuMohandas/Made-With-ML/"
    "05d62c1a78a071794df7c945d8b42c3fbf3fdc96/datasets/tags.csv",
}


class Settings(BaseSettings):
    """Where things live. Every field can be set as ``TAGIFAI_<FIELD>`` (or in ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="TAGIFAI_", env_file=".env", extra="ignore")

    project_dir: Path = Field(default=PACKAGE_ROOT, description="folder holding dbt_transforms/ and great_expectations/")
    home: Path = Field(default=PACKAGE_ROOT / ".tagifai", description="state folder of the embedded default")
    warehouse: str = Field(default="", description="duckdb:///path/file.duckdb or bigquery://project/dataset")
    mlflow_tracking_uri: str = Field(default="", description="MLflow tracking and registry URI")
    optuna_storage: str = Field(default="", description="Optuna RDB storage URL")
    data_dir: str = Field(default="", description="folder (or URL prefix) holding projects.csv and tags.csv")
    registry: str = Field(default="localhost:5000", description="image registry prefix")
    image_tag: str = Field(default=__version__, description="image tag")
    model_name: str = Field(default="tagifai", description="name in the MLflow model registry")
    experiment_name: str = Field(default="tagifai", description="MLflow experiment")

    def model_post_init(self, __context) -> None:  # noqa: D401 - pydantic hook
        self.home = Path(self.home).expanduser().resolve()
        if not self.warehouse:
            self.warehouse = f"duckdb:///{self.home / 'warehouse.duckdb'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"
        if not self.optuna_storage:
            self.optuna_storage = f"sqlite:///{self.home / 'optuna.db'}"

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
        """The projects and tags sources: DATA_DIR, else the shared copy beside the checkout, else the public URLs."""
        data_dir = self.data_dir or os.environ.get("DATA_DIR", "")
        if not data_dir:
            shared = Path(self.project_dir).parent / "shared" / "data" / "madewithml"
            if (shared / "projects.csv").exists():
                data_dir = str(shared)
        if not data_dir:
            return dict(PUBLIC_SOURCES)
        sep = "" if data_dir.endswith("/") else "/"
        if "://" not in data_dir:
            data_dir = str(Path(data_dir).expanduser().resolve())
        return {name: f"{data_dir}{sep}{name}.csv" for name in ("projects", "tags")}

    def image(self, step: str) -> str:
        """The image of one step: ``<registry>/tagifai-<step>:<tag>``."""
        return f"{self.registry.rstrip('/')}/tagifai-{step}:{self.image_tag}"


def get_settings(**overrides) -> Settings:
    """Fresh settings from the environment, with explicit overrides (the CLI's flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v not in (None, "")})
