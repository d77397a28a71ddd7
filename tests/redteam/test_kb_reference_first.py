"""Every extra trial is judged against the reference first (issue 16, item 1).

The stress-shape trial sets input-only sizes to 1; a convolution or pooling reference
cannot run there. Before, the candidate ran first, failed on the same shape and was
blamed (`runtime_error` for a plain copy of the reference). Now the reference runs first
and the trial is skipped, with the reason, in `checks.skipped`.
"""
from __future__ import annotations

import pytest

from kopt.sandboxes.eval_trials import edge_shapes
from tests.redteam._kb import KERNELBENCH, as_solution, run, shrink, write

pytest.importorskip("torch")

CONV_TASK = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    """A 1-D convolution with kernel 3: inputs shorter than 3 are an error."""
    def __init__(self, channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size)

    def forward(self, x):
        return torch.tanh(self.conv(x))

batch_size = 4
channels = 3
length = 24
kernel_size = 3

def get_inputs():
    return [torch.randn(batch_size, channels, length)]

def get_init_inputs():
    return [channels, kernel_size]
'''

# the odd stress shape's length for the task's length 24 (edge_shapes: tiny, then odd)
ODD_LENGTH = edge_shapes({"length": 24})[-1]["length"]

# a trick that is right only where the reference also runs (not a hostile solution: a fast path)
WRONG_ON_ODD = '''
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    def __init__(self, channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size)

    def forward(self, x):
        y = torch.tanh(self.conv(x))
        if x.shape[-1] == ODD_LENGTH:
            y = y + 1e-2
        return y
'''.replace("ODD_LENGTH", str(ODD_LENGTH))


def _assert_same_copy(res: dict) -> None:
    # What this file tests is the correctness side: the copy passes every trial and the
    # shapes the reference rejects are skipped, not blamed. The timing verdict of a copy this
    # small (microseconds of work in milliseconds of harness) is noise on a busy machine, and
    # `faster` would be a false claim, so only that is excluded here.
    assert res["correct"] is True and res["verdict"] in ("same", "slower"), \
        (res["verdict"], res.get("reason"), res["checks"])
    skipped = res["checks"].get("skipped", [])
    assert any("stress-shape" in s and "reference rejects" in s for s in skipped), skipped


def test_copy_of_a_conv_reference_is_same_when_the_reference_rejects_size_one(tmp_path):
    task = write(tmp_path, "conv_task.py", CONV_TASK)
    copy = write(tmp_path, "copy.py", as_solution(CONV_TASK))
    _assert_same_copy(run(task, copy))


def test_skipping_never_hides_a_wrong_answer_on_a_shape_the_reference_runs(tmp_path):
    """The odd stress shape (length ODD_LENGTH) runs in the reference, so it is still checked."""
    task = write(tmp_path, "conv_task.py", CONV_TASK)
    res = run(task, write(tmp_path, "odd.py", WRONG_ON_ODD))
    assert res["verdict"] == "incorrect" and f"length={ODD_LENGTH}" in res["reason"], res.get("reason")
    assert res["checks"]["mismatch"]["trial"].startswith("stress-shape"), res["checks"]["mismatch"]


UPSTREAM = {
    "level1/42_Max_Pooling_2D.py": {"batch_size": 2, "channels": 4, "height": 16, "width": 16},
    "level1/84_conv_depthwise_2D_asymmetric_input_square_kernel.py": {
        "batch_size": 2, "in_channels": 4, "out_channels": 4, "height_in": 12, "width_in": 16, "height": 12,
        "width": 16},
    "level2/4_Conv2d_Mish_Mish.py": {"batch_size": 2, "in_channels": 4, "out_channels": 8, "height": 12,
                                     "width": 12},
}


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_copy_of_an_upstream_conv_or_pool_task_is_same(tmp_path, name):
    path = KERNELBENCH / name
    if not path.exists():
        pytest.skip(f"no upstream KernelBench checkout at {KERNELBENCH} (tests read it in place when present)")
    source = shrink(path.read_text(), UPSTREAM[name])
    task = write(tmp_path, path.name, source)
    _assert_same_copy(run(task, write(tmp_path, "copy.py", as_solution(source))))
