# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast bench bench-install bench-peers clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch first: an unpinned torch would pull several GB of CUDA packages.
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	# Everything (every extra), at the exact versions tested together; pyproject.toml holds the ranges.
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	$(PY) -m pip install --quiet -c constraints.txt --no-deps kronfluence==1.0.1 einops==0.8.2 einconv==0.1.0 opt-einsum==3.4.0  # influence tests; --no-deps: its torchvision pin has no CPU build here, and it runs without it
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

bench-install:  # fresh venvs: core vs every extra (the [all] run may compile llama.cpp: minutes)
	$(PY) bench/bench_install.py

bench-peers: install  # bench-only peer tools for side-by-side benches (bench/bench_bergson.py); not tamis dependencies
	# --no-deps: bergson 2.5.1 also requires torchvision, torchaudio, bitsandbytes (never imported) and torchopt
	# (only its MAGIC trainer imports it); collection, projection, Hessians and scoring run without them on the CPU
	$(PY) -m pip install --quiet -c constraints.txt --no-deps bergson==2.5.1 jaxtyping==0.3.11 wadler-lindig==0.1.8 \
		ml-dtypes==0.6.0 natsort==8.4.0 petname==2.9 simple-parsing==0.1.9 docstring-parser==0.18.0

clean:
	rm -rf $(VENV) tamis-workspace .pytest_cache
