"""Starting inputs found by asking the validator: when the user gives no seeds, no
generator and no model, kopt tries the input layouts contest problems use most (a count
then values, a header of two numbers, test cases, strings, edge lists, a grid) with small
values, and keeps every one the validator accepts. The mutation search grows them from there.
"""
from __future__ import annotations

LAYOUTS: list[tuple[str, str]] = [
    ("count, then values", "5\n3 1 4 1 5\n"),
    ("count, then values on lines", "3\n1\n2\n3\n"),
    ("count, then pairs", "3\n1 2\n3 4\n5 6\n"),
    ("count, then a tree's edges", "4\n1 2\n2 3\n2 4\n"),
    ("n m, then values", "4 2\n3 1 4 1\n"),
    ("n m, then edges", "4 3\n1 2\n2 3\n3 4\n"),
    ("n q, values, then queries", "4 2\n3 1 4 1\n1 2\n2 4\n"),
    ("n k, then values", "5 2\n3 1 4 1 5\n"),
    ("test cases of count + values", "2\n3\n1 2 3\n2\n5 4\n"),
    ("test cases of one number", "3\n1\n2\n3\n"),
    ("one number", "5\n"),
    ("two numbers", "3 5\n"),
    ("a string", "abcab\n"),
    ("count, then a string", "5\nabcab\n"),
    ("two strings", "abc\nabd\n"),
    ("a grid", "2 3\n...\n.#.\n"),
    ("a binary string", "5\n10110\n"),
    ("a permutation", "5\n2 4 1 5 3\n"),
    ("values from one", "5\n1 2 3 4 5\n"),
    ("count, then non-negative values", "5\n0 1 2 3 4\n"),
]


def probe_inputs(validator) -> list[tuple[str, bytes]]:
    """(name, data) for each layout the validator accepts, in the order above."""
    return [(f"probed layout: {name}", text.encode()) for name, text in LAYOUTS if validator.accepts(text.encode())]
