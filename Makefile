# The README's two commands: `make demo` and `make test`. Each installs what it needs: the
# virtualenv, and through .ci/engine a Docker engine and a base image to build the pipe's image on.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
IMAGE ?= aws-credentials-pipe:dev
BASE_IMAGE ?=
LOCAL_BASE ?= aws-credentials-pipe-base:bookworm
PIP_CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
DOCKER ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
comma := ,
# The CA bundle as a BuildKit secret, for pip behind a TLS-inspecting proxy (when the file exists).
CA_SECRET = $(if $(wildcard $(PIP_CA_BUNDLE)),--secret id=pip_ca$(comma)src=$(PIP_CA_BUNDLE))

.PHONY: install test lint unit demo bench image base-image clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# checkov pins an older boto3 than the tests use: its own virtualenv (requirements-checkov.txt).
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-checkov.txt
	touch $@

install: $(VENV)/.installed $(CHECKOV_VENV)/.installed

lint: install
	$(PY) -m ruff check pipe tests bench
	$(PY) -m ruff format --check pipe tests bench
	$(PY) -m mypy

# Image tests are part of `make test`: a missing engine fails them (REQUIRE_IMAGE_TESTS=0 skips
# them instead, with a notice). `.ci/engine` starts an engine and finds or builds a base first.
REQUIRE_IMAGE_TESTS ?= 1
# The base to build the image on, from .ci/engine (empty when it could not get an engine).
ENGINE = LOCAL_BASE=$(LOCAL_BASE) BASE_IMAGE=$(BASE_IMAGE) DOCKER=$(DOCKER) .ci/engine

# Every test: lint and types, unit, integration (the pipe as a process against the
# stand-ins) and image tests (docker run of the built image).
test: lint
	@base=$$($(ENGINE)) || echo "!! no Docker engine: the image tests will fail (see above)"; \
	set -x; BASE_IMAGE=$$base LOCAL_BASE=$(LOCAL_BASE) REQUIRE_IMAGE_TESTS=$(REQUIRE_IMAGE_TESTS) \
	  PIP_CA_BUNDLE=$(PIP_CA_BUNDLE) $(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

# The demo runs the pipe's image; only when no engine can be started, the package (loudly).
demo: install
	@base=$$($(ENGINE)) || echo "!! no Docker engine: the demo will run the Python package instead"; \
	set -x; BASE_IMAGE=$$base LOCAL_BASE=$(LOCAL_BASE) PIP_CA_BUNDLE=$(PIP_CA_BUNDLE) $(PY) -m tests.standins.demo

bench: install
	@base=$$($(ENGINE)) || echo "!! no Docker engine: the image will not be measured"; \
	set -x; BASE_IMAGE=$$base LOCAL_BASE=$(LOCAL_BASE) PIP_CA_BUNDLE=$(PIP_CA_BUNDLE) $(PY) -m bench.run
	$(PY) -m bench.audit
	$(PY) -m bench.workspace

image:
	@base=$$($(ENGINE)); set -x; DOCKER_BUILDKIT=1 $(DOCKER) build --network host -t $(IMAGE) \
	  --build-arg BASE_IMAGE=$$base $(CA_SECRET) .

# A local Debian base for machines that cannot pull python:3.13-slim (no registry access).
# .ci/engine builds it when needed (and installs mmdebstrap).
base-image:
	bash -o pipefail -c 'mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm - \
	  | $(DOCKER) import - $(LOCAL_BASE)'

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .venv-bench .mypy_cache .ruff_cache .pytest_cache demo-out
