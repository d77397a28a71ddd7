"""Red team 35 (honest), repository target, output check (`OutputCheck.empty`, round 34's
rule): a bench that checks its own result and prints the verdict on its timing line
(`check passed in 361.4 ms`, `check FAILED in ...` when wrong). The rule skips every line
holding a masked number and no unmasked one as "labels only", so the word that is the answer
(`passed`) is never counted: the output is `empty` and every honest faster patch comes out
`unverified` ("the bench prints nothing but its metric and timings"), though a wrong answer
would change the line and be caught.
Observed: `empty` is True. Expected: False (the line's words are compared and say something)."""

from __future__ import annotations

from kopt.agent.targets.repo.outputs import OutputCheck


def test_a_verdict_word_beside_the_timing_is_something_to_check():
    runs = ["check passed in 361.4 ms\n", "check passed in 355.0 ms\n", "check passed in 370.9 ms\n"]
    check = OutputCheck(None, runs[0])
    for other in runs[1:]:
        check.learn(other)
    assert check.differs("check FAILED in 12.0 ms\n") is not None  # a wrong answer is caught...
    assert check.differs("check passed in 12.0 ms\n") is None
    assert not check.empty, check.describe()  # ...so the bench vouches for it
