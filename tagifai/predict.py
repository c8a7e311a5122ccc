"""Prediction: tag projects with a trained model.

:func:`predict` takes a frame of projects (``title``, ``description``; ``id`` kept when present) and
returns the predicted tag with one probability column per class. The model is a
:class:`~tagifai.model.TagifaiModel` (or anything with ``classes_``, ``predict_proba`` and
``threshold``, e.g. one loaded back from MLflow with :func:`tagifai.tracking.load_model`).

Only :mod:`tagifai.model` is imported here (inside :func:`predict`, with pandas), never the training code
(:mod:`tagifai.train`), and never MLflow: :func:`load_serving_copy` loads the champion from its serving copy
(written by :class:`tagifai.registry.Registry` at every move of the alias) after checking with one SQLite query that
it is still the champion; ``tagifai predict`` falls back to MLflow when it is not (see the section below). With
``compiled=True`` it returns the copy's compiled form (:mod:`tagifai.serving`) when there is one: no scikit-learn,
SciPy or pandas.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagifai.labels import apply_threshold, prob_column  # re-exported: the one definition of each
from tagifai.tracking import CHAMPION  # constants only: tagifai.tracking imports MLflow inside its functions

if TYPE_CHECKING:
    import pandas as pd

# numpy, pandas, tagifai.data and tagifai.model are imported inside predict(): the serving-copy functions below must
# not import pandas (``tagifai predict`` of one project with a compiled serving copy imports neither pandas nor
# scikit-learn; tests/unit/test_serving.py checks it).

#: Columns :func:`predict` needs.
PREDICT_COLUMNS: tuple[str, ...] = ("title", "description")


def predict(model: Any, df: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Predicted tags and class probabilities for each row of ``df``.

    Columns: ``id`` (when ``df`` has it), ``predicted_tag``, then ``prob_<class>`` for each class of
    the model, in the model's class order. The index is ``df``'s. ``predicted_tag`` is "other" when
    the top probability is below the model's threshold (or ``threshold`` when given).
    A missing title or description column is a :class:`~tagifai.data.DataError` naming it.
    """
    import numpy as np
    import pandas as pd

    from tagifai.data import OTHER, require_columns

    require_columns(df, PREDICT_COLUMNS, "projects to predict")
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise TypeError(f"expected a fitted TagifaiModel, got {type(model).__name__}")
    classes = [str(c) for c in model.classes_]
    from tagifai.model import TagifaiModel

    if type(model) is TagifaiModel and "text" not in df.columns:
        frame = df  # it reads title and description alone (tagifai.model.to_inputs): no copy (~1 ms a call)
    else:
        frame = df[list(PREDICT_COLUMNS)]
    proba = np.asarray(model.predict_proba(frame), dtype=float).reshape(len(df), len(classes))
    t = float(getattr(model, "threshold", 0.0) if threshold is None else threshold)
    other = getattr(model, "other", OTHER)
    columns: dict[str, Any] = {}  # one DataFrame built at once: a column at a time costs ~1 ms a call
    if "id" in df.columns:
        columns["id"] = df["id"].to_numpy()
    columns["predicted_tag"] = apply_threshold(proba, classes, t, other) if len(df) else np.array([], dtype=object)
    for i, cls in enumerate(classes):
        columns[prob_column(cls)] = proba[:, i]
    return pd.DataFrame(columns, index=df.index, copy=False)


# --------------------------------------------------------------------------- the serving copy of the champion
#
# Loading the champion through MLflow costs seconds of imports (MLflow, its SQLAlchemy store, alembic) before
# any prediction. So every time the champion alias moves, :class:`tagifai.registry.Registry` writes a serving
# copy of the champion beside the tracking store: the model's own pickle (the bytes MLflow stored, so the same
# model) and ``serving.json`` (name, version, run id, source, sha256 of the file), in
# ``<folder of mlflow.db>/serving/<model name>/`` (``$TAGIFAI_HOME/serving/<model name>/`` with the default
# store). :func:`load_serving_copy` loads it with the standard library and no MLflow, but only when it is
# still the champion: it reads the alias from the store itself (one read-only SQLite query, about a
# millisecond) and compares version, run id and source, so an alias moved by any means (Registry, the MLflow
# UI, a raw MlflowClient, another machine on the same file) makes the copy stale and unused. A stale or
# missing copy falls back to MLflow; a corrupted one (sha256 mismatch, unreadable) too, with a warning.
# Only local SQLite stores have a serving copy; with any other store prediction always goes through MLflow.
#
# The compiled form: beside the pickle, write_serving_copy writes the model's numbers without scikit-learn
# (tagifai/serving.py: ``model-v<version>-<hash of the pickle>.npz``, recorded under "compiled" in serving.json with
# its sha256; "compiled_reason" says why there is none, e.g. a model family it does not support). Before writing it,
# the compiled form is checked against the model itself (features and probabilities). ``load_serving_copy(...,
# compiled=True)`` returns it (a CompiledModel: predict_proba/predict/classes_/threshold like the model) when the copy
# is current and both files match their sha256; unpickling would import scikit-learn, SciPy and pandas (~2 s of a
# cold ``tagifai predict``). A missing or unsupported compiled form falls back to the pickle; a broken one (sha256
# mismatch, unreadable) too, with a warning.

SERVING_FOLDER = "serving"
SERVING_INFO = "serving.json"
SERVING_FORMAT = 1
#: The key of the compiled form in serving.json.
COMPILED_KEY = "compiled"
#: MLflow's sklearn serialization formats the serving copy can load with :mod:`pickle` (cloudpickle writes pickles).
PICKLE_FORMATS = ("cloudpickle", "pickle")


@dataclass
class ServingLookup:
    """The outcome of :func:`load_serving_copy`: ``model`` and ``info`` when the copy was used; otherwise
    ``reason`` says why not, and ``warning`` is set when something is wrong with the copy (not merely stale
    or missing)."""

    model: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    warning: str = ""
    #: With ``compiled=True``: "used" when ``model`` is the compiled form (:class:`tagifai.serving.CompiledModel`),
    #: else why the pickle was loaded instead (a ``warning`` is set too when the compiled file is broken).
    compiled_reason: str = ""

    @property
    def used(self) -> bool:
        return self.model is not None

    @property
    def compiled(self) -> bool:
        return self.compiled_reason == "used"

    @property
    def uri(self) -> str:
        return f"models:/{self.info.get('model_name')}/{self.info.get('version')}"


def sqlite_path(tracking_uri: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (relative to the current folder, as SQLAlchemy reads
    it; query string dropped), or None for any other store (and for an in-memory database)."""
    if not tracking_uri or not tracking_uri.startswith("sqlite:///"):
        return None
    text = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
    if text in ("", ":memory:"):
        return None
    return Path(text)


def serving_dir(tracking_uri: str | None, model_name: str) -> Path | None:
    """Where the serving copy of ``model_name`` lives: ``<folder of the database>/serving/<model name>``, or None
    (a store that is not a local SQLite file)."""
    db = sqlite_path(tracking_uri)
    if db is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name).strip(".") or "model"
    return db.parent / SERVING_FOLDER / safe


def registry_alias(tracking_uri: str | None, model_name: str, alias: str = CHAMPION) -> dict[str, Any] | None:
    """``{version, run_id, source}`` of the version behind ``alias`` read straight from the SQLite store
    (read-only, no MLflow), or None when there is none. Raises ``sqlite3.Error``/``LookupError`` when the store
    cannot answer (missing file, unknown schema, several workspaces with that model)."""
    import sqlite3

    db = sqlite_path(tracking_uri)
    if db is None:
        raise LookupError(f"not a local SQLite store: {tracking_uri}")
    if not db.is_file():
        raise LookupError(f"no database at {db}")
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT a.version, v.run_id, v.source FROM registered_model_aliases a "
            "JOIN model_versions v ON v.name = a.name AND v.version = a.version "
            "WHERE a.name = ? AND a.alias = ?",
            (model_name, alias),
        ).fetchall()
    finally:
        conn.close()
    if len(rows) > 1:
        raise LookupError(f"{len(rows)} versions behind {model_name}@{alias} (several workspaces)")
    if not rows:
        return None
    version, run_id, source = rows[0]
    return {"version": int(version), "run_id": run_id or "", "source": source or ""}


def _write_atomic(path: Path, data: bytes) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the copy is as readable as any file written here
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_serving_copy(
    pickled_model: str | Path,
    tracking_uri: str,
    model_name: str,
    version: int | str,
    run_id: str = "",
    source: str = "",
    alias: str = CHAMPION,
    serialization_format: str = "cloudpickle",
) -> Path:
    """Write the serving copy of ``model_name`` ``version`` (its pickle file as MLflow stored it) and return
    the path of its ``serving.json``. The pickle gets a name of its own (version and hash) and
    ``serving.json`` is replaced last, atomically: a reader sees the old copy or the new one, never half.
    Other pickles of the folder are removed afterwards."""
    import hashlib
    import json
    import os
    from datetime import UTC, datetime
    from itertools import chain

    if serialization_format not in PICKLE_FORMATS:
        raise ValueError(f"serving copy: cannot load serialization format {serialization_format!r} without MLflow")
    folder = serving_dir(tracking_uri, model_name)
    if folder is None:
        raise ValueError(f"serving copy: {tracking_uri} is not a local SQLite store")
    folder.mkdir(parents=True, exist_ok=True)
    data = Path(pickled_model).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    name = f"model-v{int(version)}-{sha[:12]}.pkl"
    _write_atomic(folder / name, data)
    compiled, compiled_reason = _compiled_form(data)
    compiled_name = f"model-v{int(version)}-{sha[:12]}.npz"
    if compiled is not None:
        _write_atomic(folder / compiled_name, compiled)
    info = {
        "format": SERVING_FORMAT,
        "model_name": model_name,
        "alias": alias,
        "version": int(version),
        "run_id": run_id or "",
        "source": source or "",
        "file": name,
        "sha256": sha,
        "bytes": len(data),
        "serialization_format": serialization_format,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if compiled is not None:
        from tagifai.serving import COMPILED_FORMAT

        info[COMPILED_KEY] = {
            "file": compiled_name,
            "sha256": hashlib.sha256(compiled).hexdigest(),
            "bytes": len(compiled),
            "format": COMPILED_FORMAT,
        }
    else:
        info[COMPILED_KEY] = None
        info["compiled_reason"] = compiled_reason
    path = folder / SERVING_INFO
    _write_atomic(path, (json.dumps(info, indent=2) + "\n").encode())
    keep = {name, compiled_name if compiled is not None else name}
    for old in chain(folder.glob("model-v*.pkl"), folder.glob("model-v*.npz")):
        if old.name not in keep:
            with contextlib.suppress(OSError):
                os.unlink(old)
    return path


def _compiled_form(pickled: bytes) -> tuple[bytes | None, str]:
    """``(the compiled file, "")`` of a pickled model, or ``(None, why not)``: a model :mod:`tagifai.serving` does
    not support, or one whose compiled form does not give the model's own features and probabilities."""
    import pickle

    try:
        from tagifai.serving import CompiledModel, Unsupported, check_compiled, compiled_bytes

        model = pickle.loads(pickled)
        data = compiled_bytes(model)
        check_compiled(CompiledModel.from_bytes(data), model)
    except Unsupported as exc:
        return None, f"unsupported: {exc}"
    except Exception as exc:  # the pickle alone still serves
        return None, f"cannot compile: {type(exc).__name__}: {exc}"
    return data, ""


def _load_compiled(folder: Path, info: dict[str, Any]) -> tuple[Any, str, str]:
    """``(CompiledModel or None, compiled_reason, warning)`` of the compiled form recorded in ``info``."""
    import hashlib

    from tagifai.serving import COMPILED_FORMAT, CompiledModel

    entry = info.get(COMPILED_KEY)
    if not isinstance(entry, dict):
        return None, f"no compiled form ({info.get('compiled_reason') or 'written before it existed'})", ""
    if entry.get("format") != COMPILED_FORMAT:
        return None, f"compiled format {entry.get('format')!r}, this version reads {COMPILED_FORMAT}", ""
    path = folder / str(entry.get("file", ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, "compiled file missing", f"serving copy {path}: {exc}"
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry.get("sha256"):
        return (
            None,
            "compiled form corrupted",
            f"serving copy {path}: sha256 {sha[:12]}... does not match serving.json "
            f"({str(entry.get('sha256'))[:12]}...)",
        )
    try:
        model = CompiledModel.from_bytes(data)
    except Exception as exc:
        return None, "compiled form unreadable", f"serving copy {path}: {type(exc).__name__}: {exc}"
    return model, "used", ""


def load_serving_copy(
    tracking_uri: str | None, model_name: str, alias: str = CHAMPION, compiled: bool = False
) -> ServingLookup:
    """The model behind ``alias`` from its serving copy, without MLflow, when the copy is that version.

    Never raises: the :class:`ServingLookup` says why the copy was not used (no local store, no copy, stale,
    no alias) and carries a ``warning`` when the copy is broken (sha256 mismatch, unreadable); the caller then
    loads through MLflow. ``compiled``: return the compiled form (:class:`tagifai.serving.CompiledModel`, no
    scikit-learn) when there is a sound one, else the pickle; ``compiled_reason`` says which and why (with a
    ``warning`` when the compiled file is broken: the pickle is used then).
    """
    import hashlib
    import json
    import pickle

    folder = serving_dir(tracking_uri, model_name)
    if folder is None:
        return ServingLookup(reason="the tracking store is not a local SQLite file")
    info_path = folder / SERVING_INFO
    try:
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        return ServingLookup(reason="no serving copy")
    except (OSError, ValueError) as exc:
        return ServingLookup(reason="unreadable serving.json", warning=f"serving copy {info_path}: {exc}")
    try:
        current = registry_alias(tracking_uri, model_name, alias)
    except Exception as exc:  # an unknown schema or a locked file: MLflow knows better
        return ServingLookup(reason=f"cannot read the alias from the store ({type(exc).__name__}: {exc})")
    if current is None:
        return ServingLookup(reason=f"no {alias} alias")
    expected = {k: info.get(k) for k in ("version", "run_id", "source")}
    if (info.get("format"), info.get("model_name"), info.get("alias")) != (SERVING_FORMAT, model_name, alias) or (
        expected != current
    ):
        return ServingLookup(
            reason=f"stale: the copy is version {info.get('version')}, {model_name}@{alias} is {current['version']}"
        )
    path = folder / str(info.get("file", ""))
    try:
        data = path.read_bytes()
    except OSError as exc:  # replaced by a concurrent export between the two reads: MLflow answers this once
        return ServingLookup(reason="serving copy file missing", warning=f"serving copy {path}: {exc}")
    sha = hashlib.sha256(data).hexdigest()
    if sha != info.get("sha256"):
        return ServingLookup(
            reason="corrupted",
            warning=f"serving copy {path}: sha256 {sha[:12]}... does not match serving.json "
            f"({str(info.get('sha256'))[:12]}...)",
        )
    compiled_reason, compiled_warning = "", ""
    if compiled:
        fast, compiled_reason, compiled_warning = _load_compiled(folder, info)
        if fast is not None:
            return ServingLookup(model=fast, info=info, reason="current", compiled_reason=compiled_reason)
    try:
        model = pickle.loads(data)
    except Exception as exc:  # e.g. written by another version of a library
        return ServingLookup(
            reason="unreadable",
            warning=f"serving copy {path}: {type(exc).__name__}: {exc}",
            compiled_reason=compiled_reason,
        )
    return ServingLookup(
        model=model, info=info, reason="current", warning=compiled_warning, compiled_reason=compiled_reason
    )
