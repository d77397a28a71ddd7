"""The static scan judges code, not names or comments (issue 16, red-team round 1).

`class ModelNew(Model)` over the solution's own pasted copy of Model is an honest copy
(the task's Model loaded from elsewhere is still caught by reuse.py: test_kb_reuse.py);
a comment saying "no cupy" made an honest copy `unverified` as a CuPy kernel never launched.
"""
from __future__ import annotations

import pytest

from kopt.sandboxes.static_scan import kernel_kind, scan
from tests.redteam._kb import FIXTURES, run, write

RELU = FIXTURES / "tasks" / "relu.py"


def test_subclassing_the_solutions_own_model_is_not_rejected():
    own = RELU.read_text() + "\n\nclass ModelNew(Model):\n    pass\n"
    assert scan(own).rejected is None
    imported = "from task import Model\n\nclass ModelNew(Model):\n    pass\n"
    assert scan(imported).rejected


@pytest.mark.parametrize("source,kind", [
    ("# plain PyTorch; no cupy, no triton, no ctypes here\nimport torch\n", "torch"),
    ('"""Not a cupy kernel: uses load_inline? no."""\nimport torch\nx = 1\n', "torch"),
    ("import cupy as cp\n", "cupy"),
    ("import importlib\ncp = importlib.import_module('cupy')\n", "cupy"),
    ("import triton\nimport triton.language as tl\n", "triton"),
    ("from torch.utils.cpp_extension import load_inline\nm = load_inline('m', cpp_sources='', "
     "cuda_sources=src)\n", "cuda"),
    ("src = '__global__ void k(float* x) {}'\n", "cuda"),
    ("import ctypes\n", "cpp"),
])
def test_kernel_kind_reads_code_not_comments(source, kind):
    assert kernel_kind(source) == kind


def test_honest_copies_that_name_cupy_or_subclass_their_own_model_pass(tmp_path):
    pytest.importorskip("torch")
    task = RELU.read_text()
    for sol in ("# no cupy or custom kernels here\n" + task.replace("class Model(", "class ModelNew("),
                task + "\n\nclass ModelNew(Model):\n    pass\n"):
        res = run(RELU, write(tmp_path, "sol.py", sol), max_timing_s=2, rounds=5, trials=2)
        assert res["correct"] is True and res["verdict"] in ("faster", "same", "slower"), \
            (res["verdict"], res.get("reason"))
