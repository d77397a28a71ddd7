"""Red team 7: the harness's input mapping (`sealed_inputs.map_inputs`) replaced for good at
import was never noticed: `sealed_inputs` is the one module of the timed path outside the
guard's list (harness_watch.guarded), so the patched copy (here: without MADV_POPULATE_READ)
ran every timed call and the verdict was `same`, not `rejected`."""
from __future__ import annotations

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

PATCHED = '''
import mmap
import os
import sys

import torch
import torch.nn as nn

_si = sys.modules["kopt.sandboxes.sealed_inputs"]
_proto = sys.modules["kopt.sandboxes.protocol"]


def map_inputs(fd, torch_):
    size = os.fstat(fd).st_size
    mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE) if size else None
    os.close(fd)
    return mapped, _proto.decode(mapped if mapped is not None else b"", torch_, copy=False)


_si.map_inputs = map_inputs


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


def test_a_replaced_input_mapping_is_tampering():
    pytest.importorskip("torch")
    d = world_readable()
    res = run(write(d, "task.py", relu_task(8, 256)), write(d, "patched.py", PATCHED))
    assert res["verdict"] == "rejected" and "harness" in res["reason"], res
