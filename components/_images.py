"""Which image each step runs in: ``<registry>/tagifai-<step>:<tag>`` from settings.

Read when the component modules are imported, so compiling for another registry or tag is a matter
of setting TAGIFAI_REGISTRY / TAGIFAI_IMAGE_TAG (the CLI's --registry/--tag) before the import.
"""

from tagifai.config import get_settings


def image(step: str) -> str:
    return get_settings().image(step)
