# qomon-sync: every developer and CI use these targets. `make test` is the one gate.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint types complexity unit contract pacing-check standin clean sam-build lint-template validate checkov bench soak soak-quick probe probe-quick

# SAM CLI lives in its own venv: it pins its own dependencies, which must not move the dev pins.
SAM_VENV    := .venv-sam
SAM_VERSION := 1.170.0
SAM_STAMP   := $(SAM_VENV)/.installed-stamp-$(SAM_VERSION)

# checkov likewise: its dependencies (boto3, networkx, ...) must not move the dev pins.
CHECKOV_VENV    := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-stamp-$(CHECKOV_VERSION)

$(STAMP): requirements-dev.txt functions/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## The main job on embedded local defaults: no AWS account, no Qomon space needed.
demo: install
	$(BIN)/qomon-sync demo

## The gate: lint, format, types, complexity, then every test (unit, contract, integration,
## infra) with branch coverage of the Lambda package (fail-under in pyproject.toml).
test: install lint types complexity
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

## No function ranked worse than C (cyclomatic complexity above 20) in shipped, ops or dev code,
## nor in the soak and the probe (they live with the tests).
complexity: install
	$(BIN)/xenon --max-absolute C functions local ops tests/soak.py tests/soak_pause.py tests/probe

unit: install
	$(BIN)/pytest tests/unit

## The client's contract over HTTP: the stand-in always, a real space too when
## QOMON_SANDBOX_URL and QOMON_SANDBOX_TOKEN are set. Prints each FINDING a space settles
## (docs/qomon-api.md, "Unknown until a sandbox run").
contract: install
	$(BIN)/pytest tests/contract --no-cov -s -rs

## The figures of docs/benchmarks.md: tokens, throughput, overhead and size (a few minutes).
bench: install sam-build
	$(BIN)/qomon-sync bench

## The benchmark workload under injected faults; exits non-zero on any loss (a few minutes).
soak: install
	$(BIN)/python -m tests.soak

## The small soak CI runs.
soak-quick: install
	$(BIN)/python -m tests.soak --quick

## Signed webhooks from 8 threads through a 30 s Qomon outage: exits non-zero on any loss,
## double application or personal data in a log line (< 3 min). It lives with the tests.
probe: install
	$(BIN)/python -m tests.probe

## The small probe the tests run (< 40 s).
probe-quick: install
	$(BIN)/python -m tests.probe --quick

## 200 mixed GET/PATCH calls against a stand-in with burst 20, refill 5/s: prints the 429 count.
pacing-check: install
	$(BIN)/qomon-sync pacing-check --burst 20 --refill 5 --calls 200

standin: install
	$(BIN)/qomon-sync standin --port 8765 --token local-dev-token

## SAM and CloudFormation: lint the template, build the Lambda bundle into .aws-sam/build.
lint-template: install
	$(BIN)/cfn-lint template.yaml

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)
	touch $(SAM_STAMP)

sam-build: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build --template template.yaml

## SAM CLI's own transform and cfn-lint on the template; offline, no AWS credentials.
validate: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template template.yaml --region eu-west-3

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

## checkov on the template: fails on any failed check not skipped in .checkov.yaml
## ("Security checks" in docs/deploying.md says why each skip does not apply). Offline: no
## Prisma Cloud mappings, no check for a newer checkov.
checkov: $(CHECKOV_STAMP)
	BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .aws-sam build *.egg-info
