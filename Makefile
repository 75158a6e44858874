# VibeXP — `make run` starts the server on an embedded SQLite file; `make test` runs everything CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

export VIBEXP_TEST_POSTGRES_URL ?= postgresql+asyncpg://vibexp:vibexp@127.0.0.1:5432/postgres

.PHONY: help install lock run test test-fast lint format bench postgres testenv-build testenv-up testenv-down \
	browser prometheus clients manifests clean

help:
	@echo "make run     start VibeXP on http://$(HOST):$(PORT) (SQLite file ./vibexp.db)"
	@echo "make test    lint + the whole test suite (SQLite, PostgreSQL, kube-apiserver, Chromium)"
	@echo "make test-fast  the in-process tests on SQLite only (the inner loop, a few minutes)"
	@echo "make bench   authenticated vs bare request throughput, SQLite and PostgreSQL"

# Installs exactly what uv.lock pins (hashes checked), the project itself editable. A fresh machine needs only
# python3 and PyPI: uv comes from PyPI into the virtualenv first, at the version pinned here.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

$(UV):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev --inexact --quiet
	@touch $@

install: $(STAMP)

# Re-resolve uv.lock after a change to the dependencies in pyproject.toml (`uv lock --upgrade` moves every pin).
lock: $(UV)
	$(UV) lock

# A busy port is found before anything starts, and the message names a free one to pass as PORT=.
# A laptop server: alert webhooks may go to a receiver on this machine (a private address, refused by default
# elsewhere); set VIBEXP_WEBHOOK_ALLOW_PRIVATE=false to try the production refusal.
run: install
	@$(PY) hack/port_free.py $(HOST) $(PORT)
	$(BIN)/vibexp db upgrade
	VIBEXP_WEBHOOK_ALLOW_PRIVATE=$${VIBEXP_WEBHOOK_ALLOW_PRIVATE:-true} $(BIN)/vibexp serve --host $(HOST) --port $(PORT)

# mypy --strict over every source root (the package, then the build tooling); lint-imports checks the layering
# contracts in pyproject.toml ([tool.importlinter]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy hack
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

postgres:
	bash tests/scripts/ensure-postgres.sh

test: install lint postgres testenv-build browser prometheus clients
	$(BIN)/pytest

# The inner loop: SQLite only, in-process only (no `vibexp serve`, CLI or other subprocess, no kube-apiserver,
# Chromium or npm clients; marks in pyproject.toml, derived in tests/helpers/marks.py). `make test` is the whole truth.
FAST_MARKS := not kube and not browser and not clients and not subprocess
test-fast: install
	$(BIN)/pytest --db=sqlite -m "$(FAST_MARKS)" -q

bench: install postgres
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(PY) tests/bench/bench.py

# A real etcd + kube-apiserver (+ helm) built from Go modules, cached in ~/.cache/vibexp/testenv/<versions>/.
testenv-build:
	python3 tests/testenv/kube_testenv.py build

# Starts them on free loopback ports and writes .testenv/kubeconfig (admin); testenv-down stops them, removes data.
testenv-up: testenv-build
	python3 tests/testenv/kube_testenv.py up

testenv-down:
	python3 tests/testenv/kube_testenv.py down

# Debian's Chromium for the Playwright browser tests (test tools cannot download browsers here). Idempotent.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Debian's prometheus package: promtool (rule checks and unit tests) and the server the dashboard test scrapes with.
# The tests run their own server on 127.0.0.1 only; the package's own service is not used.
prometheus:
	@command -v promtool >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# The real MCP clients (MCP Inspector, Claude Code) tests/mcp/test_mcp_real_clients.py runs, exactly as
# tests/clients/package-lock.json pins them; again only when the lockfile changes. The binaries land in
# tests/clients/node_modules/.bin (claude, mcp-inspector). Node.js: the pinned packages declare >= 22.19.0 (the
# Inspector; Claude Code >= 22.0.0); the suite runs them on Node 20.20 too, so older than 20 is refused and 20 up to
# 22.18 gets a warning.
CLIENTS_STAMP := tests/clients/node_modules/.installed-stamp
NODE_MIN := 20.0.0
NODE_DECLARED := 22.19.0

$(CLIENTS_STAMP): tests/clients/package.json tests/clients/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "make clients: Node.js and npm are not \
	installed: install Node.js $(NODE_DECLARED) or newer (https://nodejs.org/en/download)" >&2; exit 1; }
	@node hack/check_node.js $(NODE_MIN) $(NODE_DECLARED)
	npm ci --prefix tests/clients --no-audit --no-fund
	@touch $@

clients: $(CLIENTS_STAMP)

# Copy crds/ into the chart and render manifests/vibexp.yaml from it (helm from the test environment's build).
manifests: install
	$(PY) hack/manifests.py write

clean:
	rm -rf .testenv test-output .pytest_cache .mypy_cache .ruff_cache
