# tagifai-mlflow-server: the MLflow tracking server of the cluster (manifests/tagifai/mlflow/mlflow.yaml).
# Not a pipeline step (no entry in the step table, not built by `tagifai images build`): the server the
# steps talk to. MLflow 3.17.2 (requirements.lock's version) and its PostgreSQL driver psycopg2-binary,
# installed at build time from a hashed lock (images/requirements/mlflow-server.txt), so the pod installs
# nothing at start and needs no internet access in the cluster.
#
#   tagifai cluster mlflow-image [--registry localhost:5000] [--push]
#   docker build -f images/mlflow.Dockerfile -t localhost:5000/tagifai-mlflow-server:3.17.2 images/
#
# The build context is images/ (only requirements/mlflow-server.txt is copied from it).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# The same non-root user as the step images (uid/gid 10001); the deployment sets fsGroup 10001 so the
# artifact volume is writable by it.
RUN groupadd --system --gid 10001 mlflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/mlflow --create-home \
        --shell /usr/sbin/nologin mlflow \
 && python3 -m venv /opt/venv

COPY requirements/mlflow-server.txt /opt/mlflow/requirements.txt
RUN pip install --require-hashes --only-binary :all: --no-deps -r /opt/mlflow/requirements.txt \
 && python -c "import mlflow, psycopg2; print('mlflow', mlflow.__version__, 'psycopg2', psycopg2.__version__)"

LABEL org.opencontainers.image.title="tagifai-mlflow-server" \
      org.opencontainers.image.version="3.17.2"
USER 10001:10001
WORKDIR /home/mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--host=0.0.0.0", "--port=5000"]
