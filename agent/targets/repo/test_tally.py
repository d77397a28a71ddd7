"""What a `--test` run says it ran: its test runners' own summaries and passed test ids.

The exit status alone is not the tests' verdict: pytest exits 0 when every test skips, and a
patch that raised `unittest.SkipTest` from the function under optimization for every input
but the bench's "passed" its tests with all of them skipped (red team 30); with the counts
compared, a patch that skipped one test and let another (skipped before) run kept them
(red team 31). So pytest runs with `-rA` (`PYTEST_ADDOPTS`, see `shell_commands`), which lists
every test that passed by id, and the candidate's run must pass every test the original's
did (an xfail that now passes counts as passed; a new test passing is fine), with no more
skipped, deselected, xfailed, failed or erroring ones in any summary line (pytest's `3 passed, 1 skipped
in 0.2s`, unittest's `Ran 4 tests` / `OK (skipped=1)`). Where the original's output has none of
this, the exit status stays the test (another runner, a Makefile's own checks).
The tested code runs in the tests' process and could print all of this itself, ids included
(red team 31's xfail); the bench's output on two inputs is checked besides.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?)\b")
PYTEST_LINE = re.compile(r"^=*\s*\d+ (?:passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)\b"
                         r".* in [\d.]+\s*s(?:econds)?\b")
PASSED_ID = re.compile(r"^(?:PASSED|XPASS) (\S+)")
SHORT_SUMMARY = re.compile(r"^=+ short test summary info =+$")
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
UNITTEST_RESULT = re.compile(r"^(?:OK|FAILED)(?: \((.*)\))?$")
WORSE = ("failed", "skipped", "deselected", "xfailed", "error", "failures", "errors", "expected failures")


@dataclass(frozen=True)
class Tally:
    summaries: list[dict[str, int]] = field(default_factory=list)  # one per summary line, in order
    passed: frozenset[str] = frozenset()  # ids of the tests that passed (pytest -rA)

    def __bool__(self) -> bool:
        return bool(self.summaries or self.passed)

    @property
    def blind(self) -> bool:
        """Counts without ids where some test did not pass (unittest's `OK (skipped=1)`): a patch
        that skips one test and lets another run keeps them (red team 32)."""
        return not self.passed and any(c.get(k, 0) for c in self.summaries
                                       for k in ("skipped", "deselected", "xfailed", "expected failures"))


def tally(output: str) -> Tally:
    """The summaries and passed ids in OUTPUT (warnings left out: a patch may warn where the
    original did not)."""
    found: list[dict[str, int]] = []
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if PYTEST_LINE.match(line):
            found.append({word.rstrip("s") if word.startswith("error") else word: int(n)
                          for n, word in PYTEST_COUNT.findall(line)})
        elif m := UNITTEST_RAN.match(line):
            counts = {"ran": int(m.group(1))}
            result = next((UNITTEST_RESULT.match(x) for x in lines[i + 1:i + 4] if UNITTEST_RESULT.match(x)), None)
            for part in (result.group(1) or "").split(",") if result else []:
                key, _, value = part.strip().partition("=")
                if value.isdigit():
                    counts[key] = int(value)
            found.append(counts)
    return Tally(found, _passed_ids(lines))


def _passed_ids(lines: list[str]) -> frozenset[str]:
    """The PASSED/XPASS ids of the last `short test summary info` block, up to its summary line:
    a passing test's captured stdout (shown above it by -rA) printed `PASSED <id>` for a test
    that did not pass (red team 32)."""
    starts = [i for i, line in enumerate(lines) if SHORT_SUMMARY.match(line)]
    ids = set()
    for line in lines[starts[-1] + 1:] if starts else []:
        if PYTEST_LINE.match(line):
            break
        if m := PASSED_ID.match(line):
            ids.add(m.group(1))
    return frozenset(ids)


def differs(original: Tally, output: str) -> str | None:
    """Why a candidate's test OUTPUT falls short of what the ORIGINAL's tally reported, or None."""
    if not original:
        return None
    got = tally(output)
    if lost := sorted(original.passed - got.passed):
        more = f" (and {len(lost) - 3} more)" if len(lost) > 3 else ""
        return f"--test did not pass {', '.join(lost[:3])}{more}, which passed on the original (skipped or not run?)"
    if len(got.summaries) != len(original.summaries) or any(
            _short(o, c) for o, c in zip(original.summaries, got.summaries)):
        return (f"--test reports {_spell(got.summaries) or 'no test summary'} where the original's reports "
                f"{_spell(original.summaries)}: every test the original ran must run and pass (none skipped, "
                f"deselected or left out)")
    return None


def _short(original: dict[str, int], got: dict[str, int]) -> bool:
    """Whether GOT passed fewer tests than ORIGINAL or has more skipped, failed, ... ones."""
    if any(got.get(k, 0) > original.get(k, 0) for k in WORSE):
        return True
    return _passes(got) < _passes(original)


def _passes(c: dict[str, int]) -> int:
    if "ran" in c:  # unittest: what ran and neither skipped nor failed
        return c["ran"] - sum(c.get(k, 0) for k in ("skipped", "failures", "errors", "expected failures"))
    return c.get("passed", 0) + c.get("xpassed", 0)


def _spell(counts: list[dict[str, int]]) -> str:
    return "; ".join(", ".join(f"{n} {word}" for word, n in c.items()) for c in counts)
