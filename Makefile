# churnguard — two commands set everything up on a fresh machine:
#   make run    create .venv, install pinned dependencies, run the DVC pipeline on synthetic data
#   make test   same bootstrap, then the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg

.PHONY: install install-dev install-bench messages run test lint bench-generate bench-features bench-score bench-cdnow bench-spark bench-uplift bench-value clean

# message catalogues (docs/i18n.md): the .po files are the source, each .mo is compiled
# from its .po by the install and never committed
LOCALE := src/churnguard/locale
CATALOGUES := $(wildcard $(LOCALE)/*/LC_MESSAGES/churnguard.po)
COMPILED := $(CATALOGUES:.po=.mo)

# runtime pins only (what `make run` and scheduled scoring need)
$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"churnguard needs Python >= 3.11, found {sys.version.split()[0]} (set PYTHON=python3.11)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# recompiled whenever its .po changes (fuzzy and untranslated messages are left out)
$(LOCALE)/%/LC_MESSAGES/churnguard.mo: $(LOCALE)/%/LC_MESSAGES/churnguard.po $(VENV)/.installed
	$(BIN)/pybabel compile --domain churnguard --locale $* --input-file $< --output-file $@

install: $(VENV)/.installed $(COMPILED)

# after changing a manager-facing string: re-extract the template, merge it into every
# catalogue (new messages arrive empty, changed ones fuzzy), then translate them
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k NP_:1c,2 -c TRANSLATORS: --add-location=file \
	  --sort-output --no-wrap --project=churnguard --copyright-holder="churnguard contributors" \
	  -o $(LOCALE)/churnguard.pot src/churnguard
	$(BIN)/pybabel update -i $(LOCALE)/churnguard.pot -d $(LOCALE) -D churnguard \
	  --no-wrap --ignore-obsolete

# + the dev and Spark extras (tests, lint, notebook, PySpark), same pins as the runtime lock
$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.lock
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements-dev.lock
	@touch $@

install-dev: $(VENV)/.dev-installed $(COMPILED)

run: install
	$(BIN)/dvc repro
	@$(BIN)/churnguard where

test: install-dev
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

$(VENV)/.bench-installed: $(VENV)/.dev-installed requirements-bench.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-bench.lock
	@touch $@

install-bench: $(VENV)/.bench-installed

bench-generate: install
	$(BIN)/python benchmarks/generate.py

bench-features: install
	$(BIN)/python benchmarks/features.py --memory-limit 3GB --loop

bench-score: install
	$(BIN)/python benchmarks/score.py --explain-max shipped,all --repeats 3

bench-cdnow: install-bench
	$(BIN)/python benchmarks/cdnow.py

bench-value: install
	$(BIN)/python benchmarks/value.py

bench-spark: install-dev
	$(BIN)/python benchmarks/spark.py

bench-uplift: install
	$(BIN)/python benchmarks/uplift.py

clean:
	rm -rf $(VENV) .pytest_cache
