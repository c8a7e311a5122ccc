# tagifai-train: the train step, training, MLflow run and model registration (mlflow, scikit-learn).
# FROM the shared base (images/base.Dockerfile), then the step's locked extras, then the project.
# Layers go from what changes least to what changes most, so a rebuild after a source change
# reuses everything up to the project's own small layers.
ARG TAGIFAI_BASE=tagifai-base:latest
FROM ${TAGIFAI_BASE}

# 1. dependencies of this step only: pyproject extras [train, kfp], hashed (images/lock.sh)
# 1a. shared by optimize, train and evaluate (mlflow, scikit-learn): the same file and instruction
#     in the three Dockerfiles, so the three images share this layer (one install, one copy on disk)
COPY images/requirements/ml.txt /opt/tagifai/requirements/ml.txt
RUN tagifai-pip-install /opt/tagifai/requirements/ml.txt
# 1b. what this step adds to it
COPY images/requirements/train.txt /opt/tagifai/requirements/train.txt
RUN tagifai-pip-install /opt/tagifai/requirements/train.txt

# 2. the project (no dependencies: all are above); dbt and GX projects at TAGIFAI_PROJECT_DIR=/app
COPY pyproject.toml /tmp/src/pyproject.toml
COPY tagifai /tmp/src/tagifai
COPY components /tmp/src/components
COPY pipelines /tmp/src/pipelines
COPY tagifai_cli /tmp/src/tagifai_cli
RUN pip install --no-deps --no-build-isolation --no-index /tmp/src && rm -rf /tmp/src
COPY dbt_transforms /app/dbt_transforms
COPY great_expectations /app/great_expectations

LABEL org.tagifai.step="train"
USER 10001:10001
WORKDIR /home/tagifai
