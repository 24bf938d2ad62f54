# The Math Inside LLMs: `make lab` to learn, `make test` to check everything.
# Both create the virtual environment .venv on first use (Python 3.11 or newer) and install the pinned versions
# from requirements.txt; later runs skip the install unless requirements.txt or pyproject.toml changed.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# JupyterLab refuses to run as root (as in containers) unless told it may.
ROOT_FLAG := $(shell [ "$$(id -u)" = "0" ] && echo --allow-root)

.PHONY: help setup lab test bench solutions execute lint clean browser-test

help:
	@echo "make lab        set up (first time) and open the course in JupyterLab"
	@echo "make test       set up (first time) and run all tests, every notebook included (quick mode)"
	@echo "make bench      speed and quality benchmarks (figures printed as ratios)"
	@echo "make solutions  write the instructors' answer key to build/solutions/"
	@echo "make execute    re-run every notebook in full mode and store its outputs"
	@echo "make lint       ruff over the package, tests and benchmarks"
	@echo "make browser-test  every widget of every notebook in JupyterLab and Chromium (needs chromium)"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "No python3 found: install Python 3.11 or newer."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); the course needs 3.11 or newer."; \
	  echo "Run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

setup: $(STAMP)
	@$(BIN)/python -m course_utils.real_tokenizers fetch || true  # GPT-2/GPT-4 rank files for notebook 10 (no-op when present)
	@$(BIN)/python -m course_utils.gguf_file fetch || true  # SmolLM2-135M-Instruct's GGUF file for Part 3 (no-op when verified)
	@$(BIN)/python -m course_utils.shakespeare fetch || true  # the second text of bench_modern.py --text shakespeare (no-op when verified)

lab: setup
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks $(ROOT_FLAG)

test: setup
	$(BIN)/python -m pytest

bench: setup
	@for f in benchmarks/bench_*.py; do echo; echo "=== $$f"; $(BIN)/python $$f || exit 1; done

solutions: setup
	$(BIN)/python -m course_utils.answer_key --out build/solutions $(if $(EXECUTE),--execute)

execute: setup
	@for nb in notebooks/[0-9][0-9]_*.ipynb; do echo "executing $$nb (full mode)"; \
	  $(BIN)/python -m course_utils.notebook_meta "$$nb" && \
	  COURSE_QUICK=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1800 "$$nb" || exit 1; done

lint: setup
	$(BIN)/ruff check course_utils tests benchmarks

clean:
	rm -rf build .pytest_cache data/cache

# ---- the browser test: every widget in a real JupyterLab with a real Chromium (Playwright from PyPI, driving the
# system's browser; Playwright's own browser download is never used). Its extra packages are in requirements-dev.txt.
DEV_STAMP := $(VENV)/.installed-dev
CHROMIUM  ?= $(shell command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || command -v google-chrome 2>/dev/null)

$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(DEV_STAMP)

browser-test: setup $(DEV_STAMP)
	@chromium="$(CHROMIUM)"; \
	if [ -z "$$chromium" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium: apt-get install -y chromium chromium-driver"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	      || { echo "error: apt-get could not install chromium"; exit 1; }; \
	    chromium=$$(command -v chromium); \
	  else \
	    echo "error: the browser test needs Chromium. Install it with:"; \
	    echo "    sudo apt-get update && sudo apt-get install -y chromium chromium-driver"; \
	    echo "or point to one: make browser-test CHROMIUM=/path/to/chromium"; \
	    exit 1; \
	  fi; \
	fi; \
	CHROMIUM="$$chromium" $(BIN)/python -m pytest browser_tests/test_widgets.py -v -s --durations=0
