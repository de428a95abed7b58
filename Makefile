# Two commands on a fresh machine:
#   make quickstart   set up .venv (if missing) and run the README's main job
#   make test         set up .venv (if missing) and run the test suite
# The environment is jaxgen itself, editable, with its `train` and `test` extras (setup.cfg holds the
# one list of dependencies); `make setup` reinstalls when setup.cfg or pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quickstart

.PHONY: quickstart test setup clean-venv

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[train,test]'
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(PY) -m jaxgen.main --config experiments/quickstart.py --workdir $(WORKDIR)

test: setup
	$(PY) -m pytest -n 2 -q tests

clean-venv:
	rm -rf $(VENV)
