"""Red team 7: a candidate filled the host's disk through its writable build folder
(`$KOPT_CACHE_DIR`, 600 MB at import, 76 GB free): its 512 MB cap was looked at only when the
folder was removed. kopt now checks the folder's size after every stage: `rejected`. (A sparse
file stands in for the data here: the size is what is checked.)"""
from __future__ import annotations

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

FILLS = '''
import os
import torch
import torch.nn as nn

with open(os.path.join(os.environ["KOPT_CACHE_DIR"], "fill.bin"), "wb") as f:
    f.truncate(600 << 20)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


def test_a_build_folder_past_its_cap_is_rejected():
    pytest.importorskip("torch")
    d = world_readable()
    res = run(write(d, "task.py", relu_task(64, 64)), write(d, "solution.py", FILLS))
    assert res["verdict"] == "rejected" and "build folder" in res["reason"], res
