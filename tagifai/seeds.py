"""What a new state folder starts from instead of building it again, kept in a per-user cache folder.

Every run with a fresh state folder (a new ``--home``, a benchmark, a test, a pod of a cluster run) used to
build the same things before its first real work: dbt's parse of the project (about 4 s), MLflow's tables in
a new SQLite tracking database (about 2 s of schema migrations) and Optuna's (about 1 s). They depend on the
installed versions and the project, never on the run, so the first run on a machine keeps them here and the
next state folder copies them:

- :func:`tagifai.transform.parse_seed`: dbt's parse; dbt's own checks (version, profile, variables, each
  file's checksum) decide what of it a run may reuse;
- :func:`sqlite_from_template`: an empty database of a library's schema, keyed by the library's version; the
  library still checks the schema version when it opens it.

``$XDG_CACHE_HOME/tagifai/`` (default ``~/.cache/tagifai``). A cache that cannot be written (a read-only home in
a pod) only means the run builds them itself, as it did before. Nothing here ever replaces a file that exists.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

SQLITE = "sqlite:///"


def cache_folder() -> Path:
    """``$XDG_CACHE_HOME/tagifai`` (default ``~/.cache/tagifai``); not created here."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tagifai"


def copy_whole(source: Path, dest: Path, replace: bool = True) -> bool:
    """Copy ``source`` to ``dest`` whole or not at all (a temporary file, then renamed or linked into place);
    with ``replace=False`` an existing ``dest`` is kept (an atomic no-clobber link). True when copied; False
    when there is no source, ``dest`` exists (``replace=False``) or the folder cannot be written."""
    import secrets
    import shutil

    if not source.is_file():
        return False
    # a name of this process's own (as tagifai.embeddings' shards): the file is created as any new file is (the
    # umask applies), so the copy is readable where a file written here would be
    tmp = dest.parent / f".{dest.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp)
        if replace:
            os.replace(tmp, dest)
        else:
            os.link(tmp, dest)  # fails when dest exists: another process made it meanwhile
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):  # gone (renamed or linked), or its folder could not be made
            tmp.unlink(missing_ok=True)


def sqlite_from_template(url: str, kind: str, version: str, create: Callable[[str], object]) -> bool:
    """Before a library opens the SQLite database ``url``: its file's folder, made if missing (an OSError when it
    cannot be), and, when the file does not exist yet, an empty database of the library's schema there: a copy of
    ``<cache>/sqlite/<kind>-<version>.db``, made first with ``create(url_of_template)`` when missing. ``create``
    must build only what every new database of the library holds (tables, schema version), nothing of a run
    (paths, names). Does nothing for another URL or an in-memory database, and copies nothing over a file that
    exists or for a URL with query options. True when the database was placed; False otherwise (the library then
    creates it itself).
    """
    if not url.startswith(SQLITE):
        return False
    path = url[len(SQLITE) :]
    if path in ("", ":memory:"):
        return False
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if "?" in path or os.path.exists(path):
        return False
    template = cache_folder() / "sqlite" / f"{kind}-{version}.db"
    if not template.is_file() and not _make_template(template, create):
        return False
    return copy_whole(template, Path(path), replace=False)


def _make_template(template: Path, create: Callable[[str], object]) -> bool:
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=template.parent) as tmp:
            made = Path(tmp) / template.name
            create(f"{SQLITE}{made}")
            os.replace(made, template)
        return True
    except Exception:  # noqa: BLE001 - the cache only saves time: the library then creates the database itself
        return False
