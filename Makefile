# The two commands a newcomer needs: `make dev` (the whole local stack) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
STACK   := $(PY) infra/local/stack.py
# One target triple for tests, clippy and the cargo-lambda build, so they share one build.
TARGET  := x86_64-unknown-linux-gnu
BUILD_FLAGS := --profile local --target $(TARGET)
CARGO_FLAGS := $(BUILD_FLAGS) --workspace
# checkov's pinned dependencies conflict with the local stack's (boto3), so it has its own venv.
CHECKOV_VENV    := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
CHECKOV := $(CHECKOV_VENV)/bin/checkov --quiet --compact --framework cloudformation -f infra/template.yaml
USER    ?= alice
ROLE    ?= editor

.PHONY: help dev up deploy down token test template unit e2e contracts contract lint checkov fmt venv bench bench-quick bench-slices redrive chaos fuzz

help:
	@echo "make dev                         start the whole local stack (Ctrl-C stops it)"
	@echo "make test                        template checks, unit tests, then end-to-end tests against the local stack"
	@echo "make template                    checks over the SAM-transformed template (IAM, alarms, logs; no build)"
	@echo "make deploy                      rebuild and redeploy the functions into the running stack"
	@echo "make token USER=alice ROLE=editor print a token from the local issuer"
	@echo "make lint                        rustfmt, clippy, cfn-lint and checkov"
	@echo "make contract                    write the OpenAPI and AsyncAPI documents, the typed TypeScript client and the reference to .local/contract/"
	@echo "make bench                       the figures beside their targets (needs make up)"
	@echo "make chaos                       the fault, crash, redrive and load scenarios, 5 times larger, and their table (needs make up)"
	@echo "make fuzz                        each cargo-fuzz target for FUZZ_SECONDS (60) on the nightly toolchain"
	@echo "make redrive QUEUE=activity      move a dead-letter queue's messages back to their queue (local stack)"

$(VENV)/.installed: infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile --disable-pip-version-check -r infra/local/requirements.txt
	touch $@

venv: $(VENV)/.installed

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

# The functions' build (CPU-bound) runs while the venv installs (network and disk); stack.py's
# cargo-lambda build then finds them built and only zips them. A failed build or install stops.
PREBUILD = cargo build $(CARGO_FLAGS) --bins & build=$$!; \
	trap 'kill $$build 2>/dev/null' INT TERM; \
	$(MAKE) --no-print-directory venv; venv=$$?; \
	wait $$build && test $$venv -eq 0

dev:
	@$(PREBUILD) && $(STACK) up --foreground

up:
	@$(PREBUILD) && $(STACK) up

deploy: venv
	$(STACK) deploy

down: venv
	$(STACK) down

token: venv
	@$(STACK) token --user $(USER) --role $(ROLE)

unit:
	cargo test $(CARGO_FLAGS)

# A dead-letter queue's messages back to their queue, once their cause is fixed (infra/redrive.py;
# on AWS: python infra/redrive.py QUEUE --stack NAME).
redrive: venv
	@test -n "$(QUEUE)" || { echo "QUEUE= one of activity, notifications, realtime, files, jobs"; exit 2; }
	@$(PY) infra/redrive.py $(QUEUE) --local

# The published contracts, written from the code (the same documents the stack serves at
# /openapi.json and /asyncapi.json) to .local/contract/, with what is made from them: the typed
# TypeScript client (api.d.ts, openapi-typescript) and the rendered reference (reference.html,
# Redoc). Redocly lints the OpenAPI document and the AsyncAPI parser checks the other.
CLIENT       := tests/client
CLIENT_STAMP := $(CLIENT)/node_modules/.installed

$(CLIENT_STAMP): $(CLIENT)/package-lock.json
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("make contract needs Node.js >= 20.19 (Redocly CLI), found " + process.version); process.exit(1) }'
	cd $(CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

contract: $(CLIENT_STAMP)
	cargo run $(BUILD_FLAGS) --quiet -p api-contract --bin api-contract -- .local/contract
	cd $(CLIENT) && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true npm run --silent contract

# Against the deployed stack: the port contracts with the AWS adapters (the same suite `unit`
# runs against the in-memory ports), then the end-to-end suite (schemathesis and the typed
# client's example among it, from what `make contract` wrote).
e2e: venv contract
	$(STACK) run -- bash -c 'cargo test $(BUILD_FLAGS) -p port-contracts --features emulator --test emulator && $(PY) -m pytest -p no:cacheprovider tests/e2e'

# The port contracts alone, against a running stack (`make up`).
contracts:
	cargo test $(BUILD_FLAGS) -p port-contracts --features emulator --test emulator

# What the emulator cannot show (least privilege, alarms, log settings): checked over the
# transformed template, before anything is built.
template: venv
	$(PY) -m pytest -p no:cacheprovider tests/template

test: template unit e2e

fmt:
	cargo fmt --all

lint: venv $(CHECKOV_STAMP)
	cargo fmt --all -- --check
	cargo clippy $(CARGO_FLAGS) --all-targets --features port-contracts/emulator -- -D warnings
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(CHECKOV)

# checkov alone (no build). Checks that do not apply are skipped in the resource's Metadata,
# each with its reason.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV)

# Figures (not part of `make test`): needs `make up` or `make dev` running. `make bench` prints
# one table of figures beside their targets and writes it, with the raw figures, to results/.
bench: venv
	$(PY) tests/bench/run.py

# The same with a tenth of the requests and events, for a quick look while working (about 6 minutes).
bench-quick: venv
	BENCH_REQUESTS=200 BENCH_COLD_STARTS=10 BENCH_EVENTS=1000 BENCH_FRAME_WRITES=50 $(PY) tests/bench/run.py

# Faults, crashes, redrives and load (tests/e2e/test_{faults,crashes,redrive,load}.py) CHAOS_SCALE times
# larger than make test runs them, then the README's Reliability table. Needs make up.
chaos: venv
	$(PY) tests/chaos.py

# Every parser of untrusted input under libFuzzer (tests/fuzz; nightly, AddressSanitizer), each
# target for FUZZ_SECONDS; prints executions and crashes per target. Not part of make test.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	tests/fuzz/run.sh $(FUZZ_SECONDS)

# The earlier per-slice figures (episodes, pipeline, realtime, files, jobs), through API Gateway.
bench-slices: venv
	$(PY) tests/bench/episodes_api.py
	$(PY) tests/bench/pipeline.py
	$(PY) tests/bench/realtime.py
	$(PY) tests/bench/files_api.py
	$(PY) tests/bench/jobs.py
