"""The bench's output must be the original's, apart from the number it measures.

A bench that prints its answer checks the candidate on every measured run: code that is
right only under the test runner (it looks for `pytest` or `unittest` in sys.modules), or
a bench cut short, prints something else. The metric is masked (`--bench-metric`); where
the original's own output varies between its runs, the decimal numbers that varied are
masked (its timings) and every other one is still compared; where the rest of it varies
too, the check is off and says so. Masking every decimal number once one varied let a
printed float answer go unchecked: a patch that sampled 1 in 20 terms for the bench's size
was `faster` and correct, its `result:` line masked beside a varying timing line (red team 9).
"""
from __future__ import annotations

import re

from kopt.agent.targets.repo.shell_commands import FLOAT, normalised

PRINTED = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
LITERAL = re.compile(r"(?<![\w.])\d[\d_]*(?:\.[\d_]*)?(?:[eE][-+]?\d+)?(?![\w.])")
ANSWER_DIGITS = 4  # a printed number with fewer significant digits (10, 1000, 0.5) is too common to tell


def _significant(number: str) -> int:
    mantissa = re.split(r"[eE]", number.lstrip("+-"))[0]
    digits = mantissa.replace(".", "").lstrip("0")
    return len(digits.rstrip("0")) if "." not in mantissa else len(digits)


class OutputCheck:
    def __init__(self, metric: str | None, reference: str):
        self.metric, self.reference = metric, reference
        self.floats, self.off = False, False
        self.expected = normalised(reference, metric)
        self.numbers = FLOAT.findall(self.expected)  # the first run's decimal numbers, in order
        self.varying: set[int] = set()  # which of them another run of the original printed otherwise

    def learn(self, reference: str) -> None:
        """Another run of the original: loosen the check as far as its own output varies."""
        if self.off or normalised(reference, self.metric) == self.expected:
            return
        if normalised(reference, self.metric, True) != normalised(self.reference, self.metric, True):
            self.off = True  # more than its decimal numbers varies
            return
        self.floats = True
        numbers = FLOAT.findall(normalised(reference, self.metric))
        self.varying |= {i for i, (a, b) in enumerate(zip(self.numbers, numbers)) if a != b}

    def _masked(self, output: str) -> str:
        """OUTPUT with the metric masked and, once the original's numbers varied, the ones that did."""
        text = normalised(output, self.metric)
        if not self.floats:
            return text
        at = iter(range(1 << 62))
        return FLOAT.sub(lambda m: "<num>" if next(at) in self.varying else m.group(0), text)

    def differs(self, output: str) -> str | None:
        """Where a candidate's output departs from the original's, or None."""
        if self.off:
            return None
        want, got = self._masked(self.reference), self._masked(output)
        if got == want:
            return None
        want_lines, got_lines = want.splitlines(), got.splitlines()
        for i in range(max(len(want_lines), len(got_lines))):
            w = want_lines[i] if i < len(want_lines) else "(nothing)"
            have = got_lines[i] if i < len(got_lines) else "(nothing)"
            if w != have:
                return f"line {i + 1} is {have[:120]!r} where the original printed {w[:120]!r}"
        return "the output differs"

    def answers(self) -> set[str]:
        """The numbers every run of the original printed alike (its answer, not its timings or
        the metric), with enough digits to be told from a common constant."""
        if self.off:
            return set()
        return {n for n in PRINTED.findall(self._masked(self.reference)) if _significant(n) >= ANSWER_DIGITS}

    def memorised(self, patch: str, baseline: str = "") -> str | None:
        """The first line the patch adds (the user's baseline did not) holding a number the
        original's bench printed as its answer, or None. Red team 10: `if n == 3_000_000:
        return 5999999` -- the bench's answer for its one input -- was `faster` 6.6x and
        correct, its output the original's."""
        printed = {float(n): n for n in self.answers()}
        if not printed:
            return None
        own, removed = set(baseline.splitlines()), {line[1:] for line in patch.splitlines() if line.startswith("-")}
        for line in patch.splitlines():
            if not line.startswith("+") or line.startswith("+++") or line in own:
                continue
            for literal in LITERAL.findall(line[1:]):
                value = float(literal.replace("_", ""))
                if value in printed and not any(literal in r for r in removed):
                    return f"{printed[value]} in `{line[1:].strip()[:80]}`"
        return None

    @property
    def empty(self) -> bool:
        """Nothing but the masked metric (or nothing at all) to compare: the bench cannot vouch
        for the answer (code right only under the test runner passed as `faster`: red team 7)."""
        rest = re.sub(self.metric, "", self.reference, flags=re.M) if self.metric else self.reference
        return not self.off and not (FLOAT.sub("", rest) if self.floats and len(self.varying) == len(self.numbers)
                                     else rest).strip()

    def describe(self) -> str:
        if self.off:
            return "not checked: the original's output varies between its runs"
        if self.empty:
            return "nothing to check: the bench prints only its metric (print its result to check it)"
        masked = f"metric and the {len(self.varying)} decimal number(s) its own runs vary in" if self.floats \
            else "metric"
        return f"same as the original's ({masked} masked)"
