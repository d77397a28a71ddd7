"""Input layouts of contest problems, each a way to print (and read back) one instance.

An instance (`Inst`) is the content: an integer array, strings, grid rows, or a graph's edges.
A layout (`Family`) prints it the way a validator expects -- `n` then the array, `n m` then
edges, ... -- and parses a seed back, so that seeds, probes and generators share one grammar.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kopt.agent.stress.mutators import is_int


@dataclass
class Inst:
    nums: list[int] = field(default_factory=list)   # the array; a graph's edges, flat (u1 v1 u2 v2 ...)
    k: int = 1                                      # a header's second number (`n k`)
    strs: list[str] = field(default_factory=list)   # strings, or a grid's rows
    n: int = 0                                      # a graph's node count


@dataclass(frozen=True)
class Family:
    name: str
    kind: str        # ints | number | string | two-strings | grid | graph | tree
    describe: str
    render: Callable[[Inst], str]
    parse: Callable[[list[list[str]]], Inst | None]

    def text(self, x: Inst) -> bytes:
        return self.render(x).encode()

    def read(self, data: bytes) -> Inst | None:
        """DATA as an instance of this layout, or None when it has another shape."""
        lines = [ln.split() for ln in data.decode(errors="replace").strip().splitlines()]
        try:
            x = self.parse(lines)
        except (ValueError, IndexError):
            return None
        return x if x is not None and self.render(x).split() == data.decode(errors="replace").split() else None


def _ints(toks: list[str]) -> list[int]:
    if not all(is_int(t) for t in toks):
        raise ValueError
    return [int(t) for t in toks]


def _join(v) -> str:
    return " ".join(map(str, v))


def _edges(x: Inst) -> str:
    return "".join(f"{x.nums[i]} {x.nums[i + 1]}\n" for i in range(0, len(x.nums) - 1, 2))


def _parse_array(lines):
    (n,), a = _ints(lines[0]), _ints(lines[1] if len(lines) > 1 else [])
    return Inst(a) if n == len(a) and len(lines) <= 2 else None


def _parse_array_lines(lines):
    (n,) = _ints(lines[0])
    rows = lines[1:]
    return Inst([_ints(r)[0] for r in rows]) if n == len(rows) and all(len(r) == 1 for r in rows) else None


def _parse_nk(lines):
    (n, k), a = _ints(lines[0]), _ints(lines[1])
    return Inst(a, k=k) if n == len(a) and len(lines) == 2 else None


def _parse_pairs(lines):
    (n,) = _ints(lines[0])
    rows = lines[1:]
    return Inst([v for r in rows for v in _ints(r)]) if n == len(rows) and all(len(r) == 2 for r in rows) else None


def _parse_numbers(count):
    def parse(lines):
        v = _ints(lines[0])
        return Inst(v) if len(v) == count and len(lines) == 1 else None
    return parse


def _parse_string(lines):
    return Inst(strs=[lines[0][0]]) if len(lines) == 1 and len(lines[0]) == 1 and not is_int(lines[0][0]) else None


def _parse_n_string(lines):
    (n,) = _ints(lines[0])
    return Inst(strs=[lines[1][0]]) if len(lines) == 2 and len(lines[1]) == 1 and len(lines[1][0]) == n else None


def _parse_two_strings(lines):
    ok = len(lines) == 2 and all(len(r) == 1 and not is_int(r[0]) for r in lines)
    return Inst(strs=[lines[0][0], lines[1][0]]) if ok else None


def _parse_grid(lines):
    (r, c) = _ints(lines[0])
    rows = [x[0] for x in lines[1:] if len(x) == 1]
    return Inst(strs=rows) if r == len(lines) - 1 == len(rows) and all(len(x) == c for x in rows) else None


def _parse_graph(lines):
    (n, m) = _ints(lines[0])
    flat = [v for r in lines[1:] for v in _ints(r)]
    ok = m == len(lines) - 1 and all(len(r) == 2 for r in lines[1:])
    return Inst(flat, n=n) if ok else None


def _parse_tree(lines):
    (n,) = _ints(lines[0])
    flat = [v for r in lines[1:] for v in _ints(r)]
    return Inst(flat, n=n) if n - 1 == len(lines) - 1 and all(len(r) == 2 for r in lines[1:]) else None


FAMILIES = [
    Family("array", "ints", "n, then n integers on one line",
           lambda x: f"{len(x.nums)}\n{_join(x.nums)}\n", _parse_array),
    Family("array-lines", "ints", "n, then n integers one per line",
           lambda x: f"{len(x.nums)}\n" + "".join(f"{v}\n" for v in x.nums), _parse_array_lines),
    Family("n-k-array", "ints", "n k, then n integers",
           lambda x: f"{len(x.nums)} {x.k}\n{_join(x.nums)}\n", _parse_nk),
    Family("pairs", "ints", "n, then n lines of two integers",
           lambda x: f"{len(x.nums) // 2}\n" + _edges(x), _parse_pairs),
    Family("string", "string", "one string", lambda x: f"{x.strs[0]}\n", _parse_string),
    Family("n-string", "string", "n, then a string of length n",
           lambda x: f"{len(x.strs[0])}\n{x.strs[0]}\n", _parse_n_string),
    Family("two-strings", "two-strings", "a text line, then a pattern line",
           lambda x: f"{x.strs[0]}\n{x.strs[1]}\n", _parse_two_strings),
    Family("grid", "grid", "n m, then an n x m grid of characters",
           lambda x: f"{len(x.strs)} {len(x.strs[0])}\n" + "".join(f"{r}\n" for r in x.strs), _parse_grid),
    Family("graph", "graph", "n m, then m edges u v",
           lambda x: f"{x.n} {len(x.nums) // 2}\n" + _edges(x), _parse_graph),
    Family("tree", "tree", "n, then the n-1 edges of a tree",
           lambda x: f"{x.n}\n" + _edges(x), _parse_tree),
    Family("number", "number", "one integer", lambda x: f"{x.nums[0]}\n", _parse_numbers(1)),
    Family("two-numbers", "number", "two integers", lambda x: f"{_join(x.nums[:2])}\n", _parse_numbers(2)),
]
BY_NAME = {f.name: f for f in FAMILIES}
