"""What a `--test` run says it ran: the counts in its test runners' own summaries.

The exit status alone is not the tests' verdict: pytest exits 0 when every test skips, and a
patch that raised `unittest.SkipTest` from the function under optimization for every input
but the bench's "passed" its tests with all of them skipped (red team 30). The candidate's run
must report what the original's did: the same passed, skipped, deselected, expected-failure
counts in every summary line (pytest's `3 passed, 1 skipped in 0.2s`, unittest's `Ran 4 tests`
and `OK (skipped=1)`), in the same order. Where the original's output has no summary this
says nothing (another runner, a Makefile's own checks): the exit status stays the test.
"""
from __future__ import annotations

import re

PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?)\b")
PYTEST_LINE = re.compile(r"^=*\s*\d+ (?:passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)\b"
                         r".* in [\d.]+\s*s(?:econds)?\b")
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
UNITTEST_RESULT = re.compile(r"^(?:OK|FAILED)(?: \((.*)\))?$")


def tally(output: str) -> list[dict[str, int]]:
    """One dict of counts per summary line of OUTPUT, in order (warnings left out: a patch may
    warn where the original did not)."""
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
    return found


def differs(original: list[dict[str, int]], output: str) -> str | None:
    """Why a candidate's test OUTPUT does not report what the ORIGINAL's tally did, or None."""
    if not original:
        return None
    got = tally(output)
    if got == original:
        return None
    return (f"--test reports {_spell(got) or 'no test summary'} where the original's reports {_spell(original)}: "
            f"every test the original ran must run and pass the same way (none skipped, deselected or left out)")


def _spell(counts: list[dict[str, int]]) -> str:
    return "; ".join(", ".join(f"{n} {word}" for word, n in c.items()) for c in counts)
