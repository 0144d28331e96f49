.PHONY: setup run test lint bench clean
VENV := .venv
BIN := $(VENV)/bin

setup:
	@scripts/setup-venv.sh

run: setup
	$(BIN)/dlforge run digits

test: setup
	scripts/setup-test-tools.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) dlforge_home
