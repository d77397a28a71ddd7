"""Red team round 4: the candidate's reply to `gpu_state` was not validated. A solution that
patches `torch.cuda.memory_allocated` (or `gpu_timing.memory_state`) to answer a string made
kopt itself raise TypeError in `_check_gpu_memory` (a traceback, no verdict) on --device cuda.
Its fields are now checked like every other reply field: a malformed one is `rejected`."""
from __future__ import annotations

import pytest

from kopt.sandboxes.eval_channel import WorkerFailed, _valid_reply
from kopt.sandboxes.eval_session import Verdict
from kopt.sandboxes.eval_timing import _check_gpu_memory

HOSTILE = [{"allocated_mb": "9e9"}, {"allocated_mb": float("nan")}, {"allocated_mb": [1]},
           {"reserved_mb": {}}, {"wedged": "yes"}, {"error": 7}]


@pytest.mark.parametrize("fields", HOSTILE, ids=lambda f: repr(f))
def test_a_malformed_gpu_state_reply_is_rejected(fields):
    with pytest.raises(WorkerFailed) as e:
        _valid_reply({"ok": True, "wedged": False, **fields}, "gpu_state")
    assert e.value.kind == "rejected"


def test_an_honest_gpu_state_reply_passes():
    reply = {"ok": True, "wedged": False, "allocated_mb": 12.5, "reserved_mb": 64.0}
    assert _valid_reply(dict(reply), "gpu_state") == reply
    assert _valid_reply({"ok": True, "wedged": True, "error": "CUDA error"}, "gpu_state")["wedged"] is True


def test_kopt_gives_a_verdict_not_a_traceback():
    class Session:  # what kopt's channel hands _check_gpu_memory: the reply after validation
        def new_call(self, header):
            try:
                return _valid_reply({"ok": True, "wedged": False, "allocated_mb": "9e9"}, header["cmd"]), b""
            except WorkerFailed as e:
                raise Verdict(e.kind, e.message) from None

    with pytest.raises(Verdict) as v:
        _check_gpu_memory(Session(), {"ok": True, "wedged": False, "allocated_mb": 1.0}, {})
    assert v.value.verdict == "rejected"
