# Every target here is what CI and the README use. The virtualenv lives in .venv (override VENV=...).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
TAGIFAI := $(VENV)/bin/tagifai
PYTEST_ARGS ?=

.PHONY: help install run test lint format test-fast test-delivery test-docker images push compile kind-up kind-down deploy clean bench benchmark-model benchmark-sense

help:
	@echo "make run      run the continual pipeline locally (kfp.local, embedded DuckDB/MLflow/Optuna)"
	@echo "make test     unit, component, compile and end-to-end tests"
	@echo "make lint     ruff check and ruff format --check (configured in pyproject.toml); make format fixes"
	@echo "make benchmark-model   the model table of issue 4 (benchmarks/results/model.md); BENCH_ARGS=--strict gates on the goal"
	@echo "make benchmark-sense   a no-op tagifai sense, timed (benchmarks/results/sense.md; goal: 5 s); SENSE_BENCH_ARGS=--strict gates on it"
	@echo "make bench    every benchmark (the model and the sense benchmarks)"
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

compile: install
	$(TAGIFAI) compile --target all

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

bench: benchmark-model benchmark-sense

clean:
	rm -rf .tagifai local_outputs .pytest_cache
