"""Fixtures of the docker tests: an engine that answers, and the step images built once per session.

No engine: the tests are skipped, unless TAGIFAI_REQUIRE_DOCKER=1 (`make test-docker`, which CI runs
after `.ci/docker.sh` has started one), where that is a failure. The images are built from BASE_IMAGE when it is set,
else from the Debian-packages base (images/debootstrap-base.sh, built here when missing): this machine
reaches no container registry, so python:3.11-slim cannot be pulled. With `make images` run before,
the build is all cache hits (about a second).
"""

from __future__ import annotations

import os
import time

import pytest


def _require_docker() -> bool:
    return os.environ.get("TAGIFAI_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="session")
def docker_client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # no socket, engine down
        message = f"no Docker engine answers ({type(exc).__name__}: {exc}); start one with `bash .ci/docker.sh`"
        if _require_docker():
            pytest.fail(message)
        pytest.skip(message)
    return client


@pytest.fixture(scope="session")
def base_image() -> str:
    from tagifai_cli import images

    return os.environ.get("BASE_IMAGE") or images.DEBOOTSTRAP_BASE_IMAGE


@pytest.fixture(scope="session")
def built_images(docker_client, base_image):
    """The build results of the shared base and every step image (see tagifai_cli.images.build)."""
    from tagifai_cli import images

    start = time.perf_counter()
    results = images.build(base_image=base_image)
    print(f"\nimages built from {base_image} in {time.perf_counter() - start:.1f} s")
    return {r.name: r for r in results}
