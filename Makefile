# The commands a new user types. `make dev` and `make test` work on a fresh machine:
# scripts/uv installs uv if it is missing and finds the installed Python 3.12.
UV := scripts/uv
ARGS ?=

.PHONY: dev test lint format crds bench docs-check clean

dev:  ## set up and run the runtime with its embedded defaults on http://127.0.0.1:8000
	$(UV) run agentfleet dev $(ARGS)

test:  ## run the whole test suite (installs redis-server if missing and possible)
	scripts/ensure-test-tools
	$(UV) run --frozen pytest $(ARGS)

lint:  ## ruff (lint + format check) and mypy --strict
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format:
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

crds:  ## regenerate the CRD YAML from the models
	$(UV) run --frozen agentfleet crds generate

bench:  ## run the benchmarks (each prints its figures)
	$(UV) run --frozen python bench/turn_latency.py
	$(UV) run --frozen python bench/operator_scale.py
	$(UV) run --frozen python bench/ws_idle.py
	$(UV) run --frozen python bench/ws_fanout.py
	$(UV) run --frozen python bench/ws_token_latency.py

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
