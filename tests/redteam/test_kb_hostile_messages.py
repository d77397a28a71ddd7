"""A hostile message from the candidate's worker is a verdict on the candidate (issue 16, item 4).

The solution finds the worker's reply pipe and alarm pipe (their numbers are on its
command line) and writes to them itself. Before: a 1 GiB frame header made kopt allocate
1 GiB and wait; an unfinished frame or a newline-less flood of the alarm pipe stalled it;
unreadable output bytes crashed it; a comparison the outputs made raise was blamed on the
task (exit 2). Now each is `rejected` with a one-line reason, in bounded time and memory.
"""
from __future__ import annotations

import resource
import time

import pytest

from tests.redteam._kb import FIXTURES, run, write

pytest.importorskip("torch")

RELU = FIXTURES / "tasks" / "relu.py"

PRELUDE = '''
import json, os, struct, sys, threading, time
import torch
import torch.nn as nn

def fd(name):
    return int(sys.argv[sys.argv.index(name) + 1])

def frame(header, payload=b""):
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<II", len(body), len(payload)) + body + payload

'''

FORWARD_WRITES = PRELUDE + '''
class ModelNew(nn.Module):
    def forward(self, x):
        os.write(fd("--fd-out"), __BYTES__)
        time.sleep(__SLEEP__)
        return torch.relu(x)
'''

ATTACKS = {
    # name: (bytes written as the reply, seconds to sleep after, words the reason must hold)
    "declares a 1 GiB frame": ('struct.pack("<II", 2, 1 << 30) + b"{}"', 600, "too large"),
    "header that is not JSON": ('struct.pack("<II", 5, 0) + b"{{{{{"', 600, "bad frame header"),
    "frame never finished": ('struct.pack("<II", 40, 0) + b\'{"ok": true\'', 600, "deadline"),
    "ok flag of the wrong type": ('frame({"ok": "yes"})', 600, "malformed reply"),
    "error of an unknown kind": ('frame({"ok": False, "kind": "correct", "error": "x"})', 600, "malformed reply"),
    "outputs that are not a blob": ('frame({"ok": True}, b"\\x10\\x00\\x00\\x00garbage-garbage-garbage")', 600,
                                    "unreadable"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_malformed_reply_is_rejected_in_bounded_time_and_memory(tmp_path, attack):
    data, sleep, words = ATTACKS[attack]
    sol = write(tmp_path, "hostile.py", FORWARD_WRITES.replace("__BYTES__", data).replace("__SLEEP__", str(sleep)))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    res = run(RELU, sol, call_timeout_s=10)
    assert res["verdict"] == "rejected" and words in res["reason"], (res["verdict"], res.get("reason"))
    assert time.monotonic() - t0 < 90
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 256 << 10  # KiB: under 256 MiB more


ALARM_FLOOD = PRELUDE + '''
def flood():
    while True:
        try:
            os.write(fd("--fd-alarm"), b"x" * 65536)
        except OSError:
            return

threading.Thread(target=flood, daemon=True).start()

class ModelNew(nn.Module):
    def forward(self, x):
        return torch.relu(x)
'''


def test_alarm_pipe_flood_without_newline_is_rejected_not_a_stall(tmp_path):
    t0 = time.monotonic()
    res = run(RELU, write(tmp_path, "flood.py", ALARM_FLOOD))
    assert res["verdict"] == "rejected" and "flooded the alarm channel" in res["reason"], res.get("reason")
    assert time.monotonic() - t0 < 90


BREAKS_THE_COMPARISON = '''
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    """Right outputs, then the input gets new storage in place: its shape no longer matches the
    reference's input, and comparing the two raises inside the reference's worker."""
    def forward(self, x):
        y = torch.relu(x)
        x.set_(torch.zeros(2, *x.shape))  # still takes the next call's values (broadcast)
        return y
'''


def test_outputs_that_make_the_comparison_raise_are_rejected_not_blamed_on_the_task(tmp_path):
    res = run(RELU, write(tmp_path, "breaks_compare.py", BREAKS_THE_COMPARISON))
    # the checks now compare such inputs without raising: the in-place change itself fails
    assert res["correct"] is False and res["verdict"] in ("rejected", "incorrect"), res.get("reason")
    assert "could not be compared" in res["reason"] or "in place" in res["reason"], res.get("reason")
