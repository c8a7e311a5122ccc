"""Real KFP artifact objects pointed at a temp dir, as the executor would hand them to a component."""

from pathlib import Path


def make_artifact(cls, tmp_path: Path, name: str, metadata=None):
    path = tmp_path / "artifacts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return cls(name=name, uri=str(path), metadata=dict(metadata or {}))
