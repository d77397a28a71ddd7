"""Red team 7: forward installs, on a round's last call, a patch of what sends the reply
(`protocol._write_shm`, or `json.dumps` for the reply header) that puts the original back as
soon as it runs. The worker's guard ran only at the next request, when everything was the
original again: with the outputs written by forward straight into the reply memfd and only the
blob head written by the patch, a ReLU was `faster` 2.49x; the same trick on `json.dumps`
forges a GPU call's event times. The guard of the reply's path now runs again right before a
timed call's reply leaves (inside the clock, on both sides): `rejected`.
"""
from __future__ import annotations

import pytest

from tests.redteam._kb import relu_task, run, world_readable, write

ONE_SHOT = '''
import sys
import torch
import torch.nn as nn

_calls = [0]


def _arm():
    mod = sys.modules["MODULE"]
    original = getattr(mod, "NAME")

    def once(*args, **kwargs):
        if LAST:  # its own job done (the reply's header for json.dumps): gone before the next check
            setattr(mod, "NAME", original)
        return original(*args, **kwargs)

    setattr(mod, "NAME", once)


class ModelNew(nn.Module):
    def forward(self, x):
        _calls[0] += 1
        if _calls[0] > 3:
            _arm()
        return torch.relu(x)
'''


@pytest.mark.parametrize("module,name,last", [("kopt.sandboxes.protocol", "_write_shm", "True"),
                                              ("json", "dumps", "isinstance(args[0], dict) and 'ok' in args[0]")])
def test_a_patch_of_the_reply_path_undone_while_sending_is_seen(module, name, last):
    pytest.importorskip("torch")
    d = world_readable()
    task = write(d, "task.py", relu_task(64, 1024))
    text = ONE_SHOT.replace("MODULE", module).replace("NAME", name).replace("LAST", last)
    res = run(task, write(d, "solution.py", text))
    assert res["verdict"] == "rejected" and "patches the timer or harness" in res["reason"], res
