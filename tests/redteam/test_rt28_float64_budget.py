"""rt28: the float64 second opinion runs out of its budget and an exact candidate is `incorrect`.

Attack (no trick in the candidate: it is the honest one): the task is a Conv3d (7x7x7, which
leaves oneDNN's fast path in float64: ~17x slower here) whose output gets an offset of 1e4 times
its largest magnitude added and taken away again; the candidate leaves the no-op out, so it is
nearer the exact answer than the reference (whose rounding at 1e4 x max misses the fixed
tolerance almost everywhere). Every call then needs the second opinion. The trial code asks for
one where `FLOAT64_SLOWDOWN * t_ref < call_timeout_s / 2` ("where one float64 forward fits"),
but one answer is 1 + NUDGES float64 forwards and NUDGES float32 ones plus two deep copies --
about 75x the float32 call here, more than the budget of half the time limit. The first call
of a round is judged, the budget is then spent, and the next missed call of the same round
gets no opinion (`answer` returns None) and fails the fixed tolerance: `incorrect`.
Measured here (2 cores, loaded): the call timeout at 150x the reference's float32 call:
`incorrect` ("trial, call 2: values differ", 2 calls rescued before); the same candidate and
task with the timeout at 700x: `same` 1.05x, correct, 37 calls rescued, 13 trials. At the
default 120 s the same arithmetic holds for reference calls of ~0.8-1.5 s (a heavy level-3
3-D net); past ~1.3 s a single answer outlasts the compare's own time limit and the verdict
is `rejected` ("the candidate's outputs could not be compared").
Honest outcome: correct (`same` here); a verdict that does not hinge on the time limit.
Root cause: sandboxes/eval_trials.py `_exchange` (the gate counts one float64 forward per
round, not (1 + NUDGES) per call for every call) and sandboxes/reference_error.py
`second_opinion` (budget spent: a missed call gets no opinion and is judged `incorrect`).
Fix idea: size the gate on n calls x ((1 + NUDGES) x FLOAT64_SLOWDOWN + NUDGES) forwards (or
time the first answer and extrapolate), give the compare its own limit that covers the budget,
and when the budget ends with calls unjudged say `unverified`, never `incorrect`.
Fixed: the gate counts a whole answer (reference_error.answer_cost: (1 + NUDGES) float64 and
NUDGES float32 forwards and the copies) against half the time limit; a call the budget left
unjudged is `unverified` ("ran out of time ... raise call_timeout_s"), not `incorrect`, where
the output is near enough the reference for an answer to pass it (reference_error._within_reach:
within FACTOR x REF_ERROR_CAP of its norm); a wrong output farther off is still `incorrect`.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = '''"""Conv3d (7x7x7), then an offset of 1e4 times its largest magnitude added and taken away again."""
import torch
import torch.nn as nn

batch_size = 1
in_channels = 8
out_channels = 8
depth, height, width = 24, 32, 32
kernel_size = 7


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, bias=False)

    def forward(self, x):
        y = self.conv(x)
        s = 1e4 * y.abs().amax()
        return (y + s) - s


def get_inputs():
    return [torch.rand(batch_size, in_channels, depth, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
'''

SOLUTION = '''"""The add-then-subtract is the identity: left out, and the rounding it costs with it."""
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, bias=False)

    def forward(self, x):
        return self.conv(x)
'''


def _float32_call_s() -> float:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        conv = torch.nn.Conv3d(8, 8, 7, bias=False)
        x = torch.rand(1, 8, 24, 32, 32)
        with torch.no_grad():
            conv(x)
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                y = conv(x)
                s = 1e4 * y.abs().amax()
                (y + s) - s
                best = min(best, time.perf_counter() - t)
            copy.deepcopy(conv)
    finally:
        torch.set_num_threads(threads)
    return best


@pytest.mark.parametrize("timeout_x", [1500, 20])  # answers fit the budget for a while; none does
def test_exact_candidate_is_not_incorrect_for_want_of_float64_time(tmp_path: Path, timeout_x: int) -> None:
    res, _ = _evaluate(tmp_path, SOLUTION, timeout_x)
    assert res["verdict"] in ("same", "faster", "slower", "unverified"), (res["verdict"], res.get("reason"))
    if res["verdict"] == "unverified":
        assert "ran out of time" in res["reason"] and res["correct"] is False, res["reason"]


def test_an_output_too_far_off_for_any_second_opinion_is_still_incorrect(tmp_path: Path) -> None:
    res, _ = _evaluate(tmp_path, SOLUTION.replace("return self.conv(x)", "return self.conv(x) * 1.1"), 20)
    assert res["verdict"] == "incorrect" and "ran out of time" not in res["reason"], res.get("reason")


def _evaluate(tmp_path: Path, solution_text: str, timeout_x: int) -> tuple[dict, float]:
    task, solution = tmp_path / "task.py", tmp_path / "solution.py"
    task.write_text(TASK)
    solution.write_text(solution_text)
    cfg = EvalConfig(max_timing_s=1, rounds=6, call_timeout_s=timeout_x * _float32_call_s(), setup_timeout_s=120,
                     confirm=False, quality_seeds=2, threads=1)
    return evaluate(task, solution, cfg), cfg.call_timeout_s


SLOW_FLOAT64_TASK = '''"""Doubles its input, then adds and takes away 1e4 times its mean magnitude; float64 is slow."""
import time

import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        if x.dtype == torch.float64:
            time.sleep(0.15)  # an op with no fast float64 path
        y = x * 2
        s = 1e4 * y.abs().mean()
        return (y + s) - s


def get_inputs():
    return [torch.rand(64, 256)]


def get_init_inputs():
    return []
'''

EXACT = '''
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x * 2
'''


def test_the_second_opinions_time_is_capped_over_an_evaluation(tmp_path: Path) -> None:
    """Every call of the exact candidate misses the fixed tolerance and needs an answer (4
    float64 forwards of 0.15 s): uncapped, each round spent up to half the call limit on them
    (the rounds' 2 s each, about 16 s here); capped, the call limit over the evaluation."""
    task, solution = tmp_path / "task.py", tmp_path / "solution.py"
    task.write_text(SLOW_FLOAT64_TASK)
    solution.write_text(EXACT)
    cfg = EvalConfig(max_timing_s=1, rounds=5, call_timeout_s=4.0, setup_timeout_s=120, confirm=False,
                     quality_seeds=2, threads=1)
    res = evaluate(task, solution, cfg)
    assert res["verdict"] in ("same", "faster", "slower", "unverified"), (res["verdict"], res.get("reason"))
    assert res["checks"].get("float64_reference", 0) > 0, res["checks"]  # the opinion did judge some calls
    assert res["checks"]["float64_s"] <= cfg.call_timeout_s + 1.0, res["checks"]["float64_s"]


def test_a_reworded_verdict_keeps_whether_its_outputs_were_judged() -> None:
    """Red team 33: the fresh pair's re-raise rebuilt the Verdict from verdict and reason, so an
    `unverified` whose outputs the second opinion had no time for came out `correct` there."""
    from kopt.sandboxes.eval_session import Verdict

    v = Verdict("unverified", "ran out of time", compiled=True, checked=False).reworded("on a fresh pair: ...")
    assert (v.verdict, v.reason, v.compiled, v.checked) == ("unverified", "on a fresh pair: ...", True, False)
