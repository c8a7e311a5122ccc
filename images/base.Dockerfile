# tagifai-base: what every step image shares. Python 3.11, a virtualenv in /opt/venv holding the
# project's core dependencies and kfp (images/requirements/base.txt, hashed), and the non-root user
# the steps run as. Every step image (images/step.Dockerfile, one build per step) starts FROM this image.
#
# BASE_IMAGE: the official slim image by default. On a host that reaches no container registry,
# build a base from Debian packages (images/debootstrap-base.sh) and pass BASE_IMAGE=<that image>.
# Nothing host-specific (certificates, credentials) is added here.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    TAGIFAI_PROJECT_DIR=/app

RUN groupadd --system --gid 10001 tagifai \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/tagifai --create-home \
        --shell /usr/sbin/nologin tagifai \
 && python3 -m venv /opt/venv

# setuptools first (hashed), so that the sdists in the locks (kfp-server-api) and the project build
# with it, without build isolation fetching unpinned build requirements.
COPY images/pip-install.sh /usr/local/bin/tagifai-pip-install
COPY images/requirements/build.txt /opt/tagifai/requirements/build.txt
RUN pip install --require-hashes --no-deps -r /opt/tagifai/requirements/build.txt
COPY images/requirements/base.txt /opt/tagifai/requirements/base.txt
RUN tagifai-pip-install /opt/tagifai/requirements/base.txt
