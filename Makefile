# partnerkit — the two commands of the README, and the tools behind them.
# Works on a fresh machine with only python3 (>= 3.11) and make: uv is
# bootstrapped into .tools/, the locked environment into .venv/.

PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8080
SCENARIO ?= scenarios/default.yaml
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help serve test soak bench cassettes lint typecheck pytest env clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  (make serve PORT=8081 SCENARIO=FILE: another port or scenario)"

serve: $(VENV)/.serve-synced ## start the fake partner on 127.0.0.1:8080 (PORT=, SCENARIO=)
	$(BIN)/partnersim serve --host $(HOST) --port $(PORT) --scenario $(SCENARIO)

test: $(VENV)/.synced lint typecheck pytest ## ruff, mypy and the whole test suite

soak: $(VENV)/.synced ## many more, randomised property examples; prints the seed to rerun
	@seed=$${SEED:-$$($(BIN)/python -c 'import random; print(random.randrange(2**32))')}; \
	echo "partnerkit soak: hypothesis seed $$seed (rerun: SEED=$$seed make soak)"; \
	PARTNERKIT_HYPOTHESIS_PROFILE=partnerkit-soak $(BIN)/pytest -q -o timeout=3600 \
		tests/contracts/test_properties.py tests/contracts/test_virtual_time.py \
		--hypothesis-seed=$$seed; \
	status=$$?; echo "partnerkit soak: seed $$seed, exit $$status"; exit $$status

bench: $(VENV)/.synced ## side-by-side benchmarks (needs wrk; WireMock when java + npm)
	$(BIN)/python bench/run.py

cassettes: $(VENV)/.synced ## re-record cassettes/ against the fake partner; review with git diff
	$(BIN)/pytest -q -p no:randomly tests/client/test_cassettes.py --record-mode=rewrite
	$(BIN)/python scripts/record_production_cassette.py

lint: $(VENV)/.synced ## ruff
	$(BIN)/ruff check .

typecheck: $(VENV)/.synced ## mypy --strict
	$(BIN)/mypy

# The live contract suite runs twice: with the rest on memory state, then on a real
# Redis (the shared-state backend; skipped with the reason without redis-server,
# except in CI), its report left out so the first run's stays.
pytest: $(VENV)/.synced ## the test suite alone (the live contract suite also on Redis)
	$(BIN)/pytest
	PARTNERKIT_TEST_STATE=redis $(BIN)/pytest -q -o partnerkit_report= \
		tests/client/test_contracts_live.py

env: $(VENV)/.synced ## install everything (locked) into .venv/

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')"
	touch $@ $(VENV)/.serve-synced

# Serving needs only the runtime dependencies; --inexact keeps the dev tools
# of an earlier `make test`.
$(VENV)/.serve-synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --no-dev --inexact \
		--python "$$($(PYTHON) -c 'import sys; print(sys.executable)')"
	touch $@

clean: ## remove the tools, the environment and caches
	rm -rf .tools $(VENV) .mypy_cache .ruff_cache .hypothesis
