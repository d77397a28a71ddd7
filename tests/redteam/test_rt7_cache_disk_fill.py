"""Red team 7: a candidate fills the host's disk through its writable build-cache folder.

The folder (`$KOPT_CACHE_DIR`, on the host disk) has no quota while the worker runs: the
per-file limit is 2 GB and the number of files is not limited; the 512 MB cap is applied
only when the worker is killed. A solution that wrote 3 x 200 MB at import had 601 MB of the
host's disk while its evaluation ran (and as long as 6 h after, when kopt itself was killed).
It should be stopped (`rejected`) once the folder passes its cap.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

FILLER = '''
import os

import torch
import torch.nn as nn

_block = b"\\0" * (1 << 20)
for k in range(3):
    with open(os.path.join(os.environ["KOPT_CACHE_DIR"], f"fill{k}.bin"), "wb") as f:
        for _ in range(200):
            f.write(_block)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


def test_a_candidate_filling_its_cache_folder_is_stopped(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("KOPT_CACHE_DIR", str(world_readable()))  # kopt's cache root: a scratch one
    d = world_readable()
    res = run(write(d, "task.py", relu_task(8, 64)), write(d, "filler.py", FILLER))
    assert res["verdict"] == "rejected", res
