# Every verb here is also a CI step. Only python3 and make are assumed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-unit test-e2e check format docs bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the locked dependencies

run: install ## start the whole system on embedded defaults (Ctrl-C stops it)
	$(BIN)/earshot up

test: install ## the whole test suite: unit, contract, end-to-end
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m "not e2e and not integration"

test-e2e: install
	$(BIN)/pytest -m e2e

check: install ## format check, lint, types, import contracts
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

docs: install ## regenerate the README's settings table
	$(BIN)/python -m earshot.cli.readme README.md

bench: install ## earshot's conversion and converter job against raw ffmpeg on a 10-minute 720p file
	$(BIN)/python bench/convert.py

lock: ## re-resolve requirements.lock from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
