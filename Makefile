# Two commands on a fresh machine:
#   make quickstart   set up .venv (if missing) and run the README's main job
#   make test         set up .venv (if missing) and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quickstart

.PHONY: quickstart test setup clean-venv

$(VENV)/.installed: requirements.txt setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt -e '.[test]'
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(PY) -m jaxgen.main --config experiments/quickstart.py --workdir $(WORKDIR)

test: setup
	$(PY) -m pytest -n 2 -q tests

clean-venv:
	rm -rf $(VENV)
