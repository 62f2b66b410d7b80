# Developer shortcuts. The data folder (read-only) is found through CIRCUITS_DATA.
CIRCUITS_DATA ?= ../shared/data
export CIRCUITS_DATA

PYTHON ?= python3.11
VENV := .venv

.PHONY: setup test test-unit test-real bench demo lint mutation

setup:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[test,ray]'

# the full suite (what CI runs); test-unit: the fast tests that need no real data; test-real: the rest
test:
	$(VENV)/bin/pytest -q

test-unit:
	$(VENV)/bin/pytest -q -m unit

test-real:
	$(VENV)/bin/pytest -q -m real_data

bench:
	$(VENV)/bin/python -m bench

demo:
	$(VENV)/bin/circuits study curve-ablation --model inceptionv1_caffe --images $(CIRCUITS_DATA)/imagenet-sample-1000 --out runs/curve-ablation --overwrite

# mutation testing of the core modules (mutmut; not part of `make test`; see docs/mutation.md).
# One module: make mutation MODULE=circuits/units.py. Summary: runs/mutation/summary.md
MODULE ?=
mutation:
	$(VENV)/bin/python tests/mutation/mutate.py $(MODULE)

lint:
	$(VENV)/bin/ruff check .
