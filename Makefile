# Every target here is what CI and the README use. The virtualenv lives in .venv (override VENV=...).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
TAGIFAI := $(VENV)/bin/tagifai
PYTEST_ARGS ?=

.PHONY: help install run test lint format test-fast test-delivery test-docker images push compile kind-up kind-down deploy clean bench benchmark-model benchmark-sense benchmark-dataops benchmark-predict benchmark-overhead benchmark-rerun benchmark-embed-cache benchmark-encoder benchmark-mlops benchmark-continual benchmark-startup benchmark-images

help:
	@echo "make run      run the continual pipeline locally (kfp.local, embedded DuckDB/MLflow/Optuna)"
	@echo "make test     unit, component, compile and end-to-end tests"
	@echo "make lint     ruff check and ruff format --check (configured in pyproject.toml); make format fixes"
	@echo "make benchmark-model   the model table of issue 4 (benchmarks/results/model.md); BENCH_ARGS=--strict gates on the goal"
	@echo "make benchmark-sense   a no-op tagifai sense, timed (benchmarks/results/sense.md; goal: 5 s); SENSE_BENCH_ARGS=--strict gates on it"
	@echo "make benchmark-dataops   tagifai run dataops on 100k and 1M synthetic rows (benchmarks/results/dataops.md)"
	@echo "make benchmark-predict   batch rows/s, warm latency, CLI cold start, the encoder's limit (predict.md)"
	@echo "make benchmark-overhead  plain library calls vs the kfp.local run (benchmarks/results/overhead.md)"
	@echo "make benchmark-rerun     continual twice on one state folder: the cached re-run (benchmarks/results/rerun.md)"
	@echo "make benchmark-embed-cache   the embedding store: cold, warm, 1% new texts (embed_cache.md)"
	@echo "make bench    every benchmark (about 30 minutes here; docs/benchmarks.md shows the results)"
	@echo "make ui       the MLflow UI (:5000) and optuna-dashboard (:8080) on the local stores; Ctrl-C stops both (UI_ARGS=...)"
	@echo "make compile  compile the pipelines to pipelines/compiled/{kubeflow,vertex}/*.yaml"
	@echo "make images   build every step's image (BASE_IMAGE=... for a base without a registry; images/README.md)"
	@echo "make kind-up / deploy / kind-down   a local Kubeflow Pipelines on kind (docs/deploy.md)"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || { command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

run: install
	$(TAGIFAI) run continual

# tagifai ui: the MLflow UI and optuna-dashboard on $TAGIFAI_HOME's stores (after `make run`); UI_ARGS="--mlflow-port 5001"
.PHONY: ui
UI_ARGS ?=
ui: install
	$(TAGIFAI) ui $(UI_ARGS)

test: install
	$(VENV)/bin/pytest -q -m "not docker" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-fast: install
	$(VENV)/bin/pytest -q -m "not e2e and not docker" $(PYTEST_ARGS)

# the committed YAML names a fixed tag, not the content tags (which change with the sources): docs/deploy.md
COMPILED_TAG ?= 0.1.0
compile: install
	$(TAGIFAI) compile --target all --tag $(COMPILED_TAG)

test-delivery: install
	$(VENV)/bin/pytest -q tests/test_compile.py tests/delivery

kind-up: install
	$(TAGIFAI) cluster kind-up

kind-down: install
	$(TAGIFAI) cluster kind-down

deploy: install
	$(TAGIFAI) cluster deploy --overlay $(or $(OVERLAY),kind)

BASE_IMAGE ?=
images: install
	$(TAGIFAI) images build $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))

push: install
	$(TAGIFAI) images push

test-docker: install
	TAGIFAI_REQUIRE_DOCKER=1 $(VENV)/bin/pytest -q -m docker tests/docker $(PYTEST_ARGS)

# Weighted f1 over split seeds 0-4 for the default and the comparison models, per class and per slice,
# training seconds; writes benchmarks/results/model.{md,json}. BENCH_ARGS="--strict" exits 1 when the
# default misses the goal (f1 0.93, 30 s a run); BENCH_ARGS="--configs default" runs the default only.
BENCH_ARGS ?=
benchmark-model: install
	$(PY) benchmarks/model.py $(BENCH_ARGS)

# A no-op `tagifai sense` (nothing new since the watermark): 5 runs in a new process, beside the interpreter's
# start-up, the sensor's imports and a warm in-process sense; writes benchmarks/results/sense.{md,json}.
# SENSE_BENCH_ARGS="--strict" exits 1 when the slowest run is over 5 s; "--runs 20" for more runs.
SENSE_BENCH_ARGS ?=
benchmark-sense: install
	$(PY) benchmarks/sense.py $(SENSE_BENCH_ARGS)

# tagifai run dataops on synthetic data (benchmarks/synth.py) at 100k and 1M rows, a fresh state folder each: wall
# seconds, per-step seconds, peak memory of the process tree, growth ratios; writes benchmarks/results/dataops.{md,json}.
# DATAOPS_BENCH_ARGS="--sizes 100000,1000000,10000000" adds 10M rows (many minutes).
DATAOPS_BENCH_ARGS ?=
benchmark-dataops: install
	$(PY) benchmarks/dataops.py $(DATAOPS_BENCH_ARGS)

# Batch prediction rows/s (default model and TF-IDF only), warm single-prediction p50/p99, `tagifai predict` from a
# cold start, the MiniLM encoder against its physical limit; writes benchmarks/results/predict.{md,json}.
PREDICT_BENCH_ARGS ?=
benchmark-predict: install
	$(PY) benchmarks/predict.py $(PREDICT_BENCH_ARGS)

# Orchestration overhead: dataops (2 rounds) and continual with 1 trial (1 round) as plain in-process library
# calls versus the kfp.local run, as a ratio; writes benchmarks/results/overhead.{md,json}.
OVERHEAD_BENCH_ARGS ?=
benchmark-overhead: install
	$(PY) benchmarks/overhead.py $(OVERHEAD_BENCH_ARGS)

# continual twice on one fresh state folder (the second reuses the cached steps), then with --no-cache
# (benchmarks/results/rerun.md; goal: the second at most 25 % of the first).
RERUN_BENCH_ARGS ?=
benchmark-rerun: install
	$(PY) benchmarks/rerun.py $(RERUN_BENCH_ARGS)

# The embedding store: 5000 texts cold, warm and with 1% new, each in a new process (embed_cache.md).
EMBED_BENCH_ARGS ?=
benchmark-embed-cache: install
	$(PY) benchmarks/embed_cache.py $(EMBED_BENCH_ARGS)

# MLOps (extract to evaluate, 20 trials) at 10k and 100k synthetic rows (mlops.md; goal: 100k in 10 min).
MLOPS_BENCH_ARGS ?=
benchmark-mlops: install
	$(PY) benchmarks/mlops.py $(MLOPS_BENCH_ARGS)

# The encoder's float and integer graphs in turn: texts/s and agreement (encoder.md).
ENCODER_BENCH_ARGS ?=
benchmark-encoder: install
	$(PY) benchmarks/encoder.py $(ENCODER_BENCH_ARGS)

# continual end to end on the shared data, a fresh state folder a run: wall, per step, peak memory (continual.md;
# goal: 35 s). CONTINUAL_BENCH_ARGS="--runs 3" for more runs.
CONTINUAL_BENCH_ARGS ?=
benchmark-continual: install
	$(PY) benchmarks/continual.py $(CONTINUAL_BENCH_ARGS)

# Each step's cold start: KFP's executor and the component body's imports, in a new process per step (startup.md).
STARTUP_BENCH_ARGS ?=
benchmark-startup: install
	$(PY) benchmarks/startup.py $(STARTUP_BENCH_ARGS)

# Image sizes and build times: `tagifai images build` as is and unchanged (images.md; goal: ML images <= 600 MB).
# IMAGES_BENCH_ARGS="--cold" adds a --no-cache build (minutes). Needs a Docker engine (bash .ci/docker.sh).
IMAGES_BENCH_ARGS ?=
benchmark-images: install
	$(PY) benchmarks/images.py $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE)) $(IMAGES_BENCH_ARGS)

# Every benchmark, one after another (never in parallel: each measures the whole machine).
bench: benchmark-model benchmark-sense benchmark-dataops benchmark-predict benchmark-overhead benchmark-rerun benchmark-embed-cache benchmark-encoder benchmark-mlops benchmark-continual benchmark-startup benchmark-images

clean:
	rm -rf .tagifai local_outputs .pytest_cache
