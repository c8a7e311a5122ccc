"""The expectation suites: JSON files of the file-based GX project under ``great_expectations/``.

The suites (``projects``, ``tags``, ``labeled_projects``) live in
``great_expectations/gx/expectations/<suite>.json``; that folder is what ``gx.get_context(mode="file",
project_root_dir="great_expectations")`` loads. Validation reads them from there without writing into
the project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SuiteNotFoundError(LookupError):
    """No expectation suite of that name in the GX project."""


def _expectations_dir(gx_project_dir: Path | None) -> Path:
    """The folder of the suites' JSON files (default: the settings' ``gx_project_dir``)."""
    if gx_project_dir is None:
        from tagifai.config import get_settings

        gx_project_dir = get_settings().gx_project_dir
    root = Path(gx_project_dir)
    # Accept the project root (holding gx/) or the gx/ folder itself.
    if (root / "great_expectations.yml").exists():
        return root / "expectations"
    return root / "gx" / "expectations"


def available_suites(gx_project_dir: Path | None = None) -> list[str]:
    """Names of the expectation suites in the GX project (its ``gx/expectations/*.json``)."""
    folder = _expectations_dir(gx_project_dir)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def suite_path(suite_name: str, gx_project_dir: Path | None = None) -> Path:
    """The JSON file of a suite; :class:`SuiteNotFoundError` (listing the suites) if there is none."""
    folder = _expectations_dir(gx_project_dir)
    path = folder / f"{suite_name}.json"
    if not path.is_file():
        names = available_suites(gx_project_dir)
        raise SuiteNotFoundError(
            f"no expectation suite {suite_name!r} in {folder}; available suites: "
            f"{', '.join(names) if names else '(none)'}"
        )
    return path


def load_suite(context: Any, suite_name: str, gx_project_dir: Path | None = None):
    """Read a suite from its JSON file, through GX's own (de)serialisation, without storing it."""
    path = suite_path(suite_name, gx_project_dir)
    store = context.expectations_store
    suite = store.deserialize_suite_dict(store.deserialize(path.read_text(encoding="utf-8")))
    if suite.name != suite_name:
        raise SuiteNotFoundError(f"{path} holds suite {suite.name!r}, expected {suite_name!r}")
    return suite
