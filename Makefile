# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch first: an unpinned torch would pull several GB of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps kronfluence==1.0.1 einops==0.8.2 einconv==0.1.0 opt-einsum==3.4.0  # influence tests; --no-deps: its torchvision pin has no CPU build here, and it runs without it
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/tamis demo

test: install
	$(PY) -m pytest -q --durations=20

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) bench/bench_likelihood.py
	$(PY) bench/bench_sampling.py

clean:
	rm -rf $(VENV) tamis-workspace .pytest_cache
