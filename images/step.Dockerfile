# tagifai-<step>: the image of one step of the step table (tagifai/steps.py), built once per step:
#   --build-arg STEP=<step> --build-arg SHARED_LOCK=<the step's shared lock, or none>
#   --build-arg TAGIFAI_BASE=<registry>/tagifai-base:<tag>
# (`tagifai images build` passes all three; tagifai_cli/images.py:plan). FROM the shared base
# (images/base.Dockerfile), then the shared lock layer when the step has one, then the step's locked
# extras, then the project. Layers go from what changes least to what changes most, so a rebuild after
# a source change reuses everything up to the project's own small layers.
ARG TAGIFAI_BASE=tagifai-base:latest
ARG SHARED_LOCK=none

# 1a. shared lock layers, one stage each, chosen by SHARED_LOCK below. deps-none is the base alone.
#     deps-ml: mlflow, scikit-learn and the embedding of optimize, train and evaluate
#     (requirements/ml.txt, the pins common to their locks): the same file and instruction on the
#     same parent for the three images, so they share this layer (one install, one copy on disk).
#     The classic builder (docker-py) builds every stage, so deps-ml is built (or taken from the
#     cache) for every step, but only the images FROM it below contain it.
FROM ${TAGIFAI_BASE} AS deps-none
FROM deps-none AS deps-ml
COPY images/requirements/ml.txt /opt/tagifai/requirements/ml.txt
RUN tagifai-pip-install /opt/tagifai/requirements/ml.txt

FROM deps-${SHARED_LOCK} AS step
# 1b. what this step adds: pyproject extras [<step>, kfp], hashed (images/lock.sh)
ARG STEP
COPY images/requirements/${STEP}.txt /opt/tagifai/requirements/${STEP}.txt
RUN tagifai-pip-install /opt/tagifai/requirements/${STEP}.txt

# 2. the project (no dependencies: all are above); dbt and GX projects at TAGIFAI_PROJECT_DIR=/app
COPY pyproject.toml /tmp/src/pyproject.toml
COPY tagifai /tmp/src/tagifai
COPY components /tmp/src/components
COPY pipelines /tmp/src/pipelines
COPY tagifai_cli /tmp/src/tagifai_cli
RUN pip install --no-deps --no-build-isolation --no-index /tmp/src && rm -rf /tmp/src
COPY dbt_transforms /app/dbt_transforms
COPY great_expectations /app/great_expectations

LABEL org.tagifai.step="${STEP}"
USER 10001:10001
WORKDIR /home/tagifai
# 3. what every task of the step would otherwise build for itself, built once here: the step table's `prepare`
#    (tagifai/steps.py; transform: dbt's parse of the project, which a pod's new state folder starts from,
#    tagifai.transform.parse_seed). A fixed cache folder, whatever HOME a cluster gives the pod; readable by
#    any user, written only by this one.
ENV XDG_CACHE_HOME=/home/tagifai/.cache
RUN python -m tagifai.steps prepare "${STEP}"
