# One target per job. Every recipe is a thin call into the Python packages.
# `make help` lists the targets; area-specific targets live in mk/*.mk.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# System packages: MPI to launch multi-process training (mpirun), unar for the RAR archives,
# gcc and libjpeg-turbo's headers for the crop-box JPEG decoder (tsn/data/_jpeg.c, setup.py).
APT_PACKAGES := openmpi-bin libopenmpi-dev unar gcc libjpeg62-turbo-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
# Area makefiles add their targets, and their benchmarks to BENCH_TARGETS.
BENCH_TARGETS :=
-include mk/*.mk

.PHONY: help setup test lint proto bench

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install system packages (apt-get) and the .venv with the project (idempotent)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "system packages present: $(APT_PACKAGES)"; fi
	@$(MAKE) --no-print-directory $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py tsn/data/_jpeg.c
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

test: ## run the default test suite (CPU only, no network)
	$(PY) -m pytest -q

lint: ## ruff check
	$(VENV)/bin/ruff check .

proto: ## regenerate prototxt_port/caffe_pb2.py from caffe.proto (needs grpcio-tools)
	$(PY) -m grpc_tools.protoc -Iprototxt_port --python_out=prototxt_port prototxt_port/caffe.proto


bench: $(BENCH_TARGETS) ## run every benchmark (results in results/bench/)
	@echo "benchmarks written under results/bench/"
