"""The bench's output must be the original's, apart from the number it measures.

A bench that prints its answer checks the candidate on every measured run: code that is
right only under the test runner (it looks for `pytest` or `unittest` in sys.modules), or
a bench cut short, prints something else. The metric is masked (`--bench-metric`); where
the original's own output varies between its runs, decimal numbers are masked too (its
timings), and where it still varies the check is off and says so.
"""
from __future__ import annotations

import re

from kopt.agent.targets.repo.shell_commands import FLOAT, normalised


class OutputCheck:
    def __init__(self, metric: str | None, reference: str):
        self.metric, self.reference = metric, reference
        self.floats, self.off = False, False
        self.expected = normalised(reference, metric)

    def learn(self, reference: str) -> None:
        """Another run of the original: loosen the check as far as its own output varies."""
        if self.off or normalised(reference, self.metric, self.floats) == self.expected:
            return
        self.floats = True
        self.expected = normalised(self.reference, self.metric, True)
        if normalised(reference, self.metric, True) != self.expected:
            self.off = True

    def differs(self, output: str) -> str | None:
        """Where a candidate's output departs from the original's, or None."""
        if self.off:
            return None
        got = normalised(output, self.metric, self.floats)
        if got == self.expected:
            return None
        want_lines, got_lines = self.expected.splitlines(), got.splitlines()
        for i in range(max(len(want_lines), len(got_lines))):
            want = want_lines[i] if i < len(want_lines) else "(nothing)"
            have = got_lines[i] if i < len(got_lines) else "(nothing)"
            if want != have:
                return f"line {i + 1} is {have[:120]!r} where the original printed {want[:120]!r}"
        return "the output differs"

    @property
    def empty(self) -> bool:
        """Nothing but the masked metric (or nothing at all) to compare: the bench cannot vouch
        for the answer (code right only under the test runner passed as `faster`: red team 7)."""
        rest = re.sub(self.metric, "", self.reference, flags=re.M) if self.metric else self.reference
        return not self.off and not (FLOAT.sub("", rest) if self.floats else rest).strip()

    def describe(self) -> str:
        if self.off:
            return "not checked: the original's output varies between its runs"
        if self.empty:
            return "nothing to check: the bench prints only its metric (print its result to check it)"
        masked = "metric and decimal numbers" if self.floats else "metric"
        return f"same as the original's ({masked} masked)"
