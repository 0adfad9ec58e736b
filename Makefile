# The whole set-up is two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# keyed by what decides the install: a change to either file reinstalls
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: demo test test-min lint docs benchmarks clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

# torch/torchvision are named first, at the versions whose wheels the machines carry, so that
# pip never pulls another (multi-GB) build; the project's own range admits them.
$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/pip install --quiet "torch<2.15" "torchvision<0.30"
	$(BIN)/pip install --quiet -e ".[dev,elpv,plot,docs,export,onnx,dask,parquet]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python benchmarks/run.py --demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# The oldest releases the project supports (the lower bounds in pyproject.toml), in their own
# venv, running the whole suite: what CI's `make test` (newest releases) cannot show.
MIN_VENV := .venv-min
MIN_PINS := "scikit-learn==1.6.0" "timm==1.0.8" "skorch==1.0.0" "skops==0.11.0"
test-min:
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1" || $(MIN_VENV)/bin/pip install --quiet "torch<2.15" "torchvision<0.30"
	$(MIN_VENV)/bin/pip install --quiet -e ".[dev,elpv,plot]" $(MIN_PINS)
	$(MIN_VENV)/bin/pip list 2>/dev/null | grep -iE "^(scikit-learn|timm|skorch|skops|numpy|scipy|torch) "
	$(MIN_VENV)/bin/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check skcpcae tests benchmarks examples

# -n -W: an unresolved reference or any warning fails the build (--keep-going lists them all)
docs: $(STAMP)
	$(BIN)/pip install --quiet -e ".[docs]"
	$(BIN)/sphinx-build -n -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(MIN_VENV) docs/_build build *.egg-info
