"""rt10: a candidate writes far past its build folder's cap onto the host's disk within one stage.

Attack: in ModelNew.__init__ (setup, up to `setup_timeout_s` = 600 s by default) the solution
finds its writable build folder (the only host-backed writable mount, under
~/.cache/kopt/sbx-run/: $KOPT_CACHE_DIR, or /proc/self/mountinfo before ad6fffe) and writes 64 MiB `.o` files into it --
RLIMIT_FSIZE (2 GiB) bounds a file, nothing bounds how many.
Before: "RuntimeError: wrote 1536 MB into /root/.cache/kopt/sbx-run/run-..." -- three times the
512 MB cap, on the host's root filesystem (76 GB free here: at ~1 GB/s a setup fills it in a
minute or two, and kopt's run store, eval cache and every other evaluation fail with it).
`_check_cache_size` only looks after the stage; the folder is deleted afterwards (and a
folder kept just under the cap is promoted, up to 512 MB of junk per distinct source, with no
cap on ~/.cache/kopt/sbx as a whole: a search's candidates that differ by a comment each keep
their own).
After: rejected, "the solution wrote 528-564 MB into its build folder (at most 512 MB; seen
during 'setup')": kopt measures the folder every 0.05 s while it waits for any reply.
Root cause: the cap is checked from outside between stages (eval_session._check_cache_size,
local.Worker.kill), not enforced by the kernel while the candidate writes.
Fix: give the worker a build folder the kernel caps -- a tmpfs (or loop image / project quota)
of `cache_mb` mounted in the jail and copied out at close -- and bound the shared cache's
total size (evict oldest) so promotion cannot grow it without end.
"""
from __future__ import annotations

import re
from pathlib import Path

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
SOLUTION = '''
import os
import torch

CHUNK = b"\\0" * (64 << 20)


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        folder = os.environ["KOPT_CACHE_DIR"]  # the worker's own writable build folder (/proc is confined now)
        wrote = 0
        try:
            for i in range(24):  # 1.5 GiB, three times the folder's 512 MB cap
                with open(os.path.join(folder, f"blob{i}.o"), "wb") as f:
                    f.write(CHUNK)
                wrote += len(CHUNK)
        except OSError as e:
            raise RuntimeError(f"wrote {wrote >> 20} MB then {e}") from None
        raise RuntimeError(f"wrote {wrote >> 20} MB into {folder}")

    def forward(self, x):
        return torch.relu(x)
'''


def test_build_folder_cap_holds_during_setup(tmp_path: Path) -> None:
    sol = tmp_path / "fill.py"
    sol.write_text(SOLUTION)
    res = evaluate(TASK, sol, EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60))
    wrote = re.search(r"wrote (\d+) MB", res.get("reason") or "")
    # kopt measures the folder every 0.05 s while it waits (eval_channel.CACHE_POLL_S): 520-750 MB
    # here; the bound leaves room for a faster disk or a busy kopt
    assert wrote is None or int(wrote.group(1)) <= 1024, res.get("reason")
    assert res["verdict"] == "rejected", res
