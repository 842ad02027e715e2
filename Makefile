# grpc-interop-harness: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS ?= protos
# a green `make test` / `make interop` means at least this share of reachable fields was carried, per direction
MIN_COVERAGE ?= 99
# pytest workers for make test: one per core (a third worker on 2 cores was measured slower: 8 min 38 s
# against 8 min 28 s, BENCHMARKS.md)
TEST_WORKERS ?= auto
# docker | process | auto (auto falls back to a plain process, loudly, when no engine answers)
export INTEROP_PEER_RUNNER ?= auto

.PHONY: help setup gen peer test unit interop quick coverage bench matrix matrix-oldest matrix-docs ci-local clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(PY): pyproject.toml
	@echo "setup: creating $(VENV) and installing the harness with its Python dependencies"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(PY)

setup: $(PY) ## install everything: Python deps (.venv), Go tools and modules, a Docker engine, Chromium, the peer image
	@echo "setup: downloading the Go peer's modules"
	cd go_peer && go mod download
	@echo "setup: making sure a Docker engine runs (installs docker.io and starts dockerd if not)"
	ci/docker-engine.sh
	@echo "setup: making sure headless Chromium is installed (the HTML report's screenshot test)"
	ci/chromium.sh
	@echo "setup: installing the pinned protoc plugins, generating code, building the peer binary and image"
	$(VENV)/bin/grpc-interop peer --protos $(PROTOS)

gen: $(PY) ## generate Python and Go code for PROTOS (cached by content hash)
	$(VENV)/bin/grpc-interop gen --protos $(PROTOS)

peer: $(PY) ## build the Go peer binary and its FROM-scratch image (skipped when unchanged)
	$(VENV)/bin/grpc-interop peer --protos $(PROTOS)

test: $(PY) ## unit tests + every case in every direction (pytest, one worker per core, shared peers)
	$(PY) -m pytest -n $(TEST_WORKERS) --peer-runner $(INTEROP_PEER_RUNNER) --interop-protos $(PROTOS) --interop-min-coverage $(MIN_COVERAGE)

unit: $(PY) ## unit tests only (no Go peer)
	$(PY) -m pytest -m "not interop"

interop: $(PY) ## the main job: run every case in every direction and print the matrix
	$(VENV)/bin/grpc-interop run --protos $(PROTOS) --peer-runner $(INTEROP_PEER_RUNNER) --min-coverage $(MIN_COVERAGE)

quick: $(PY) ## the quick profile (pre-commit, pull requests): one value case per method and mode, the protocol essentials, every direction
	$(VENV)/bin/grpc-interop run --protos $(PROTOS) --peer-runner $(INTEROP_PEER_RUNNER) --profile quick

coverage: $(PY) ## what the cases exercise per direction (fields, enums, oneofs, presence, streaming, status, metadata), every gap listed
	$(VENV)/bin/grpc-interop coverage --protos $(PROTOS) --min-coverage $(MIN_COVERAGE)

bench: $(PY) ## warm run vs raw grpcio (the ratio), the Py<->Go bench table, make interop cold and warm
	ci/bench.sh

# ci-local: the shard jobs of ci/github/interop-shards.yml, one after the other, then the merge job
SHARDS ?= 3
BACKENDS ?= upb python

ci-local: $(PY) ## the sharded CI workflow here: SHARDS shards × BACKENDS, merged into reports/ci/merged.{md,html,json,xml}
	PROTOS=$(PROTOS) BACKENDS="$(BACKENDS)" ci/ci-local.sh $(SHARDS) reports/ci

matrix: $(PY) ## grpcio × grpc-go versions: one nox session per combination (NOX_OPTS=-R reuses venvs), then the table
	rm -rf reports/matrix
	$(VENV)/bin/nox $(NOX_OPTS) -s interop; $(PY) -m harness.run.version_matrix summary

# MATRIX_RUN_OPTS: options for its `grpc-interop run` (e.g. -k routeguide); default: every case
matrix-oldest: $(PY) ## the oldest supported grpcio × grpc-go combination alone, every case (.ci/run runs it)
	$(VENV)/bin/nox $(NOX_OPTS) -s "$$($(PY) -m harness.run.version_matrix oldest)" -- $(MATRIX_RUN_OPTS)

matrix-docs: $(PY) ## write docs/matrix.md from the last `make matrix` (reports/matrix/*.json): never by hand
	$(PY) -m harness.run.matrix_docs --dir reports/matrix --out docs/matrix.md

clean: ## remove the harness's containers, images, cache folder (build products) and reports
	-$(VENV)/bin/grpc-interop clean --cache
	-docker images --format '{{.Repository}}:{{.Tag}}' grpc-interop-peer | xargs -r docker rmi -f
	rm -rf reports
