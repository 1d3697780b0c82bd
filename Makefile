# The README's two commands: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
IMAGE ?= aws-credentials-pipe:dev
BASE_IMAGE ?=
LOCAL_BASE ?= aws-credentials-pipe-base:bookworm
PIP_CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
DOCKER ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)

.PHONY: install test lint unit demo bench image base-image clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check pipe tests bench
	$(PY) -m ruff format --check pipe tests bench
	$(PY) -m mypy

# Every test: lint and types, unit, integration (the pipe as a process against the
# stand-ins) and image tests (docker run of the built image; they skip with a notice when
# no Docker engine answers, and fail instead with REQUIRE_IMAGE_TESTS=1).
test: lint
	BASE_IMAGE=$(BASE_IMAGE) PIP_CA_BUNDLE=$(PIP_CA_BUNDLE) $(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

demo: install
	BASE_IMAGE=$(BASE_IMAGE) PIP_CA_BUNDLE=$(PIP_CA_BUNDLE) $(PY) -m tests.standins.demo

bench: install
	BASE_IMAGE=$(BASE_IMAGE) PIP_CA_BUNDLE=$(PIP_CA_BUNDLE) $(PY) -m bench.run

image:
	DOCKER_BUILDKIT=1 $(DOCKER) build --network host -t $(IMAGE) \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	  $(if $(wildcard $(PIP_CA_BUNDLE)),--secret id=pip_ca,src=$(PIP_CA_BUNDLE)) .

# A local Debian base for machines that cannot pull python:3.13-slim (no registry access).
base-image:
	mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm - | $(DOCKER) import - $(LOCAL_BASE)

clean:
	rm -rf $(VENV) .venv-bench .mypy_cache .ruff_cache .pytest_cache demo-out
