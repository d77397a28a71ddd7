"""The doctests a `--test` command runs by file (`python -m doctest lib/work.py`): which ran.

A hot file the test command names only to run its doctests may change (red team 34), but
`python -m doctest FILE` prints nothing when every example passes, so its output cannot say
how many ran: a patch that kept every docstring as it was and made doctest's finder miss them
(`setattr(total, "__doc__", None)`, an example moved into an inner function: red teams 35-36)
passed its tests. So kopt runs the same interpreter's `-m doctest -v` on each such file, in
both trees, and every example the original ran and passed must run and pass for the
candidate. (A file a command runs as its script -- `python lib/work.py` -- is its test runner
and stays protected: `runner_of`.) The examples' code runs in that process and could print
this report itself, as for pytest's (red team 31's residual).
"""
from __future__ import annotations

import collections
import fnmatch
import re

# a doctest run of the test command: the interpreter and its options up to `-m doctest`, then
# the run's own options and files up to the next shell separator
INTERPRETER = re.compile(r"\S*python[\w.]*")
DOCTEST = re.compile(rf"({INTERPRETER.pattern}(?:\s+-\S+)*\s+-m\s+doctest)([^;&|\n]*)")
RUNNER = re.compile(r"-m\s+doctest\b|\bpy\.?test\b|--doctest-modules")


def runner_of(command: str, rel: str) -> bool:
    """Whether COMMAND names the file REL only for a test runner to load (doctest, pytest), never
    as the script an interpreter runs (`python -u lib/work.py`, its options skipped: red team 37)."""
    for segment in re.split(r"&&|\|\||[;|\n]", command):
        words = segment.split()
        for i, word in enumerate(words):
            if not fnmatch.fnmatchcase(rel, word.removeprefix("./")):  # a glob (`lib/*.py`) names it too
                continue
            runs = [j for j in range(i) if INTERPRETER.fullmatch(words[j])]
            if runs and not {"-m", "-c"} & set(words[runs[-1] + 1:i]):
                return False  # the interpreter's script
            if not RUNNER.search(segment):
                return False
    return bool(RUNNER.search(command))


def verbose_commands(test: str) -> list[str]:
    """Each `-m doctest` run of the test command again with `-v`, its options and files kept
    (`-o NORMALIZE_WHITESPACE` dropped, every example failed on the original: red team 37)."""
    return [f"{m.group(1)} -v{m.group(2)}".rstrip() for m in DOCTEST.finditer(test)]


def passed_examples(output: str) -> collections.Counter:
    """Each example a `doctest -v` run tried and passed (`Trying:`, the example, `Expecting:`,
    its output, then `ok`), as its source and expected output: an expected output rewritten to
    fit a wrong function was the same example by its source alone (red team 37)."""
    found: collections.Counter = collections.Counter()
    lines, i = output.splitlines(), 0
    while i < len(lines):
        if lines[i] != "Trying:":
            i += 1
            continue
        source, i = [], i + 1
        while i < len(lines) and lines[i].startswith("    "):
            source.append(lines[i].strip())
            i += 1
        want = []
        if i < len(lines) and lines[i] == "Expecting:":
            i += 1
            while i < len(lines) and lines[i].startswith("    "):
                want.append(lines[i][4:])
                i += 1
        elif i < len(lines) and lines[i] == "Expecting nothing":
            i += 1
        if i < len(lines) and lines[i] == "ok":
            found["\n".join(source) + "\n->\n" + "\n".join(want)] += 1
    return found


def lost(original: collections.Counter, output: str) -> str | None:
    """The first example the original passed that the candidate's `-v` OUTPUT did not, or None."""
    if missing := original - passed_examples(output):
        return next(iter(missing)).splitlines()[0][:60]
    return None
