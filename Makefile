# Two commands for a fresh clone: `make run` (package the demo model, serve it locally)
# and `make test`. Every target sets up what it needs from the project's own files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
# uv installs exactly what uv.lock pins, for the machine's own Python: it never downloads an interpreter.
export UV_PYTHON_DOWNLOADS := never
SYNC := $(UV) sync --frozen --inexact --python $(PY) --no-default-groups
BUILD_STAMP := $(VENV)/.installed-build
DEV_STAMP := $(VENV)/.installed-dev
PORT ?= 3000
# jsii prints a banner on Node versions past their end of life; the CDK still works on Node 20.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
CDK_DEPLOY_FLAGS ?=
PUBLISH_FLAGS ?=
# make drift: CURRENT=new.csv (new data), LOG_GROUP=name [SINCE=7d] (the deployed function), else make run's capture.
CAPTURE_FILE := drift/capture.jsonl
DRIFT_SOURCE = $(if $(CURRENT),--current $(CURRENT),$(if $(LOG_GROUP),--log-group $(LOG_GROUP) --since $(or $(SINCE),7d),--capture $(CAPTURE_FILE)))

.PHONY: help run test model fuzz bench drift synth bootstrap deploy destroy publish clean score

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"

# What packaging and serving need (no CDK, moto or fuzzers): `make run` stays light.
$(BUILD_STAMP): pyproject.toml uv.lock | $(UV)
	$(SYNC) --group build
	@touch $@

# Everything: every layer and the test tools.
$(DEV_STAMP): pyproject.toml uv.lock | $(UV)
	$(SYNC) --group dev
	@touch $@ $(BUILD_STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

model_artifacts/manifest.json: | $(BUILD_STAMP)
	$(PY) -m builder.demo_model

run: $(BUILD_STAMP) model_artifacts/manifest.json ## serve the model on http://127.0.0.1:$(PORT) as API Gateway would
	PORT=$(PORT) $(PY) -u -m toolkit.local_api

test: $(DEV_STAMP) node_modules/.installed ## run every test layer
	$(PY) -m pytest

model: $(BUILD_STAMP) ## rebuild the demo model and package it into model_artifacts/
	$(PY) -m builder.demo_model

score: $(BUILD_STAMP) model_artifacts/manifest.json ## score a file: make score INPUT=in.csv OUTPUT=out.csv [ID_COLUMN=id] [WORKERS=n]
	$(PY) -m toolkit.score --input $(INPUT) --output $(OUTPUT) $(if $(ID_COLUMN),--id-column $(ID_COLUMN)) $(if $(WORKERS),--workers $(WORKERS))

bench: $(DEV_STAMP) model_artifacts/manifest.json ## measure cold start, latency and size against budgets.toml, then batch throughput
	$(PY) -m toolkit.bench
	$(PY) -m toolkit.batch_bench --rows 100000 1000000

fuzz: $(DEV_STAMP) model_artifacts/manifest.json ## send 10,000 generated requests to the local API (CASES to change)
	$(PY) -m toolkit.fuzz --cases $(or $(CASES),10000)

drift: $(DEV_STAMP) model_artifacts/manifest.json ## drift report in drift/: make run's traffic, CURRENT=new.csv or LOG_GROUP=name
	$(PY) -m toolkit.drift $(DRIFT_SOURCE)

synth: $(DEV_STAMP) node_modules/.installed ## build the Lambda bundle and write the CloudFormation template to cdk.out/
	npx aws-cdk synth --quiet

bootstrap: $(DEV_STAMP) node_modules/.installed ## once per account and region: prepare it for CDK deployments
	npx aws-cdk bootstrap

deploy: synth ## deploy the stack to the AWS account of your current profile
	npx aws-cdk deploy $(CDK_DEPLOY_FLAGS)

publish: $(DEV_STAMP) model_artifacts/manifest.json ## upload model_artifacts/ to the model bucket (model_source: s3)
	$(PY) -m toolkit.publish $(PUBLISH_FLAGS)

destroy: $(DEV_STAMP) node_modules/.installed ## delete the stack
	npx aws-cdk destroy

clean: ## remove build outputs (keeps .venv and node_modules)
	rm -rf build cdk.out bench .pytest_cache .hypothesis
