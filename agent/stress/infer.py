"""The input grammar, inferred by asking the validator.

With only a validator (no tests, no generator), kopt prints small instances of each layout in
`layouts.FAMILIES` -- sizes 5, 3, then 1 ... 10^5; values counting up from 1, 0, 2, ... or all
equal; strings over a few alphabets; graphs as paths -- until the validator accepts one. From
that legal instance it finds the ranges by binary search (value bounds, the largest size within
--max-bytes, the alphabet, the edge count), so generators can print any legal instance. Legal
seeds (`--seeds`) teach it too: a seed that parses as a layout is the first legal instance, and
its numbers and characters are tried first.
"""
from __future__ import annotations

from dataclasses import dataclass

from kopt.agent.stress.edges import BOUND, _edge
from kopt.agent.stress.layouts import FAMILIES, Family, Inst
from kopt.agent.stress.mutators import is_int

SMALL_SIZES = (5, 3)
SIZES = (1, 2, 10, 100, 1000, 10**4, 10**5)
STARTS = (1, 2, 0, -3, 10, 1000, 10**5, 10**9 - 10**5)
ALPHABETS = ("abc", "ab", "a", "01", ".#", "ABC", "abcdefghijklmnopqrstuvwxyz")
MAX_PROBES = 400  # validator calls before kopt says no layout fits (about 10 s)
CHAR_CLASSES = ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", ".#", "*")


@dataclass
class Grammar:
    """A layout and the ranges the validator accepts: what every generator prints within."""

    family: Family
    size: tuple[int, int]          # n / string length / grid rows / node count
    values: tuple[int, int] = (0, 0)
    k: tuple[int, int] = (1, 1)    # `n k`: k; two strings: pattern length; grid: columns; graph: edges
    alphabet: str = ""
    distinct: bool = False         # the array's values must differ
    relative: int | None = None    # values bounded by n + relative (permutations)
    base: int = 1                  # graph: the first node's label
    example: Inst | None = None    # a legal instance

    def hi_value(self, n: int) -> int:
        return self.values[1] if self.relative is None else n + self.relative

    def summary(self) -> str:
        f, (lo, hi) = self.family, self.size
        parts = {"ints": lambda: f"{lo} <= n <= {hi}, {self._vals()}" + (", distinct" if self.distinct else "")
                 + (f", {self.k[0]} <= k <= {self.k[1]}" if f.name == "n-k-array" else ""),
                 "number": lambda: self._vals(),
                 "string": lambda: f"length <= {hi}, alphabet {self._abc()}",
                 "two-strings": lambda: f"text length <= {hi}, pattern length <= {self.k[1]}, "
                                        f"alphabet {self._abc()}",
                 "grid": lambda: f"n <= {hi}, m <= {self.k[1]}, cells {self._abc()}",
                 "graph": lambda: f"n <= {hi}, m <= {self.k[1]}, nodes from {self.base}",
                 "tree": lambda: f"n <= {hi}, nodes from {self.base}"}[f.kind]()
        return f"{f.describe} ({parts})"

    def _vals(self) -> str:
        hi = f"n + {self.relative}" if self.relative is not None else str(self.values[1])
        return f"{self.values[0]} <= a_i <= {hi}"

    def _abc(self) -> str:
        return "a-z" if self.alphabet == CHAR_CLASSES[0] else repr(self.alphabet)


# ---- probe instances: a size and a fill for each layout kind ----------------------------------

def path_edges(n: int, m: int, base: int) -> list[int]:
    """M distinct edges on N nodes, no loops: the path first, then (i, i+2), (i, i+3), ..."""
    out: list[int] = []
    for d in range(1, n):
        for i in range(n - d):
            if len(out) >= 2 * m:
                return out
            out += [i + base, i + d + base]
    return out


def probe_inst(f: Family, size: int, fill) -> Inst:
    """The instance of F at SIZE with FILL: ("seq"|"const", start) for numbers, an alphabet
    for strings, the first node's label for graphs."""
    if f.kind in ("ints", "number"):
        how, start = fill
        n = 2 if f.kind == "number" else size * (2 if f.name == "pairs" else 1)
        return Inst([start + i if how == "seq" else start for i in range(n)])
    if f.kind in ("string", "two-strings"):
        s = (fill * size)[:size]
        return Inst(strs=[s, s[:2]])
    if f.kind == "grid":
        return Inst(strs=[(fill * size)[i % len(fill):][:size] for i in range(size)])
    return Inst(path_edges(size, size - 1, fill), n=size)


def candidates(kind: str, seed_values: list[int], seed_chars: str) -> tuple[list, list]:
    """(size, fill) probes of a layout kind: a few likely ones, then every size with every fill."""
    if kind in ("ints", "number"):
        starts = list(dict.fromkeys([*seed_values[:3], *STARTS]))
        fs = [(h, s) for s in starts for h in ("seq", "const")]
        first = [(5, f) for f in fs[:4]]
    elif kind in ("graph", "tree"):
        fs, first = [1, 0], [(5, 1), (5, 0)]
    else:
        fs = list(dict.fromkeys([*([seed_chars] if seed_chars else []), *(ALPHABETS[::-1] if kind == "grid"
                                                                        else ALPHABETS)]))
        first = [(5, f) for f in fs[:3]]
    sizes = [2] if kind == "number" else [*SMALL_SIZES, *SIZES]
    return first, [(n, f) for n in sizes for f in (fs if n < 1000 else fs[:4]) if (n, f) not in first]


def first_legal(validator, seeds: list[bytes], max_bytes: int) -> tuple[Family, Inst] | None:
    """A layout and a legal instance of it: a seed that parses, else the first probe accepted
    together with a neighbour (size +- 1, or the next value): whitespace-blind validators take
    `3 / 1 2 3` as `n m / u v` too, but not `4 / 1 2 3 4`."""
    for data in seeds:
        for f in FAMILIES:
            x = f.read(data)
            if x is not None:
                return f, x
    toks = [t for d in seeds for t in d.decode(errors="replace").split()]
    seed_values = [int(t) for t in toks if is_int(t)]
    seed_chars = "".join(sorted({c for t in toks if not is_int(t) for c in t}))
    plans = [(f, *candidates(f.kind, seed_values, seed_chars)) for f in FAMILIES]
    probes = 0
    for stage in (1, 2):
        for f, first, rest in plans:
            for size, fill in (first if stage == 1 else rest):
                if (size * size if f.kind == "grid" else 2 * size) > max_bytes or probes >= MAX_PROBES:
                    continue
                probes += 1
                x = probe_inst(f, size, fill)
                near = neighbours(f, size, fill)
                if validator.accepts(f.text(x)) and any(validator.accepts(f.text(y)) for y in near):
                    return f, x
    return None


def neighbours(f: Family, size: int, fill) -> list[Inst]:
    if f.kind == "number":
        return [Inst([v + 1 for v in probe_inst(f, size, fill).nums])]
    return [probe_inst(f, m, fill) for m in (size + 1, size - 1) if m >= (2 if f.kind in ("graph", "tree") else 1)]


# ---- ranges ----------------------------------------------------------------------------------

def infer(validator, max_bytes: int, seeds: list[bytes] = ()) -> Grammar | None:
    """The grammar the validator accepts, or None when no layout fits."""
    found = first_legal(validator, list(seeds), max_bytes)
    if found is None:
        return None
    f, x = found

    def ok(y: Inst) -> bool:
        data = f.text(y)
        return len(data) <= max_bytes and validator.accepts(data)

    return {"ints": _int_ranges, "number": _number_ranges, "string": _string_ranges,
            "two-strings": _string_ranges, "grid": _grid_ranges, "graph": _graph_ranges,
            "tree": _graph_ranges}[f.kind](f, x, ok, max_bytes)


def _value_edges(x: Inst, ok, first: int, last: int) -> tuple[int, int]:
    """The least legal value at position FIRST and the largest at LAST (the others kept)."""
    def at(pos: int):
        def legal(v: int) -> bool:
            y = Inst(list(x.nums), x.k, x.strs, x.n)
            y.nums[pos] = v
            return ok(y)
        return legal
    return _edge(at(first), x.nums[first], -BOUND), _edge(at(last), x.nums[last], BOUND)


def _int_ranges(f: Family, x: Inst, ok, max_bytes: int) -> Grammar:
    nums = sorted(x.nums)
    x = Inst(nums, x.k) if ok(Inst(nums, x.k)) else x
    lo, hi = _value_edges(x, ok, x.nums.index(min(x.nums)), x.nums.index(max(x.nums)))
    n0 = len(x.nums) // (2 if f.name == "pairs" else 1)
    distinct = n0 > 1 and not ok(Inst([x.nums[0]] * len(x.nums), x.k))
    relative = None
    if distinct and hi - lo < 2 * n0 + 2:  # a permutation-like range: does it grow with n?
        if ok(Inst([lo + i for i in range(2 * len(x.nums))], x.k)):
            relative = hi - n0
    g = Grammar(f, (n0, n0), (lo, hi), (x.k, x.k), distinct=distinct, relative=relative)
    width = 2 if f.name == "pairs" else 1

    def at_size(m: int) -> Inst:
        top = g.hi_value(m)
        vals = [min(lo + i, top) if distinct else lo for i in range(m * width)]
        return Inst(vals, x.k)

    cap = max_bytes // (width * (len(str(lo)) + 1)) + 1
    g.size = (_edge(lambda m: m >= 0 and ok(at_size(m)), n0, 0), _edge(lambda m: ok(at_size(m)), n0, cap))
    if f.name == "n-k-array":
        y = at_size(g.size[1])
        g.k = (_edge(lambda k: ok(Inst(y.nums, k)), x.k, -BOUND), _edge(lambda k: ok(Inst(y.nums, k)), x.k, BOUND))
    g.example = x
    return g


def _number_ranges(f: Family, x: Inst, ok, max_bytes: int) -> Grammar:
    lo, hi = _value_edges(x, ok, 0, len(x.nums) - 1 if f.name == "two-numbers" else 0)
    return Grammar(f, (1, 1), (lo, hi), example=x)


def _alphabet(x: Inst, ok, index: int = 0) -> str:
    """The character classes the validator takes in string INDEX (of the legal instance X)."""
    s = x.strs[index]
    out = ""
    for cls in CHAR_CLASSES:
        y = Inst(strs=list(x.strs))
        y.strs[index] = (cls * len(s))[:len(s)] if len(cls) <= len(s) else cls[0] * len(s)
        if ok(y):
            out += cls
    return out or "".join(sorted(set(s)))


def _string_ranges(f: Family, x: Inst, ok, max_bytes: int) -> Grammar:
    abc = _alphabet(x, ok)
    c = abc[0]

    def text(m: int, p: int) -> Inst:
        return Inst(strs=[c * m, c * p]) if f.kind == "two-strings" else Inst(strs=[c * m])

    p0 = len(x.strs[1]) if f.kind == "two-strings" else 0
    m0 = len(x.strs[0])
    hi = _edge(lambda m: ok(text(m, min(p0, m))), m0, max_bytes + 1)
    g = Grammar(f, (_edge(lambda m: m > 0 and ok(text(m, min(p0, m))), m0, 0), hi), alphabet=abc, example=x)
    if f.kind == "two-strings":
        g.k = (1, _edge(lambda p: ok(text(hi, p)), p0, max_bytes - hi + 1))
    return g


def _grid_ranges(f: Family, x: Inst, ok, max_bytes: int) -> Grammar:
    abc = "".join(sorted({ch for r in x.strs for ch in r}))
    for cls in CHAR_CLASSES:
        if not set(cls) <= set(abc) and ok(Inst(strs=[(cls * len(r))[:len(r)] for r in x.strs])):
            abc += "".join(ch for ch in cls if ch not in abc)
    c, r0, c0 = abc[0], len(x.strs), len(x.strs[0])

    def grid(r: int, w: int) -> Inst:
        return Inst(strs=[c * w] * r)

    rows = _edge(lambda r: r > 0 and ok(grid(r, c0)), r0, max_bytes // 2)
    cols = _edge(lambda w: w > 0 and ok(grid(r0, w)), c0, max_bytes // 2)
    while (rows > r0 or cols > c0) and not ok(grid(rows, cols)):  # a bound on n*m, or on the bytes
        rows, cols = max(r0, rows * 7 // 10), max(c0, cols * 7 // 10)
    return Grammar(f, (1, rows), k=(1, cols), alphabet=abc, example=x)


def _graph_ranges(f: Family, x: Inst, ok, max_bytes: int) -> Grammar:
    base = min(x.nums) if x.nums else 1
    n0 = x.n

    def graph(n: int, m: int) -> Inst:
        return Inst(path_edges(n, m, base), n=n)

    per_edge = 2 * len(str(n0)) + 2
    n_hi = _edge(lambda n: n > 1 and ok(graph(n, n - 1)), n0, max_bytes // per_edge + 2)
    g = Grammar(f, (2, n_hi), base=base, example=x)
    if f.kind == "graph":
        m0 = len(x.nums) // 2
        most = min(n_hi * (n_hi - 1) // 2, max_bytes // (2 * len(str(n_hi)) + 2))
        g.k = (m0, _edge(lambda m: ok(graph(n_hi, m)), n_hi - 1, most + 1))
    else:
        g.k = (n_hi - 1, n_hi - 1)
    return g
