# The two commands of the README:
#   make demo   install (venv created when missing) and run the main job
#   make test   install with the test extras and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt
RUN_DIR ?= runs/demo
PYTEST_ARGS ?=

.PHONY: demo test install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core-installed: $(PY) setup.py requirements/constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.core-installed
	$(PIP) -e ".[test]"
	touch $@

install: $(VENV)/.core-installed
install-test: $(VENV)/.test-installed

demo: $(VENV)/.core-installed
	$(VENV)/bin/spgg game sweep --reward mac_spgg --agents 3 --out $(RUN_DIR)/game_sweep

test: $(VENV)/.test-installed
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
