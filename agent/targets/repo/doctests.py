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
import re
import shlex

DOCTEST = re.compile(r"(\S*python[\w.]*)\s+-m\s+doctest\b")
RUNNER = re.compile(r"-m\s+doctest\b|\bpy\.?test\b|--doctest-modules")


def runner_of(command: str, rel: str) -> bool:
    """Whether COMMAND names the file REL for a test runner to load (doctest, pytest), not as the
    script an interpreter runs."""
    words = command.split()
    if not RUNNER.search(command):
        return False
    for i, word in enumerate(words):
        if word.removeprefix("./") == rel and i and re.fullmatch(r"\S*python[\w.]*", words[i - 1]):
            return False
    return True


def verbose_commands(test: str, files: set[str], subdir: str = "") -> list[str]:
    """`python -m doctest -v FILE` for each of FILES (repository paths) the test command runs
    with `-m doctest` (paths as seen from SUBDIR, where commands run)."""
    if not (m := DOCTEST.search(test)):
        return []
    prefix = f"{subdir}/" if subdir else ""
    return [f"{m.group(1)} -m doctest -v {shlex.quote(rel.removeprefix(prefix))}" for rel in sorted(files)]


def passed_examples(output: str) -> collections.Counter:
    """The source of each example a `doctest -v` run tried and passed (`Trying:`, the example,
    `Expecting:`, its output, then `ok`)."""
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
        if i < len(lines) and lines[i] == "Expecting:":
            i += 1
            while i < len(lines) and lines[i].startswith("    "):
                i += 1
        elif i < len(lines) and lines[i] == "Expecting nothing":
            i += 1
        if i < len(lines) and lines[i] == "ok":
            found["\n".join(source)] += 1
    return found


def lost(original: collections.Counter, output: str) -> str | None:
    """The first example the original passed that the candidate's `-v` OUTPUT did not, or None."""
    if missing := original - passed_examples(output):
        return next(iter(missing)).splitlines()[0][:60]
    return None
