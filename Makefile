# Preflight — one obvious way to run each thing.
#
#   make setup       create .venv with every package installed editable, fetch the Kafka jars, buf, axe-core and oidc-provider,
#                    build the deployment tools and the test cluster binaries (cached in .cache/)
#   make demo        run a submission end to end on the embedded stack
#   make test        the whole test suite (real Kafka, SQLite, PostgreSQL, gRPC on loopback)
#   make test-fast   the fast lane: every test that needs no server process (under a minute)
#   make lint        ruff, mypy --strict, buf lint + breaking, generated code freshness, chart checks
#   make protos      regenerate libs/proto from protos/
#   make sdk-client  regenerate the SDK's blocking clients (client.py) from its asyncio ones (aio.py)
#   make kafka-up / kafka-down   the local Apache Kafka broker (KRaft) in run/kafka
#   make bench       the benchmarks under bench/ (not part of the tests)
#   make images      the service and worker images, built with podman from a Debian stand-in for their
#                    PYTHON_IMAGE (deploy/docker/python-base.sh, cached in .cache/images); needs root,
#                    podman, runc and debootstrap. The image tests build what they need the same way.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BUF_VERSION := 1.75.0
BUF := .cache/buf/node_modules/.bin/buf
AXE_VERSION := 4.14.1
AXE := .cache/axe-core/node_modules/axe-core/axe.min.js
OIDC_PROVIDER_VERSION := 9.13.3
OIDC_PROVIDER := .cache/oidc-provider/node_modules/oidc-provider/lib/index.js
PACKAGES := libs/proto libs/common libs/testkit sdk/python $(sort $(dir $(wildcard services/*/pyproject.toml)))
# Each package editable, with its `test` extra when it declares one.
EDITABLES := $(foreach p,$(PACKAGES),-e $(if $(shell grep -s '^test = ' $(p)/pyproject.toml),$(patsubst %/,%,$(p))[test],$(p)))
SRC_DIRS := $(shell for p in $(PACKAGES); do [ -d $$p/src ] && printf '%s:' $${p%/}/src; done)
MYPY_PACKAGES := preflight_common $(shell for p in $(PACKAGES); do for d in $${p%/}/src/preflight_*; do \
	[ -d $$d ] && [ $$(basename $$d) != preflight_common ] && printf '%s ' $$(basename $$d); done; done)

.PHONY: setup venv install kafka-jars buf axe oidc-provider protos protos-check sdk-client sdk-client-check lint lint-python lint-protos test test-fast \
	kafka-up kafka-down bench up down demo images

setup: install kafka-jars buf axe oidc-provider deploy-tools k8s-build

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -r requirements-dev.txt -c constraints.txt $(EDITABLES)

kafka-jars: install
	$(PY) -c "from preflight_common.localkafka import ensure_jars; print(ensure_jars('.'))"

buf: $(BUF)
$(BUF):
	npm install --silent --no-audit --no-fund --prefix .cache/buf @bufbuild/buf@$(BUF_VERSION)

# axe-core: the console's browser tests check every page with it (WCAG 2.2 AA).
axe: $(AXE)
$(AXE):
	npm install --silent --no-audit --no-fund --prefix .cache/axe-core axe-core@$(AXE_VERSION)

# oidc-provider: a real OpenID provider the sign-in tests run on loopback (preflight_testkit.oidc).
oidc-provider: $(OIDC_PROVIDER)
$(OIDC_PROVIDER):
	npm install --silent --no-audit --no-fund --prefix .cache/oidc-provider oidc-provider@$(OIDC_PROVIDER_VERSION)

protos: install
	$(PY) scripts/gen_protos.py

protos-check:
	$(PY) scripts/gen_protos.py --check

sdk-client: install
	$(PY) scripts/gen_sdk_client.py

sdk-client-check:
	$(PY) scripts/gen_sdk_client.py --check

lint: lint-python lint-protos protos-check sdk-client-check helm-lint

lint-python:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=$(SRC_DIRS) $(VENV)/bin/mypy $(addprefix -p ,$(MYPY_PACKAGES)) -p preflight.sdk
	$(VENV)/bin/mypy deploy/helm/tools/gen_schema.py

lint-protos: $(BUF)
	cd protos && ../$(BUF) lint
	@if git rev-parse --verify --quiet main >/dev/null && git cat-file -e main:protos/buf.yaml 2>/dev/null; then \
		echo "buf breaking against main"; cd protos && ../$(BUF) breaking --against '../.git#branch=main,subdir=protos'; \
	else echo "buf breaking: no protos on main yet"; fi

test:
	$(PY) -m pytest -q

test-fast:
	$(PY) -m pytest -q --fast -n 2

up:
	$(PY) deploy/local/stack.py up

down:
	$(PY) deploy/local/stack.py down

demo:
	$(PY) deploy/local/demo.py

kafka-up:
	$(PY) -m preflight_common.localkafka up --run-dir run/kafka

kafka-down:
	$(PY) -m preflight_common.localkafka down --run-dir run/kafka

bench:
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

images: deploy-tools
	$(PYTHON) deploy/docker/build_images.py --python $(PYTHON)

include mk/deploy.mk
