# qomon-sync: every developer and CI use these targets. `make test` is the one gate.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint types unit pacing-check standin clean

$(STAMP): requirements-dev.txt functions/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## The main job on embedded local defaults: no AWS account, no Qomon space needed.
demo: install
	$(BIN)/qomon-sync demo

## The gate: lint, format, types, then every test (unit, contract, integration).
test: install lint types
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

## 200 mixed GET/PATCH calls against a stand-in with burst 20, refill 5/s: prints the 429 count.
pacing-check: install
	$(BIN)/qomon-sync pacing-check --burst 20 --refill 5 --calls 200

standin: install
	$(BIN)/qomon-sync standin --port 8765 --token local-dev-token

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .aws-sam build *.egg-info
