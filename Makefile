# Two entry points (see README): `make demo` and `make test`. Both create .venv and
# install what they need, and are safe to run again.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kopt-installed

# torch is pinned here and nowhere else. Without a working GPU (nvidia-smi fails) the CPU build
# comes from PyTorch's CPU wheel index: an *extra* index, so pip still finds everything else on
# PyPI or a local mirror, and 2.x.y+cpu wins over PyPI's multi-GB CUDA build of the same version.
# With a GPU, PyPI's default (CUDA) build.
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# (A machine that cannot reach the CPU index at all -- an offline mirror -- installs what its own
# index or wheel cache has, instead of retrying the unreachable one for every package.)
CPU_INDEX_UP = $(shell python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" \
	$(TORCH_CPU_INDEX)/torch/ >/dev/null 2>&1 && echo up)
TORCH_INDEX = $(if $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu),,$(if $(CPU_INDEX_UP),--extra-index-url \
	$(TORCH_CPU_INDEX),$(warning PyTorch CPU index unreachable: torch from the configured index)))

DEMO_RUN := runs/demo

.PHONY: demo test install clean gpu-check

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_INDEX)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_RUN)
	-$(VENV)/bin/kopt optimize benchmarks/examples/activation_chain.py --budget 6 --run-dir $(DEMO_RUN)
	$(PY) -m kopt.agent.cli.demo_check $(DEMO_RUN) README.md

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# One prepared acceptance run on a GPU machine (docs/gpu.md); `--dry-run` is what CI runs.
gpu-check: $(STAMP)
	$(PY) benchmarks/studies/gpu_acceptance.py

clean:
	rm -rf $(VENV) runs
