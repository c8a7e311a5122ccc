"""The model registry's aliases with a memory: every move of ``champion`` or ``challenger`` is recorded.

MLflow keeps no history of aliases. :class:`Registry` moves them and records each move (who, when in
UTC, alias, from version, to version, why, and the action: promote, approve, rollback, challenger ...)
twice:

- as **model-version tags** on the target version, ``tagifai.<alias>.by/at/from/reason`` (the last
  move of that alias onto the version, visible in the MLflow UI next to the version);
- in an **append-only log in the tracking store**: one MLflow run per move in the experiment
  ``<model_name>-aliases``, the fields as params (which MLflow never lets anyone change) and tags (to
  search on). It lives wherever the tracking store lives, so it works the same with the local SQLite
  file and a tracking server on a cluster, and survives any one process.

Decisions of the evaluate step and of people are model-version tags too: ``tagifai.decision``
(``promoted``, ``pending-approval``, ``rejected``, ``rolled-back``) and ``tagifai.decision_reason``.

Every move of ``champion`` also writes the **serving copy** of the new champion beside a local SQLite store
(:meth:`Registry.export_serving_copy`, :mod:`tagifai.predict`), which ``tagifai predict`` loads without MLflow
while it is still the champion.

Who: :func:`actor` (``getpass.getuser()``, i.e. ``$LOGNAME``/``$USER``/... or the OS account).
mlflow is imported inside the functions (through :mod:`tagifai.tracking`).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tagifai.tracking import CHAMPION, _artifact_location, _client, model_version_by_alias

logger = logging.getLogger(__name__)

CHALLENGER = "challenger"
DECISION = "tagifai.decision"
DECISION_REASON = "tagifai.decision_reason"
PROMOTED, PENDING, REJECTED, ROLLED_BACK = "promoted", "pending-approval", "rejected", "rolled-back"
#: The tags of a move in the alias log (each also a param, which MLflow keeps immutable).
_LOG_FIELDS = ("alias", "from_version", "to_version", "actor", "moved_at", "reason", "action")


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown version, nothing to roll back to ...)."""


class UnknownVersionError(RegistryError, LookupError):
    """The registered model has no such version."""


def actor() -> str:
    """Who moves an alias: ``getpass.getuser()`` (the ``LOGNAME``/``USER`` variables first, then the OS account)."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no such user in a container's passwd and no variable set
        return "unknown"


@dataclass(frozen=True)
class AliasMove:
    """One entry of the alias log."""

    alias: str
    from_version: int | None
    to_version: int
    actor: str
    moved_at: str  # ISO 8601, UTC, microseconds
    reason: str
    action: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Registry:
    """The aliases, decisions and alias log of one registered model in one tracking store."""

    def __init__(self, model_name: str, tracking_uri: str | None = None, actor_name: str | None = None):
        self.model_name = model_name
        self.client = _client(tracking_uri)
        self.tracking_uri = self.client.tracking_uri
        self.actor = actor_name or actor()

    # ------------------------------------------------------------------ reading

    @property
    def log_experiment(self) -> str:
        return f"{self.model_name}-aliases"

    def alias_version(self, alias: str) -> int | None:
        """The version behind ``alias``, or None."""
        mv = model_version_by_alias(self.client, self.model_name, alias)
        return None if mv is None else int(mv.version)

    def version(self, version: int | str):
        """The MLflow ``ModelVersion``; :class:`UnknownVersionError` when there is none."""
        from mlflow.exceptions import MlflowException

        text = str(version).strip()
        if not text.isdigit():
            raise UnknownVersionError(f"{self.model_name}: {version!r} is not a version number")
        try:
            return self.client.get_model_version(self.model_name, text)
        except MlflowException as exc:
            known = sorted(int(v.version) for v in self._versions())
            raise UnknownVersionError(
                f"{self.model_name} has no version {text} (versions: {', '.join(map(str, known)) or 'none'})"
            ) from exc

    def _versions(self) -> list:
        from mlflow.exceptions import MlflowException

        try:
            return list(self.client.search_model_versions(f"name='{self.model_name}'"))
        except MlflowException:
            return []

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, newest first: version, aliases, key metrics of its run (test f1/precision/recall),
        decision and its reason, created (UTC ISO), run id."""
        from mlflow.exceptions import MlflowException

        aliases: dict[int, list[str]] = {}
        try:  # search_model_versions leaves aliases out with some stores; the registered model has them all
            for alias, version in (self.client.get_registered_model(self.model_name).aliases or {}).items():
                aliases.setdefault(int(version), []).append(alias)
        except MlflowException:
            pass
        rows = []
        for mv in sorted(self._versions(), key=lambda v: int(v.version), reverse=True):
            metrics: dict[str, float] = {}
            if mv.run_id:
                try:
                    metrics = dict(self.client.get_run(mv.run_id).data.metrics)
                except MlflowException:
                    metrics = {}
            tags = dict(mv.tags or {})
            rows.append(
                {
                    "version": int(mv.version),
                    "aliases": sorted(set(aliases.get(int(mv.version), [])) | set(mv.aliases or [])),
                    "f1": metrics.get("test_f1"),
                    "precision": metrics.get("test_precision"),
                    "recall": metrics.get("test_recall"),
                    "eval_f1": _float(tags.get("tagifai.eval_f1")),
                    "decision": tags.get(DECISION, ""),
                    "decision_reason": tags.get(DECISION_REASON, ""),
                    "created": _iso(mv.creation_timestamp),
                    "run_id": mv.run_id or "",
                }
            )
        return rows

    def decision(self, version: int | str) -> str:
        return dict(self.version(version).tags or {}).get(DECISION, "")

    def alias_history(self, alias: str | None = None) -> list[AliasMove]:
        """The alias log, oldest first (optionally one alias only)."""
        experiment = self.client.get_experiment_by_name(self.log_experiment)
        if experiment is None:
            return []
        query = f"tags.`tagifai.alias` = '{alias}'" if alias else ""
        moves: list[AliasMove] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment.experiment_id], filter_string=query, max_results=1000, page_token=token
            )
            for run in page:
                p = run.data.params
                moves.append(
                    AliasMove(
                        alias=p["alias"],
                        from_version=int(p["from_version"]) if p.get("from_version", "").isdigit() else None,
                        to_version=int(p["to_version"]),
                        actor=p.get("actor", ""),
                        moved_at=p["moved_at"],
                        reason=p.get("reason", ""),
                        action=p.get("action", ""),
                    )
                )
            token = page.token
            if not token:
                break
        return sorted(moves, key=lambda m: m.moved_at)

    # ------------------------------------------------------------------ moving

    def move_alias(self, alias: str, version: int | str, reason: str, action: str = "move") -> AliasMove:
        """Point ``alias`` at ``version`` and record the move (version tags and the alias log)."""
        mv = self.version(version)
        to_version = int(mv.version)
        move = AliasMove(
            alias=alias,
            from_version=self.alias_version(alias),
            to_version=to_version,
            actor=self.actor,
            moved_at=datetime.now(UTC).isoformat(timespec="microseconds"),
            reason=reason,
            action=action,
        )
        self.client.set_registered_model_alias(self.model_name, alias, str(to_version))
        for key, value in (
            ("by", move.actor),
            ("at", move.moved_at),
            ("from", "" if move.from_version is None else str(move.from_version)),
            ("reason", reason),
        ):
            self.client.set_model_version_tag(self.model_name, str(to_version), f"tagifai.{alias}.{key}", value)
        self._log(move)
        if alias == CHAMPION:
            self._export_champion(to_version)
        return move

    # ------------------------------------------------------------------ the serving copy

    def export_serving_copy(self, version: int | str | None = None) -> Path | None:
        """Write the serving copy of ``version`` (default: the champion) beside a local SQLite store, for
        ``tagifai predict`` to load without MLflow (:func:`tagifai.predict.load_serving_copy`). Returns the
        path of its ``serving.json``, or None when the store is not a local SQLite file or there is no
        champion. Raises when the model's files cannot be read."""
        import tempfile

        import mlflow.artifacts
        from mlflow.models import Model

        from tagifai.predict import serving_dir, write_serving_copy

        if serving_dir(self.tracking_uri, self.model_name) is None:
            return None
        if version is None:
            version = self.alias_version(CHAMPION)
            if version is None:
                return None
        mv = self.version(version)
        uri = self.client.get_model_version_download_uri(self.model_name, str(mv.version))
        with tempfile.TemporaryDirectory(prefix="tagifai-serving-") as tmp, _no_progress_bar():
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            flavor = Model.load(str(local)).flavors.get("sklearn")
            if not flavor or "pickled_model" not in flavor:
                raise RegistryError(f"{self.model_name} version {mv.version} has no sklearn flavor to serve")
            return write_serving_copy(
                local / flavor["pickled_model"],
                self.tracking_uri,
                self.model_name,
                mv.version,
                run_id=mv.run_id or "",
                source=mv.source or "",
                serialization_format=flavor.get("serialization_format", "cloudpickle"),
            )

    def _export_champion(self, version: int) -> None:
        """The serving copy after a champion move; a failure leaves the move done and prediction on MLflow."""
        try:
            self.export_serving_copy(version)
        except Exception as exc:  # a stale copy is never served (its version is checked), so only speed is lost
            logger.warning(
                "%s: no serving copy of version %s (%s: %s)", self.model_name, version, type(exc).__name__, exc
            )

    def _log(self, move: AliasMove) -> None:
        from mlflow.entities import Param, RunTag

        experiment_id = self._log_experiment_id()
        fields = {k: "" if v is None else str(v) for k, v in move.to_dict().items()}
        run = self.client.create_run(
            experiment_id,
            start_time=int(time.time() * 1000),
            run_name=f"{move.alias}: {fields['from_version'] or '-'} -> {move.to_version}",
            tags={"tagifai.alias": move.alias, "tagifai.action": move.action, "tagifai.model": self.model_name},
        )
        self.client.log_batch(
            run.info.run_id,
            params=[Param(k, fields[k][:6000]) for k in _LOG_FIELDS],
            tags=[RunTag("tagifai.to_version", fields["to_version"])],
        )
        self.client.set_terminated(run.info.run_id)

    def _log_experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(self.log_experiment)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        # The log keeps no artifacts; a local database's location goes beside it, not under the settings' home.
        root = None
        if self.tracking_uri.startswith("sqlite:///") and ":memory:" not in self.tracking_uri:
            root = (Path(self.tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
        location = _artifact_location(self.tracking_uri, root, self.log_experiment)
        try:
            return self.client.create_experiment(self.log_experiment, artifact_location=location)
        except MlflowException:  # created concurrently
            experiment = self.client.get_experiment_by_name(self.log_experiment)
            if experiment is None:
                raise
            return experiment.experiment_id

    def set_decision(self, version: int | str, decision: str, reason: str) -> None:
        self.client.set_model_version_tag(self.model_name, str(version), DECISION, decision)
        self.client.set_model_version_tag(self.model_name, str(version), DECISION_REASON, reason[:5000])

    def approve(self, version: int | str, reason: str = "", force: bool = False) -> AliasMove:
        """A person makes ``version`` the champion. A rejected version needs ``force``; the current
        champion cannot be approved again."""
        mv = self.version(version)
        tags = dict(mv.tags or {})
        if tags.get(DECISION) == REJECTED and not force:
            raise RegistryError(
                f"{self.model_name} version {mv.version} was rejected ({tags.get(DECISION_REASON, 'no reason')}); "
                "approve it anyway with force (--force)"
            )
        if self.alias_version(CHAMPION) == int(mv.version):
            raise RegistryError(f"{self.model_name} version {mv.version} is already the champion")
        why = reason or "approved"
        move = self.move_alias(CHAMPION, mv.version, why, action="approve")
        self.set_decision(mv.version, PROMOTED, f"approved by {self.actor}: {why}")
        return move

    def previous_champion(self) -> int | None:
        """The champion before the current one, from the log: promotions and approvals push a version,
        rollbacks pop one (so rolling back twice goes two champions back, not back and forth)."""
        stack: list[int] = []
        for move in self.alias_history(CHAMPION):
            if move.action == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != move.to_version:
                    stack.append(move.to_version)
            else:
                stack.append(move.to_version)
        current = self.alias_version(CHAMPION)
        while stack and stack[-1] == current:
            stack.pop()
        return stack[-1] if stack else None

    def rollback(self, reason: str = "") -> AliasMove:
        """Move the champion back to the previous champion; :class:`RegistryError` when there is none."""
        current = self.alias_version(CHAMPION)
        if current is None:
            raise RegistryError(f"{self.model_name} has no champion to roll back")
        target = self.previous_champion()
        if target is None:
            raise RegistryError(
                f"{self.model_name}: no previous champion to roll back to (version {current} is the only one "
                "in the alias history)"
            )
        why = reason or "rollback"
        move = self.move_alias(CHAMPION, target, why, action="rollback")
        self.set_decision(current, ROLLED_BACK, f"rolled back by {self.actor}: {why}")
        return move


@contextlib.contextmanager
def _no_progress_bar():
    """MLflow's artifact download progress bar off (it would print on stderr of every promotion)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _iso(millis: int | None) -> str:
    if not millis:
        return ""
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
