"""Helpers for the rule tests: run a task or a rule's solution written by the test, and
record whether a solution's fast path ran."""
from __future__ import annotations


def load(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "solution", "exec"), ns)  # the test's own task or the rule's generated code
    return ns


def watch(ns: dict, name: str) -> list[bool]:
    """Wrap the solution's module-level function `name` (looked up in its globals at each
    call); the list returned gets, per call, whether it returned a result (not None)."""
    inner, used = ns[name], []

    def watched(*args):
        y = inner(*args)
        used.append(y is not None)
        return y

    ns[name] = watched
    return used
