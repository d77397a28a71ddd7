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

COUNT = r"(?<!\d)(\d{1,12})(?!\d)"  # a count of more digits is no test run's (int() refuses 4,300: red team 34)
PYTEST_COUNT = re.compile(COUNT + r" (passed|failed|skipped|deselected|xfailed|xpassed|errors?)\b")
PYTEST_LINE = re.compile(r"^=*\s*\d+ (?:passed|failed|skipped|deselected|xfailed|xpassed|errors?|warnings?)\b"
                         r".* in [\d.]+\s*s(?:econds)?\b")
RECORD = re.compile(r"^(PASSED|XPASS|SKIPPED|XFAIL|ERROR|FAILED) (.+)$")  # a line of -rA's short summary
SHORT_SUMMARY = re.compile(r"^=+ short test summary info =+$")
UNITTEST_RAN = re.compile(r"^Ran " + COUNT + r" tests? in [\d.]+s$")
UNITTEST_RESULT = re.compile(r"^(?:OK|FAILED)(?: \((.*)\))?$")
WORSE = ("failed", "skipped", "deselected", "xfailed", "error", "failures", "errors", "expected failures")
NOT_RUN = ("skipped", "deselected", "xfailed", "expected failures")
# the runner's cut marker where the test report lines of a long output's middle did not all fit
# (sandboxes/repo_runner._collect): which tests passed is then not fully known
REPORT_CUT = re.compile(r"^\.\.\. \[\d+ lines cut, sha256 \w+; \d+ test report lines kept from them, more cut\]")


@dataclass(frozen=True)
class Tally:
    summaries: list[dict[str, int]] = field(default_factory=list)  # one per summary line, in order
    # (which summary, id) of each test that passed (pytest -rA): a test command running pytest
    # twice has each run's ids checked, not only the last run's (red team 34)
    passed: frozenset[tuple[int, str]] = frozenset()
    report_cut: bool = False  # the output's report lines did not all fit (REPORT_CUT)

    def __bool__(self) -> bool:
        return bool(self.summaries or self.passed)

    @property
    def blind(self) -> bool:
        """A summary that counts tests not run without saying which passed (unittest's `OK
        (skipped=1)`, a pytest run without -rA ids), whatever the other summaries listed (red
        team 34: a pytest run's ids beside a unittest run's skips), or report lines cut: a
        patch that skips one test and lets another run keeps the counts (red team 32)."""
        with_ids = {k for k, _ in self.passed}
        return self.report_cut or any(k not in with_ids and any(c.get(n, 0) for n in NOT_RUN)
                                      for k, c in enumerate(self.summaries))


def tally(output: str) -> Tally:
    """The summaries and passed ids in OUTPUT (warnings left out: a patch may warn where the
    original did not). A summary's ids are those of the `short test summary info` block just
    above it, from its last header: a passing test's captured stdout (shown above the block by
    -rA) printed `PASSED <id>` for a test that did not pass (red team 32)."""
    found: list[dict[str, int]] = []
    passed: set[tuple[int, str]] = set()
    block: list[tuple[str, str]] | None = None  # the records of the open short-summary block
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if SHORT_SUMMARY.match(line):
            block = []
        elif PYTEST_LINE.match(line):
            counts = {word.rstrip("s") if word.startswith("error") else word: int(n)
                      for n, word in PYTEST_COUNT.findall(line)}
            if "subtest" not in line:  # a test's subtests pass and skip inside it: its id tells nothing of
                # which ran (a skip swap between two subtests of one test, red team 36), so blind
                passed |= {(len(found), test_id) for test_id in _records_ids(block or [], counts)}
            found.append(counts)
            block = None
        elif block is not None and (m := RECORD.match(line)):
            block.append((m.group(1), m.group(2)))
        elif m := UNITTEST_RAN.match(line):
            counts = {"ran": int(m.group(1))}
            result = next((UNITTEST_RESULT.match(x) for x in lines[i + 1:i + 4] if UNITTEST_RESULT.match(x)), None)
            for part in (result.group(1) or "").split(",") if result else []:
                key, _, value = part.strip().partition("=")
                if value.isdigit() and len(value) <= 12:
                    counts[key] = int(value)
            found.append(counts)
    return Tally(found, frozenset(passed), any(REPORT_CUT.match(line) for line in lines))


def _records_ids(records: list[tuple[str, str]], counts: dict[str, int]) -> set[str]:
    """The passed ids of one block's RECORDS (outcome, rest), or none where pytest did not write
    them all: -rA lists every PASSED record first, then the skipped, xfailed, XPASS, error and
    failed ones, one per test its summary line counts. A skip's reason carried a second line
    `PASSED <id>` for the test it skipped (red team 35): a PASSED after another record, or
    more PASSED/XPASS records than tests passed, and no id of the block is believed."""
    outcomes = [outcome for outcome, _ in records]
    first_other = next((i for i, o in enumerate(outcomes) if o != "PASSED"), len(outcomes))
    if "PASSED" in outcomes[first_other:] or outcomes.count("PASSED") != counts.get("passed", 0) \
            or outcomes.count("XPASS") != counts.get("xpassed", 0):
        return set()
    return {_test_id(outcome, rest) for outcome, rest in records if outcome in ("PASSED", "XPASS")}


def _test_id(outcome: str, rest: str) -> str:
    """The whole id of a PASSED/XPASS line: ids may hold spaces (`test_total[n = 10]`, cut at
    the first space two ids were one: red team 34); an XPASS line may end in ` - reason`."""
    if outcome == "XPASS":
        params_end = rest.rfind("]") + 1
        if (dash := rest.find(" - ", params_end)) >= 0:
            return rest[:dash]
    return rest


def differs(original: Tally, output: str) -> str | None:
    """Why a candidate's test OUTPUT falls short of what the ORIGINAL's tally reported, or None."""
    if not original:
        return None
    got = tally(output)
    if lost := sorted(original.passed - got.passed):
        more = f" (and {len(lost) - 3} more)" if len(lost) > 3 else ""
        return (f"--test did not pass {', '.join(test_id for _, test_id in lost[:3])}{more}, which passed on the "
                f"original (skipped or not run?)")
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
