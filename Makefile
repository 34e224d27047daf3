# The README's two Quickstart commands are `make demo` and `make test`.
# Both set everything up first (idempotent; re-runs only when pyproject.toml changes).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

# torch is installed first and pinned: 2.13.0 is the CPU build on this machine's disk;
# a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/qa-bot ask "算力小镇投资多少"

test: setup
	$(VENV)/bin/ruff check qa_bot tests bench scripts
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) embeddings .pytest_cache
