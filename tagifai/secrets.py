"""Secrets from Google Secret Manager: a setting that holds a secret may hold a *reference* instead.

A reference is ``sm://projects/P/secrets/S/versions/V`` (``V`` a number or ``latest``). The reference is not a
secret (it may sit in a platform file and so in a compiled pipeline); the value is, and it is read only inside
the process that needs it (a pipeline step, at run time), with google-cloud-secret-manager and the process's
credentials (on Vertex AI: the pipeline's service account, which needs ``roles/secretmanager.secretAccessor``
on the secret). The value is never logged, printed, written, nor made a pipeline parameter.

- :func:`read_secret_manager`: the payload of one version (also used by :mod:`tagifai.notify`).
- :func:`resolve`: a setting's value as it is, or the secret it refers to (read once per process).
- :func:`export_step_secrets`: what a step does at start (:func:`tagifai.config.get_settings`): the MLflow token
  setting (``TAGIFAI_MLFLOW_TRACKING_TOKEN``, a value or a reference) resolved and given to the MLflow client
  as ``MLFLOW_TRACKING_TOKEN`` in this process's environment, unless that is set already; an
  ``MLFLOW_TRACKING_TOKEN``/``MLFLOW_TRACKING_PASSWORD`` that is itself a reference is resolved in place.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import MutableMapping
from typing import Any

PREFIX = "sm://"
_NAME = re.compile(r"^projects/[^/\s]+/secrets/[A-Za-z0-9_-]+/versions/(latest|[0-9]+)$")
#: Environment variables MLflow reads its credentials from that may hold a reference.
MLFLOW_SECRET_ENV = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")

_cache: dict[str, str] = {}
_lock = threading.Lock()


class SecretReferenceError(ValueError):
    """A reference that is malformed or cannot be read (the message names the reference, never a value)."""


def read_secret_manager(name: str, client: Any = None, timeout: float = 10.0) -> str:
    """The payload of Secret Manager version ``name`` (``projects/P/secrets/S/versions/V``) as text.

    ``client``: a ``SecretManagerServiceClient`` (default: a new one, gRPC, Application Default Credentials).
    """
    if client is None:
        client = _client()
    response = client.access_secret_version(name=name, timeout=timeout)
    return response.payload.data.decode("utf-8").strip()


def _client():
    """A new Secret Manager client (gRPC, Application Default Credentials); tests replace this. In an image
    without google-cloud-secret-manager (the MLflow steps: only the notify image has it) the same call over
    Secret Manager's REST API with google-auth, which every image has (:class:`RestClient`)."""
    try:
        from google.cloud import secretmanager
    except ImportError:
        return RestClient()
    return secretmanager.SecretManagerServiceClient()


class RestClient:
    """``access_secret_version`` over ``GET {endpoint}/v1/{name}:access`` with Application Default Credentials
    (google-auth's AuthorizedSession): the documented REST method, no client library needed."""

    def __init__(self, endpoint: str = "https://secretmanager.googleapis.com", credentials: Any = None):
        self.endpoint = endpoint.rstrip("/")
        self.credentials = credentials

    def access_secret_version(self, name: str, timeout: float = 10.0):
        import base64
        from types import SimpleNamespace

        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials = self.credentials
        if credentials is None:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        response = AuthorizedSession(credentials).get(f"{self.endpoint}/v1/{name}:access", timeout=timeout)
        response.raise_for_status()
        data = base64.b64decode(response.json()["payload"]["data"])
        return SimpleNamespace(payload=SimpleNamespace(data=data))


def is_reference(value: object) -> bool:
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return isinstance(text, str) and text.strip().startswith(PREFIX)


def version_name(reference: str) -> str:
    """``projects/P/secrets/S/versions/V`` of ``sm://projects/P/secrets/S/versions/V`` (checked)."""
    name = reference.strip().removeprefix(PREFIX)
    if not _NAME.match(name):
        raise SecretReferenceError(
            f"secret reference {reference.strip()!r}: expected sm://projects/PROJECT/secrets/NAME/versions/VERSION "
            "(VERSION a number or latest)"
        )
    return name


def resolve(value: Any, *, client: Any = None, what: str = "secret") -> str:
    """``value`` (a str or ``SecretStr``) as it is, or, for a reference, the secret it names.

    A version is read once per process (``latest`` too: a step is short). ``what`` names the setting in errors.
    """
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value or "")
    if not is_reference(text):
        return text
    name = version_name(text)
    with _lock:
        if name in _cache:
            return _cache[name]
    try:
        secret = read_secret_manager(name, client=client)
    except ImportError:
        raise SecretReferenceError(
            f"{what}: {PREFIX}{name} needs google-cloud-secret-manager in this environment (pyproject extra notify)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - one line naming the reference and the error class, not a value
        raise SecretReferenceError(
            f"{what}: cannot read {PREFIX}{name} from Secret Manager ({type(exc).__name__})"
        ) from None
    if not secret:
        raise SecretReferenceError(f"{what}: {PREFIX}{name} is empty")
    with _lock:
        _cache[name] = secret
    return secret


def export_step_secrets(settings: Any, environ: MutableMapping[str, str] | None = None, client: Any = None) -> None:
    """Give the MLflow client its credentials in this process: ``MLFLOW_TRACKING_TOKEN`` from the setting
    ``mlflow_tracking_token`` (a value, or a reference read now) unless already set; an MLflow credential
    variable holding a reference is replaced by the secret. Nothing is printed or returned."""
    environ = os.environ if environ is None else environ
    for key in MLFLOW_SECRET_ENV:
        if is_reference(environ.get(key, "")):
            environ[key] = resolve(environ[key], client=client, what=key)
    token = getattr(settings, "mlflow_tracking_token", None)
    if token is not None and token.get_secret_value().strip() and not environ.get("MLFLOW_TRACKING_TOKEN"):
        environ["MLFLOW_TRACKING_TOKEN"] = resolve(token, client=client, what="TAGIFAI_MLFLOW_TRACKING_TOKEN")


def clear_cache() -> None:
    with _lock:
        _cache.clear()
