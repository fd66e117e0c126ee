# The two commands: `make run` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint run bench clean bundle package deploy deploy-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch pinned first: a looser requirement pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[bot,train,local,dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

run: $(STAMP)
	$(VENV)/bin/trainbot run

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# AWS deployment (see README "Deploy to AWS"); make test already runs the offline package check.
STAGE ?= dev
REGION ?= us-east-1

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

bundle: $(STAMP)
	$(PY) scripts/build_lambda.py

package: bundle node_modules/.package-lock.json
	npx --no-install osls package --stage $(STAGE) --region $(REGION)

deploy: bundle node_modules/.package-lock.json
	npx --no-install osls deploy --stage $(STAGE) --region $(REGION)

deploy-check: $(STAMP)
	$(PY) -m pytest -q tests/deploy tests/e2e/test_lambda_flow.py tests/unit/test_reconcile.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build .serverless node_modules
