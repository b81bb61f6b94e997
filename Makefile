# Set-up and everyday commands; each target makes the virtual environment on first use.
ifndef PYTHON
PYTHON := $(shell for p in python3.12 python3.11 python3.10 python3.9 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null \
	&& echo $$p && break; done)
endif
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test results

# `make results` reruns the peers benchmark and the Table 1 ablation and rewrites the results section
# of docs/results.md: the method tables on the whole sets, or on the first LIMIT images of each
# set (`make results LIMIT=17`); the peers' check always on the whole sets. `make results QUICK=1`
# is a subset (about 12 minutes here) into results_quick/. BM3D is single-threaded, so it runs in
# a second process beside the rest.
LIMIT ?= 0
ifdef QUICK
RESULTS := results_quick
BENCH := --quick --out $(RESULTS)/benchmark --ablation $(RESULTS)/ablation
ABLATION := --steps 20 --limit 2 --sigmas 25,40,55 --runs_dir runs/ablation_quick
else
RESULTS := docs/results
BENCH := --limit $(LIMIT) --out $(RESULTS)/benchmark --ablation $(RESULTS)/ablation \
	--readme docs/results.md
ABLATION := --steps 200 --limit $(LIMIT)
endif

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python 3.9-3.12 for TensorFlow 2.16"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m durr_tf.demo --out demo

# One test worker per core, at most 4 (the smoke runs they share are trained once); plain
# `pytest -q` runs the same suite in one process.
test: $(VENV)/.installed
	$(PY) -m pytest -q --numprocesses auto --maxprocesses 4

results: $(VENV)/.installed
	$(PY) -m durr_tf.tools.benchmark $(BENCH) --methods BM3D,CBM3D --noreport & bm3d=$$!; \
	{ $(PY) -m durr_tf.tools.ablation $(ABLATION) --out $(RESULTS)/ablation \
	  && $(PY) -m durr_tf.tools.benchmark $(BENCH) --methods JPEG,DnCNN-B,DnCNN-3,DURR --noreport; } \
	|| { kill $$bm3d; exit 1; }; \
	wait $$bm3d && $(PY) -m durr_tf.tools.benchmark $(BENCH)
