"""The airbyte_sync component, called with real artifact objects, against a loopback Airbyte API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import compiler
from kfp.dsl import Dataset, Metrics

from components.airbyte_sync import airbyte_sync
from fakes.airbyte import FakeAirbyte
from tagifai.airbyte import AirbyteJobFailed

TOKEN = "component-secret-token-42"


def _artifact(cls, tmp_path: Path, name: str):
    path = tmp_path / "artifacts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return cls(name=name, uri=str(path), metadata={})


@pytest.fixture
def airbyte(monkeypatch):
    fake = FakeAirbyte(token=TOKEN).start()
    monkeypatch.setenv("TAGIFAI_AIRBYTE_TOKEN", TOKEN)  # as the secret reaches the step: an env var
    monkeypatch.setenv("TAGIFAI_AIRBYTE_URL", fake.url)
    yield fake
    fake.stop()


def test_component_records_the_job_and_its_metrics(airbyte, tmp_path):
    cid = airbyte.add_connection(["pending", "running", "succeeded"], rows=764, bytes=98_765)
    job, metrics = _artifact(Dataset, tmp_path, "job"), _artifact(Metrics, tmp_path, "metrics")
    airbyte_sync.python_func(connection_id=cid, job=job, metrics=metrics, server_url="", timeout_seconds=30, poll_seconds=0.01)

    record = json.loads(Path(job.path).read_text())
    assert record["status"] == "succeeded" and record["connection_id"] == cid
    assert record["rows_synced"] == 764 and record["bytes_synced"] == 98_765 and record["attempts"] == 1
    assert job.metadata["job_id"] == record["job_id"] == airbyte.requests[-1]["body"]["id"]
    assert metrics.metadata["rows_synced"] == 764 and metrics.metadata["attempts"] == 1
    assert "error" not in record  # None fields are left out
    everything = Path(job.path).read_text() + json.dumps(job.metadata) + json.dumps(metrics.metadata)
    assert TOKEN not in everything


def test_component_fails_with_airbytes_message(airbyte, tmp_path):
    failure = {"failureOrigin": "destination", "failureType": "system_error",
               "externalMessage": "BigQuery dataset tagifai_raw not found", "timestamp": 1}
    cid = airbyte.add_connection(["running", "failed"], failures=[failure])
    job, metrics = _artifact(Dataset, tmp_path, "job"), _artifact(Metrics, tmp_path, "metrics")
    with pytest.raises(AirbyteJobFailed, match="destination system_error: BigQuery dataset tagifai_raw not found"):
        airbyte_sync.python_func(connection_id=cid, job=job, metrics=metrics, server_url=airbyte.url, timeout_seconds=30, poll_seconds=0.01)
    assert not Path(job.path).exists()


def test_component_compiles_without_any_secret(tmp_path):
    out = tmp_path / "airbyte_sync.yaml"
    compiler.Compiler().compile(airbyte_sync, str(out))
    text = out.read_text()
    assert "tagifai-sync:" in text  # runs on the sync step's image
    spec = airbyte_sync.component_spec
    assert set(spec.inputs) == {"connection_id", "server_url", "timeout_seconds", "poll_seconds"}
    assert set(spec.outputs) == {"job", "metrics"}
    assert TOKEN not in text and "TAGIFAI_AIRBYTE_TOKEN=" not in text
