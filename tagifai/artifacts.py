"""What a step writes for its KFP metrics artifacts (duck-typed: anything with ``path`` and ``metadata``).

KFP keeps a ``Metrics`` or ``ClassificationMetrics`` artifact's values in its metadata and writes no file
for it. kfp.local's cache treats an output whose file is missing as a miss, so a step with a metrics output
would never be reused. :func:`keep_values` writes the values as JSON at the artifact's path: the cache then
finds every output, and the file is a plain copy of the values for a person or a tool (a cluster uploads it
with the artifact).
"""

from __future__ import annotations

import json
from pathlib import Path


def keep_values(*artifacts) -> None:
    """Write each artifact's metadata as JSON at its path (the parent folder is created)."""
    for artifact in artifacts:
        path = Path(artifact.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(artifact.metadata), indent=2, sort_keys=True, default=str) + "\n")
