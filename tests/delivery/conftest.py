"""Fixtures of the delivery tests: loopback servers and a clean settings environment."""

from pathlib import Path

import pytest
from loopback import ARTIFACT_REGISTRY, FakeKFP, FakeVertex


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No TAGIFAI_*, KFP or Google settings from the machine leak into a test."""
    import os

    for key in list(os.environ):
        if key.startswith(("TAGIFAI_", "KF_PIPELINES_", "GOOGLE_", "CLOUDSDK_", "MLFLOW_")):
            monkeypatch.delenv(key)
    # no ~/.config/kfp
    monkeypatch.setenv("HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "tagifai-delivery-home"))


@pytest.fixture
def kfp_server():
    with FakeKFP() as server:
        yield server


@pytest.fixture
def vertex_server():
    with FakeVertex() as server:
        yield server


@pytest.fixture
def offline_vertex(monkeypatch):
    """aiplatform with anonymous credentials; the pipeline root's bucket check is recorded, not sent."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import pipeline_jobs

    import tagifai_cli.vertex as vertex

    monkeypatch.setattr(vertex, "_credentials", lambda: AnonymousCredentials())
    checked = []
    monkeypatch.setattr(
        pipeline_jobs.gcs_utils,
        "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
        lambda output_artifacts_gcs_dir=None, **kw: checked.append(output_artifacts_gcs_dir),
    )
    yield checked
    from google.cloud import aiplatform

    aiplatform.initializer.global_config._api_endpoint = None
    aiplatform.initializer.global_config._api_transport = None


@pytest.fixture(scope="session")
def vertex_compiled(tmp_path_factory) -> Path:
    """The Vertex flavour of every pipeline compiled for an Artifact Registry repository (the committed one
    names the placeholder REGION-docker.pkg.dev/PROJECT/REPO, which the submit commands refuse)."""
    from pipelines import NAMES
    from pipelines.platform import DEFAULT_CONFIG
    from tagifai.steps import STEPS
    from tagifai_cli.packaging import compile_package

    out = tmp_path_factory.mktemp("vertex-compiled")
    images = {s.name: s.image(ARTIFACT_REGISTRY) for s in STEPS}
    for name in NAMES:
        compile_package(name, "vertex", out, str(DEFAULT_CONFIG), images=images)
    return out
