# The single entry point: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check fmt build clean system-deps soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/previewer serve

system-deps:
	bash scripts/install-system-deps.sh

check: $(STAMP)
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

test: system-deps $(STAMP) check
	$(BIN)/pytest --cov --cov-report= $(PYTEST_ARGS)
	$(BIN)/coverage report  # fails under the floor set in pyproject.toml

# Ten minutes of mixed load; writes its table into docs/reliability.md. Not part of `test`.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --duration 600 --report docs/reliability.md

build: $(STAMP)
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* src/*.egg-info .previewer-cache
