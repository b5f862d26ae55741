# The two commands a newcomer needs: `make dev` (the whole local stack) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
STACK   := $(PY) infra/local/stack.py
# One target triple for tests, clippy and the cargo-lambda build, so they share one build.
TARGET  := x86_64-unknown-linux-gnu
CARGO_FLAGS := --profile local --target $(TARGET) --workspace
USER    ?= alice
ROLE    ?= editor

.PHONY: help dev up deploy down token test unit e2e lint fmt venv bench bench-quick bench-slices

help:
	@echo "make dev                         start the whole local stack (Ctrl-C stops it)"
	@echo "make test                        unit tests, then end-to-end tests against the local stack"
	@echo "make deploy                      rebuild and redeploy the functions into the running stack"
	@echo "make token USER=alice ROLE=editor print a token from the local issuer"
	@echo "make lint                        rustfmt, clippy and cfn-lint"
	@echo "make bench                       the figures beside their targets (needs make up)"

$(VENV)/.installed: infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/requirements.txt
	touch $@

venv: $(VENV)/.installed

dev: venv
	$(STACK) up --foreground

up: venv
	$(STACK) up

deploy: venv
	$(STACK) deploy

down: venv
	$(STACK) down

token: venv
	@$(STACK) token --user $(USER) --role $(ROLE)

unit:
	cargo test $(CARGO_FLAGS)

e2e: venv
	$(STACK) run -- $(PY) -m pytest -p no:cacheprovider tests/e2e

test: unit e2e

fmt:
	cargo fmt --all

lint: venv
	cargo fmt --all -- --check
	cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint infra/template.yaml

# Figures (not part of `make test`): needs `make up` or `make dev` running. `make bench` prints
# one table of figures beside their targets and writes it, with the raw figures, to results/.
bench: venv
	$(PY) tests/bench/run.py

# The same with a tenth of the requests and events, for a quick look while working (about 6 minutes).
bench-quick: venv
	BENCH_REQUESTS=200 BENCH_COLD_STARTS=10 BENCH_EVENTS=1000 BENCH_FRAME_WRITES=50 $(PY) tests/bench/run.py

# The earlier per-slice figures (episodes, pipeline, realtime, files, jobs), through API Gateway.
bench-slices: venv
	$(PY) tests/bench/episodes_api.py
	$(PY) tests/bench/pipeline.py
	$(PY) tests/bench/realtime.py
	$(PY) tests/bench/files_api.py
	$(PY) tests/bench/jobs.py
