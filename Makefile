# Inventiv Agents: the two commands a newcomer needs are `make dev` and `make test`.
# Both create .venv and install the pinned dependency set by themselves.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
COMPOSE ?= docker compose --env-file $(or $(wildcard env/dev.env),env/dev.env.example)
API_PORT ?= 8003

.PHONY: help install dev test test-only lint fmt bench lock up down nuke logs api-expose clean \
	mock-runtimes worker-attach worker-detach mock-runtime-sync

help:
	@echo "make dev      run the whole platform locally (embedded PostgreSQL/Redis if unset)"
	@echo "make test     lint, type-check, import contracts, then the full test suite"
	@echo "make lint     ruff, ruff format --check, mypy, import-linter"
	@echo "make fmt      format and auto-fix"
	@echo "make bench    run the benchmarks in bench/"
	@echo "make mock-runtimes | mock-runtime-sync | worker-attach | worker-detach"
	@echo "               Mock runtimes (INSTANCE_ID=<uuid> for attach and detach)"
	@echo "make up|down|nuke|logs|api-expose   Docker Compose stack"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -e ".[server,worker,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

dev: install
	$(BIN)/inventiv dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint test-only

# cloud-init's own schema check validates the user data GPU VMs boot with; Debian packages it.
test-only: install
	command -v cloud-init >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends cloud-init)
	$(BIN)/pytest

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# wrk is the load tool of the HTTP benchmarks; Debian packages it.
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench

# --- Mock runtimes (beside `make dev`, or with DATABASE_URL set) -----------------
mock-runtimes: install
	$(BIN)/inventiv mock-runtimes

mock-runtime-sync: install
	$(BIN)/inventiv mock-runtime-sync

worker-attach worker-detach: install
	@test -n "$(INSTANCE_ID)" || { echo "usage: INSTANCE_ID=<uuid> make $@" >&2; exit 2; }
	$(BIN)/inventiv $@ $(INSTANCE_ID)

# Re-pin every dependency to what resolves today (review the diff before committing).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e ".[server,worker,dev]"
	{ echo "# Exact versions for every machine (make install uses: pip install -c constraints.txt)."; \
	  echo "# Regenerate with: make lock"; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt
	rm -rf .venv-lock

# --- Docker Compose (needs a Docker engine) -------------------------------------
up:
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

nuke:
	$(COMPOSE) down --volumes --remove-orphans

logs:
	$(COMPOSE) logs -f --tail=200

# Publishes the api on the host's loopback only (127.0.0.1:$(API_PORT)).
api-expose:
	$(COMPOSE) -f docker-compose.yml -f deploy/docker-compose.api-expose.yml up -d api

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
