# Two commands set everything up on a fresh machine with Python 3.10+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench compat matrix package docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# --group (the dev dependency group, PEP 735) needs pip 25.1 or later.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e '.[all]' --group dev
	touch $(STAMP)

## make demo: a guided tour on a throwaway embedded PostgreSQL (no server needed)
demo: $(STAMP)
	$(BIN)/sessionward demo

## make test: lint, type-check and run the whole suite against real servers
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench compat examples docs/_hooks.py noxfile.py .ci
	$(BIN)/ruff format --check src tests bench compat examples docs/_hooks.py noxfile.py .ci

typecheck: $(STAMP)
	$(BIN)/mypy

## make bench: every benchmark, each beside what a user would pick instead
# Runs them all, then fails if any missed its target.
bench: $(STAMP)
	@status=0; \
	$(BIN)/python bench/snapshot.py || status=1; \
	$(BIN)/python bench/dropdb.py || status=1; \
	$(BIN)/python bench/liveness.py || status=1; \
	$(BIN)/python bench/reaper.py --sizes 20,1000 || status=1; \
	$(BIN)/python bench/recorder.py || status=1; \
	exit $$status

## make compat: Django's and SQLAlchemy's own tests, plain and with sessionward
# Needs both servers; fails if a test that passes plain fails with sessionward.
compat: $(STAMP)
	$(BIN)/python compat/run.py $(COMPAT_ARGS)

# Other Pythons (pyenv's, when present), PostgreSQL 14 and 16, and the built wheel
# and sdist, each installed in a clean venv outside the checkout: see noxfile.py
# (.ci/matrix.sh runs the PostgreSQL cells beside the others).
MATRIX_PATH := $(shell ls -d $$HOME/.pyenv/versions/3.10*/bin $$HOME/.pyenv/versions/3.13*/bin 2>/dev/null | tr '\n' ':')
matrix: $(STAMP)
	PATH="$(MATRIX_PATH)$$PATH" NOX=$(BIN)/nox .ci/matrix.sh

## make package: build the wheel and sdist and check each from a clean venv
package: $(STAMP)
	$(BIN)/nox -s wheel sdist

# The docs site, into site/; a warning (a broken link or anchor) fails it.
docs: $(STAMP)
	$(BIN)/python -m pip install --quiet --group docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
