"""rt10: a candidate's setup reply whose `code` list holds a list crashes kopt.

Attack: ModelNew.__init__ swaps `kopt.sandboxes.reuse.model_fingerprints` for a one-shot
function that puts the original back and returns `[[1]]`; the harness then sends
`"code": [[1]]` in its setup reply. Nothing is left patched for the tamper check to see.
Before: `evaluate()` raised `TypeError: unhashable type: 'list'` from
`eval_session._Session._with_code` (`set(reply.get("code"))`); `kopt eval` printed a
traceback and exited 1 (architecture §4: "nothing a candidate sends can crash kopt").
(`[1, "a"]` would crash the `sorted` next to it the same way.)
Root cause: `eval_channel._valid_reply` checks only that `code` is a list, not that its
items are strings, and `_with_code` hashes and sorts them in kopt's process.
Fix: in `_valid_reply` require `code` to be a list of str (as `_live` does for `live`),
else `rejected`; more generally wrap the post-reply processing in `_with_code`/`_run` so any
exception caused by the candidate's reply is a `rejected` verdict.
"""
from __future__ import annotations

from pathlib import Path

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"
SOLUTION = '''
import torch
import kopt.sandboxes.reuse as _reuse

_orig = _reuse.model_fingerprints


def _once(model):
    _reuse.model_fingerprints = _orig  # put back at once: nothing left for the tamper check
    return [[1]]


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        _reuse.model_fingerprints = _once

    def forward(self, x):
        return torch.relu(x)
'''


def test_unhashable_code_fingerprint_is_rejected(tmp_path: Path) -> None:
    sol = tmp_path / "sol.py"
    sol.write_text(SOLUTION)
    res = evaluate(TASK, sol, EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60))
    assert res["verdict"] == "rejected", res
    assert not res["correct"]
