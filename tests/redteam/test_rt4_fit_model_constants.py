"""Red team round 4: `--fit auto` scaled every size constant that shapes the inputs and is
not passed to the constructor -- including one the Model class reads itself. Upstream
level3/33_VanillaRNN builds `self.hidden` from the module's `batch_size`: the fitted task
used batch 2, a plain copy of the upstream file (its own `batch_size = 256`) did not, and
the honest copy was judged `runtime_error`. A constant the Model reads is never scaled."""
from __future__ import annotations

from pathlib import Path

import pytest

from kopt.agent.targets.kernelbench.sizes import size_constants

VANILLA_RNN = Path(__file__).resolve().parents[3] / "shared" / "kernelbench" / "level3" / "33_VanillaRNN.py"

SOURCE = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.state = torch.zeros(batch_size, n)

    def forward(self, x):
        return x + self.state


batch_size = 64
n = 32
length = 128


def get_inputs():
    return [torch.randn(batch_size, n), torch.randn(length)]


def get_init_inputs():
    return [n]
'''


def kinds(source: str) -> dict[str, str]:
    return {c.name: c.kind for c in size_constants(source)}


def test_a_constant_the_model_reads_is_not_scaled():
    k = kinds(SOURCE)
    assert k["batch_size"] == "structural", k
    assert k["length"] == "spatial", k  # read by get_inputs only: still scaled


@pytest.mark.skipif(not VANILLA_RNN.exists(), reason="upstream KernelBench not here")
def test_upstream_vanilla_rnn_keeps_its_batch():
    assert kinds(VANILLA_RNN.read_text())["batch_size"] == "structural"
