# Two entry points (see README): `make demo` and `make test`. Both create .venv and
# install what they need, and are safe to run again.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kopt-installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kopt optimize benchmarks/examples/activation_chain.py --budget 6

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
