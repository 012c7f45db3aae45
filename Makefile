# psasync: `make run` starts the service (with a demo PSA), `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit postgres-tests bench soak schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/psasync migrate
	$(BIN)/psasync serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

# The database tests once more on PostgreSQL, when PSASYNC_TEST_POSTGRES_URL is set.
postgres-tests: $(STAMP)
	@if [ -n "$$PSASYNC_TEST_POSTGRES_URL" ]; then \
		PSASYNC_TEST_BACKEND=postgres $(BIN)/pytest -q -p no:cacheprovider -m db; \
	elif [ "$$CI" = "true" ]; then \
		echo "CI=true but PSASYNC_TEST_POSTGRES_URL is not set: PostgreSQL tests must run"; exit 1; \
	else \
		echo "PSASYNC_TEST_POSTGRES_URL not set: skipping the PostgreSQL pass"; \
	fi

# The SQLite and PostgreSQL passes run side by side (each prints when it ends): on two cores
# that keeps `make test` well under 15 minutes.
test: lint typecheck
	$(MAKE) --no-print-directory -j2 --output-sync=target unit postgres-tests

bench: $(STAMP)
	$(BIN)/python bench/full_sync.py
	$(BIN)/python bench/incremental.py
	$(BIN)/python bench/graphql_page.py
	$(BIN)/python bench/push.py
	$(BIN)/python bench/webhook_receiver.py

# The two-way model check run long: many random interleavings of edits, faults, notices,
# polls and workers (make test runs a fixed few). PSASYNC_TEST_BACKEND=postgres for PostgreSQL.
soak: $(STAMP)
	PSASYNC_MODEL_EXAMPLES=$${PSASYNC_MODEL_EXAMPLES:-1000} \
	PSASYNC_MODEL_STEPS=$${PSASYNC_MODEL_STEPS:-60} \
	$(BIN)/pytest -q -p no:cacheprovider tests/sync/test_two_way_model.py

# Regenerate schema.graphql after changing the GraphQL types (a test fails until you do).
schema: $(STAMP)
	$(BIN)/python -c "from api.graphql.schema import schema; print(schema.as_str())" > schema.graphql

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
