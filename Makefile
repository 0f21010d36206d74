# Two commands for a fresh clone: `make run` (package the demo model, serve it locally)
# and `make test`. Every target sets up what it needs from the project's own files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 3000
# jsii prints a banner on Node versions it no longer supports; the CDK still works.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: help run test model fuzz synth deploy destroy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --group dev
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

model_artifacts/manifest.json: | $(STAMP)
	$(PY) -m toolkit.demo_model

run: $(STAMP) model_artifacts/manifest.json ## serve the model on http://127.0.0.1:$(PORT) as API Gateway would
	PORT=$(PORT) $(PY) -u -m toolkit.local_api

test: $(STAMP) node_modules/.installed ## run every test layer
	$(PY) -m pytest

model: $(STAMP) ## rebuild the demo model and package it into model_artifacts/
	$(PY) -m toolkit.demo_model

fuzz: $(STAMP) model_artifacts/manifest.json ## send 10,000 generated requests to the local API (CASES to change)
	$(PY) -m toolkit.fuzz --cases $(or $(CASES),10000)

synth: $(STAMP) node_modules/.installed ## build the Lambda bundle and write the CloudFormation template to cdk.out/
	npx aws-cdk synth --quiet

deploy: synth ## deploy the stack to the AWS account of your current profile
	npx aws-cdk deploy

destroy: $(STAMP) node_modules/.installed ## delete the stack
	npx aws-cdk destroy

clean: ## remove build outputs (keeps .venv and node_modules)
	rm -rf build cdk.out bench .pytest_cache .hypothesis
