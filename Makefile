# The two commands of the README: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv run test lint fmt bench migrate clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $(STAMP)

## Run the service on the embedded default (SQLite + in-process store, demo catalogue).
run: venv
	$(BIN)/python -m app run

## Install and run the whole test suite: ruff, the layer contracts, then pytest on SQLite/in-process and PostgreSQL/Redis.
test: venv
	bash scripts/test.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

fmt: venv
	$(BIN)/ruff format .

migrate: venv
	$(BIN)/python -m app migrate

bench: venv
	bash bench/run.sh

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
