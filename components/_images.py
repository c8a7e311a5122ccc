"""Which image each step runs in: ``<registry>/tagifai-<step>:<tag>`` from settings.

Read when the component modules are imported, so compiling for another registry or tag is a matter
of setting TAGIFAI_REGISTRY / TAGIFAI_IMAGE_TAG (the CLI's --registry/--tag) before the import.
``TAGIFAI_IMAGE_<STEP>`` (e.g. TAGIFAI_IMAGE_TRAIN) names one step's image outright: ``tagifai compile
--by-digest`` sets them to the pushed ``<registry>/tagifai-<step>@sha256:...`` references.
"""

import os

from tagifai.config import get_settings


def image(step: str) -> str:
    return os.environ.get(f"TAGIFAI_IMAGE_{step.upper()}") or get_settings().image(step)
