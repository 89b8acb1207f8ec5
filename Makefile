# llmdocs: the two commands of the README are `make serve` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# On a machine without an NVIDIA GPU, pin the CPU build of torch so a fresh install never pulls CUDA wheels.
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
CONSTRAINTS := $(if $(HAS_CUDA),,-c requirements/cpu-constraints.txt)

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true
export TOKENIZERS_PARALLELISM := false

.PHONY: help install serve docs test lint format bench system clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install llmdocs with every extra and the data packages

$(STAMP): pyproject.toml requirements/assets.txt requirements/cpu-constraints.txt llmdocs/data/llamafactory.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e ".[all]"
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/assets.txt
	@# llamafactory's demo data sets ship in its sdist only: pip downloads it, the files are verified into the cache
	$(BIN)/python -m llmdocs.data.llamafactory || { echo "make install: fetching the llamafactory data failed (above); fix it and run make install again" >&2; exit 1; }
	touch $(STAMP)

serve: install  ## serve the site on http://127.0.0.1:8000
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

docs: install  ## build the site into site/ with --strict
	$(BIN)/mkdocs build --strict

lint: install  ## ruff lint and format check
	$(BIN)/ruff check llmdocs examples tests docs scripts
	$(BIN)/ruff format --check llmdocs examples tests docs scripts

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix llmdocs examples tests docs scripts
	$(BIN)/ruff format llmdocs examples tests docs scripts

system:  ## Debian packages for the browser test, Chinese figure labels and Fashion-MNIST, where this machine allows it
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	fc-list 2>/dev/null | grep -qi "wqy-microhei" || missing="$$missing fonts-wqy-microhei"; \
	[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	    || echo "could not install$$missing: the browser test and the Fashion-MNIST tests skip, Chinese labels show as boxes"; \
	  rm -f "$${MPLCONFIGDIR:-$$HOME/.cache/matplotlib}"/fontlist-*.json; \
	else echo "missing:$$missing (not root or no apt): the tests that need them skip; install them to enable those"; fi

test: install system lint  ## the whole suite, then its numerical tests under each CPU kernel level
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder  # 2 workers x 1 thread on 2 cores; files in collection order: the browser test first (tests/conftest.py), not last
	OMP_NUM_THREADS=1 $(BIN)/python scripts/cpu_matrix.py  # tests marked numerics, ATEN_CPU_CAPABILITY=default|avx2|avx512

bench: install  ## benchmark scripts (timings and ratios); nsp_ablation.py needs two pre-training runs (its docstring)
	@for script in examples/benchmarks/*.py; do \
	  case $$script in *nsp_ablation.py) echo "== $$script: skipped, it fine-tunes two pre-training runs"; continue;; esac; \
	  case $$script in *llama_ladder.py) echo "== $$script: skipped, ten training runs (over an hour)"; continue;; esac; \
	  case $$script in *sft_trl.py) echo "== $$script: skipped, an hour of SFT, and TRL from the bench extra: pip install -e '.[bench]'"; continue;; esac; \
	  case $$script in *preferences_trl.py) echo "== $$script: skipped, over an hour of DPO and GRPO, and TRL from the bench extra: pip install -e '.[bench]'"; continue;; esac; \
	  echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:  ## remove build outputs (keeps .venv)
	rm -rf site .cache .pytest_cache .ruff_cache
