# Two entry points, both self-installing on a fresh machine:
#   make demo   validate every spec; train a small spec on synthetic clips into the model store,
#               show the store, summarise, draw and reload it (the main job; resumes if stopped)
#   make test   lint (ruff), type-check (mypy --strict), run the test suite (pytest) and build
#               the docs with warnings as errors
#   make docs   build the documentation site into site/ (mkdocs build --strict)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The reference implementation the tests compare against; torch and torchvision must match.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test lint typecheck docs schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

# Graphviz's `dot` draws SVG/PNG diagrams; installed when missing and apt-get is usable.
system-deps:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "graphviz is missing: install it (apt-get install graphviz / brew install graphviz)"; \
	    exit 1; \
	  fi; }

setup: $(STAMP) system-deps

demo: setup
	$(BIN)/video-interpreter demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest
	$(MAKE) docs

# The API reference is read from the docstrings of the checkout (mkdocs.yml: paths: [.]).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

schema: setup
	$(BIN)/video-interpreter schema

bench: setup
	for script in build zoo first_build load summary store distributed compress export cli_startup; do \
	  $(BIN)/python benchmarks/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache .hypothesis
