# Two commands do all the set-up on a fresh machine (Python 3.10+ with pip and venv):
#   make demo   build a pyramidal cell, simulate it, print a summary and write a plot
#   make test   install the test extras and run ruff + the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test lint bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[plot]"
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install --quiet -e ".[test,plot,io]"
	touch $@

$(VENV)/.bench: $(VENV)/.test
	$(PIP) install --quiet -e ".[bench]"
	touch $@

demo: $(VENV)/.base
	$(PY) -m jaxdend demo --out demo_output

lint: $(VENV)/.test
	$(VENV)/bin/ruff check jaxdend tests benchmarks notebooks

test: $(VENV)/.test lint
	$(PY) -m pytest -n 2 --durations=15

bench: $(VENV)/.bench
	$(PY) benchmarks/simulate.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
