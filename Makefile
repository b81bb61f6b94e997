# Set-up and everyday commands; each target makes the virtual environment on first use.
ifndef PYTHON
PYTHON := $(shell for p in python3.12 python3.11 python3.10 python3.9 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null \
	&& echo $$p && break; done)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python 3.9-3.12 for TensorFlow 2.16"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m durr_tf.demo --out demo

test: $(VENV)/.installed
	$(PY) -m pytest -q
