"""The continual loop's sensor as a Cloud Run function: new data in Cloud Storage starts the Vertex AI ``sensor``
pipeline, at most once for the same data.

Events arrive as CloudEvents (Eventarc delivers them over HTTP; the Functions Framework parses them):

- ``google.cloud.storage.object.v1.finalized``: an object was written; ``data`` is the object (``bucket``,
  ``name``, ``generation`` ...).
- ``google.cloud.pubsub.topic.v1.messagePublished``: a Cloud Storage notification (attributes ``bucketId``,
  ``objectId``, ``eventType``; the object as the message), or any other message (a Cloud Scheduler tick,
  say), which senses without naming an object.

For each event: an object that is not watched (``SENSOR_WATCH``, default the projects source) is ignored,
with the reason logged. Otherwise the projects source is sensed (:func:`tagifai.sensor.sense`: its ids and
timestamps, the watermark in the warehouse, the settings' thresholds): a cheap pre-check, and when
``retrain`` is false the function returns without calling Vertex AI. When it is true, the compiled Vertex
``sensor`` pipeline is submitted as a PipelineJob whose ``job_id`` is the decision's run key
(:func:`tagifai_cli.sensor.submit_vertex`, shared with ``tagifai sense --submit vertex``). Vertex AI keeps job
ids unique in a location, so an event delivered twice, a retried event, or a second file holding the same
data cannot start a second run: Vertex answers 409 ALREADY_EXISTS, which is logged and answered OK.

The configuration is the suite's settings (``TAGIFAI_*``, :mod:`tagifai.config`) plus a few ``SENSOR_*``
variables of this function (README.md beside this file lists them all). Every outcome is one JSON line on
stdout, which Cloud Logging keeps as a structured entry (``severity``, ``message`` and the fields). A
configuration error or a failed call raises: the event is answered 500, and redelivered when the trigger
retries (safe, because of the job id).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import functions_framework

HERE = Path(__file__).resolve().parent
FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def log(severity: str, message: str, **fields) -> dict:
    """One structured log entry (a JSON line on stdout); returned, so the outcome is also the entry."""
    entry = {"severity": severity, "message": message, **fields}
    print(json.dumps(entry, default=str), file=sys.stdout, flush=True)
    return entry


def event_object(kind: str, data) -> tuple[str | None, str | None]:
    """``(gs:// URI of the object the event is about, None)``; ``(None, None)`` for a message naming no
    object (sense anyway); ``(None, reason)`` for an event to ignore."""
    data = data if isinstance(data, dict) else {}
    if kind == FINALIZED:
        if not data.get("bucket") or not data.get("name"):
            return None, "a Cloud Storage event without bucket and name"
        return f"gs://{data['bucket']}/{data['name']}", None
    if kind == PUBLISHED:
        message = data.get("message") or {}
        attributes = message.get("attributes") or {}
        if "objectId" in attributes:  # a Cloud Storage notification to Pub/Sub
            if attributes.get("eventType", "OBJECT_FINALIZE") != "OBJECT_FINALIZE":
                return None, f"a Cloud Storage notification of {attributes['eventType']}, not OBJECT_FINALIZE"
            return f"gs://{attributes.get('bucketId', '')}/{attributes['objectId']}", None
        try:
            payload = json.loads(base64.b64decode(message.get("data") or "", validate=True) or b"null")
        except (binascii.Error, ValueError):
            payload = None
        if isinstance(payload, dict) and payload.get("kind") == "storage#object":
            return f"gs://{payload.get('bucket', '')}/{payload.get('name', '')}", None
        return None, None
    return None, f"event type {kind!r} is not one this function handles ({FINALIZED}, {PUBLISHED})"


@dataclass
class Config:
    """The function's configuration, read for each event (the suite's settings and the SENSOR_* variables)."""

    settings: object
    place: object  # tagifai_cli.vertex.Place
    defaults: dict  # the run's parameters from the settings (tagifai_cli.sensor.remote_parameters)
    given: dict  # SENSOR_PARAMETERS, over the defaults
    projects: str  # the projects source sensed, and the run's projects_source
    watch: list[str]  # gs:// objects (exact) or prefixes (ending in /) whose events count
    template: str
    api_transport: str | None

    @classmethod
    def from_env(cls, environ=os.environ) -> Config:
        from tagifai.config import get_settings
        from tagifai_cli.options import pipeline_arguments
        from tagifai_cli.sensor import check_given, remote_parameters
        from tagifai_cli.vertex import Place

        settings = get_settings()
        try:
            given = json.loads(environ.get("SENSOR_PARAMETERS") or "{}")
        except ValueError as exc:
            raise ValueError(f"SENSOR_PARAMETERS: not JSON ({exc})") from None
        if not isinstance(given, dict):
            raise ValueError("SENSOR_PARAMETERS: expected a JSON object of pipeline parameters")
        check_given(
            given, "SENSOR_PARAMETERS", "set TAGIFAI_DATA_DIR or SENSOR_PROJECTS_SOURCE, TAGIFAI_WAREHOUSE, ..."
        )
        arguments = pipeline_arguments(
            "sensor",
            settings,
            projects=environ.get("SENSOR_PROJECTS_SOURCE") or None,
            tags=environ.get("SENSOR_TAGS_SOURCE") or None,
        )
        projects = arguments["projects_source"]
        watch = [w.strip() for w in (environ.get("SENSOR_WATCH") or "").split(",") if w.strip()]
        if not watch and projects.startswith("gs://"):
            watch = [projects]
        bad = [w for w in watch if not w.startswith("gs://")]
        if bad:
            raise ValueError(f"SENSOR_WATCH {', '.join(bad)}: expected gs://BUCKET/OBJECT or gs://BUCKET/PREFIX/")
        unset = SimpleNamespace(project=None, region=None, pipeline_root=None, service_account=None, api_endpoint=None)
        return cls(
            settings=settings,
            place=Place.of(unset, settings),
            defaults=remote_parameters(arguments, settings.sensor_min_new_rows, settings.sensor_max_age_days),
            given=given,
            projects=projects,
            watch=watch,
            template=environ.get("SENSOR_TEMPLATE") or default_template(),
            api_transport=environ.get("SENSOR_API_TRANSPORT") or None,
        )

    def watches(self, uri: str) -> bool:
        return any(uri == w or (w.endswith("/") and uri.startswith(w)) for w in self.watch)


def default_template() -> str:
    """``sensor.yaml`` deployed beside this file, else the compiled one of a checkout of the project."""
    beside = HERE / "sensor.yaml"
    if beside.exists():
        return str(beside)
    from tagifai_cli.packaging import COMPILED

    return str(COMPILED / "vertex" / "sensor.yaml")


def load_template(uri: str, config: Config, workdir: str) -> tuple[str, dict]:
    """``(template, pipeline spec)`` of the compiled Vertex sensor pipeline: a local file (checked as
    ``tagifai vertex run --package`` checks it), or a gs:// or Artifact Registry URI read by aiplatform."""
    if "://" not in uri:
        from tagifai_cli.options import load_package

        return uri, load_package("sensor", uri, "vertex", workdir).spec
    from google.cloud.aiplatform.utils import yaml_utils

    from tagifai_cli import vertex
    from tagifai_cli.packaging import DeliveryError

    spec = yaml_utils.load_yaml(uri, config.place.project or None, vertex._credentials())
    spec = spec.get("pipelineSpec", spec)
    name = spec.get("pipelineInfo", {}).get("name")
    if name != "sensor":
        raise DeliveryError(f"SENSOR_TEMPLATE {uri} holds pipeline {name!r}, not 'sensor'")
    return uri, spec


def readable(source: str, config: Config, workdir: str) -> str:
    """A source the sensor reads: a gs:// object is downloaded first (google-cloud-storage, the function's
    credentials) and read locally by DuckDB; anything else is read where it is."""
    if not source.startswith("gs://"):
        return source
    from google.cloud import storage

    from tagifai_cli import vertex

    parsed = urlparse(source)
    local = Path(workdir) / Path(parsed.path).name
    client = storage.Client(project=config.place.project or None, credentials=vertex._credentials())
    client.bucket(parsed.netloc).blob(parsed.path.lstrip("/")).download_to_filename(str(local))
    return str(local)


def handle(event) -> dict:
    """What one event does; the log entry of its outcome (``outcome``: ignored, no-retrain, submitted, exists)."""
    from tagifai.sensor import sense
    from tagifai_cli.sensor import submit_vertex

    kind, event_id = event["type"], event["id"]
    uri, reason = event_object(kind, event.data)
    if reason:
        return log("INFO", f"ignored: {reason}", outcome="ignored", event_id=event_id, event_type=kind)
    config = Config.from_env()
    if uri is not None and not config.watches(uri):
        if config.watch:
            why = f"watching {', '.join(config.watch)}"
        else:
            why = f"the projects source {config.projects} is not in Cloud Storage: set SENSOR_WATCH"
        return log(
            "INFO",
            f"ignored: {uri} is not the projects source ({why})",
            outcome="ignored",
            event_id=event_id,
            object=uri,
        )
    settings = config.settings
    with tempfile.TemporaryDirectory(prefix="tagifai-sensor-") as workdir:
        decision = sense(
            readable(config.projects, config, workdir),
            settings.warehouse,
            settings.sensor_min_new_rows,
            settings.sensor_max_age_days,
        )
        fields = dict(
            event_id=event_id,
            object=uri,
            source=config.projects,
            run_key=decision.run_key,
            new_rows=decision.new_rows,
            reason=decision.reason,
        )
        if not decision.retrain:
            return log("INFO", f"no run: {decision.reason}", outcome="no-retrain", **fields)
        template, spec = load_template(config.template, config, workdir)
        submitted = submit_vertex(
            template,
            spec,
            decision,
            settings,
            config.place,
            config.defaults,
            config.given,
            api_transport=config.api_transport,
            labels={"trigger": "storage" if kind == FINALIZED else "pubsub"},
        )
    if not submitted.created:
        state = f" ({submitted.state})" if submitted.state else ""
        return log(
            "INFO",
            f"no run: pipeline job {decision.run_key} already exists{state}: the same data started it",
            outcome="exists",
            job=submitted.name,
            state=submitted.state,
            url=submitted.url,
            **fields,
        )
    return log(
        "NOTICE",
        f"submitted pipeline job {decision.run_key}: {decision.reason}",
        outcome="submitted",
        job=submitted.name,
        url=submitted.url,
        **fields,
    )


@functions_framework.cloud_event
def on_event(event) -> None:
    """The entry point (``--entry-point on_event``)."""
    try:
        handle(event)
    except Exception as exc:
        log("ERROR", f"{type(exc).__name__}: {exc}", outcome="error", event_id=event["id"], event_type=event["type"])
        raise
