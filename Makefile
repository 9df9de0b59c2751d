# govcloud-cutover — `make demo` runs the whole mandated sequence on loopback; `make test` tests it.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# The suite runs split across 4 processes (tests/conftest.py says why that is safe); a module stays in one.
PYTEST_SPLIT ?= -n 4 --dist loadscope

.PHONY: help venv system test test-faults lint typecheck pytest demo demo-failure demo-stop demo-test schema bench clean

help:
	@echo "make demo   - run the demo cutover on loopback (embedded Prefect server, SQLite ledger)"
	@echo "make test   - lint, type-check and run the test suite"
	@echo "make bench  - run the benchmarks under bench/"

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	@scripts/ensure-debian-packages.sh  # mysqlclient builds against libmariadb-dev
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e '.[test]'
	$(PY) -m compileall -q cli cutover tasks flows worker demo  # PYTHONDONTWRITEBYTECODE=1 would make each process compile them again
	touch $(STAMP)

venv: $(STAMP)

system:
	@scripts/ensure-debian-packages.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv system
	$(VENV)/bin/pytest $(PYTEST_SPLIT) $(PYTEST_ARGS)

test: lint typecheck pytest

test-faults: venv system
	$(VENV)/bin/pytest -m faults $(PYTEST_ARGS)

schema: venv
	$(VENV)/bin/cutover schema --write
	$(VENV)/bin/cutover deployments --write

demo: venv system
	@$(VENV)/bin/cutover validate cutover_specs/
	$(PY) -m demo.run up

demo-failure: venv
	$(PY) -m demo.run failure

demo-stop: venv
	$(PY) -m demo.run stop

demo-test: venv system
	scripts/demo-test.sh

bench: venv system
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache
