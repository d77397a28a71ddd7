"""Structure-aware mutators for token inputs (lines of whitespace-separated tokens).

An input is read as lines of tokens. A line holding one integer that equals the number of
tokens on the next line (or the number of lines after it) is a *count*: growing the data
updates the count too, so a mutated input stays well formed. Numbers are mutated in ways
that hit slow paths of real code (sorted, reversed, all equal, extremes, arithmetic runs
with power-of-two steps, many duplicates, organ pipes); strings by repetition and periodic
patterns. Mutators never check legality -- the validator does.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

STEPS = (1, 2, 3, 10, 100, 1000, 1 << 8, 1 << 10, 1 << 12, 1 << 13, 1 << 14, 1 << 16, 1 << 17, 1 << 18,
         1 << 20, 1 << 24, 10**6, 10**9 + 7)


INT = re.compile(r"-?[0-9]+")


def is_int(tok: str) -> bool:
    """An ASCII integer token (str.isdigit also takes '²' and other digits int() refuses)."""
    return INT.fullmatch(tok) is not None


@dataclass
class Link:
    """Token `pos` of line `count` holds the size of line `data` ("tokens") or of the lines after
    it ("lines")."""

    count: int
    data: int
    how: str  # "tokens" | "lines"
    pos: int = 0


@dataclass
class TokenInput:
    lines: list[list[str]]
    links: list[Link] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> TokenInput:
        lines = [ln.split() for ln in data.decode(errors="replace").splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        return cls(lines, find_links(lines))

    def render(self) -> bytes:
        return ("\n".join(" ".join(t) for t in self.lines) + "\n").encode()

    def copy(self) -> TokenInput:
        return TokenInput([list(t) for t in self.lines], [Link(k.count, k.data, k.how, k.pos) for k in self.links])

    def numeric_lines(self) -> list[int]:
        """Lines of numbers that are data (not counts), longest first."""
        counts = {k.count for k in self.links}
        blocks = {k.data: len(self.lines) - k.data for k in self.links if k.how == "lines"}
        inner = {r for k in self.links if k.how == "lines" for r in range(k.data + 1, len(self.lines))}
        rows = [i for i, t in enumerate(self.lines)
                if t and i not in counts and i not in inner and all(is_int(x) for x in t)]
        return sorted(rows, key=lambda i: -(blocks.get(i) or len(self.lines[i])))

    def string_tokens(self) -> list[tuple[int, int]]:
        return [(i, j) for i, t in enumerate(self.lines) for j, x in enumerate(t) if not is_int(x)]

    def size(self) -> int:
        return sum(len(t) for t in self.lines)


def find_links(lines: list[list[str]]) -> list[Link]:
    """Count lines: `n` before n tokens or n lines; also `n m` headers (first matching token)."""
    links: list[Link] = []
    for i, toks in enumerate(lines):
        if any(k.how == "lines" and i >= k.data for k in links):
            break  # inside a block of lines: data, not counts
        if not toks or len(toks) > 3 or not all(is_int(t) for t in toks) or i + 1 >= len(lines):
            continue
        for pos, tok in enumerate(toks):
            n = int(tok)
            if n > 1 and n == len(lines[i + 1]):
                links.append(Link(i, i + 1, "tokens", pos))
                break
            if n > 1 and n == len(lines) - i - 1:
                links.append(Link(i, i + 1, "lines", pos))
                break
    return links


def resize(inp: TokenInput, link: Link, n: int, rng: random.Random) -> TokenInput:
    """INP with the linked data grown or cut to N items (new items copy random existing ones)."""
    out = inp.copy()
    if link.how == "tokens":
        row = out.lines[link.data]
        out.lines[link.data] = [row[i] if i < len(row) else rng.choice(row) for i in range(n)]
    else:
        rows = out.lines[link.data:]
        out.lines = out.lines[:link.data] + [list(rows[i] if i < len(rows) else rng.choice(rows)) for i in range(n)]
    out.lines[link.count][link.pos] = str(n)
    return out


# ---- number mutators: (values, bounds, rng) -> values ----------------------------------------

def _sort(v, b, r):
    return sorted(v)


def _sort_desc(v, b, r):
    return sorted(v, reverse=True)


def _reverse(v, b, r):
    return v[::-1]


def _all_equal(v, b, r):
    return [r.choice(v)] * len(v)


def _duplicates(v, b, r):
    pool = r.sample(v, k=min(len(v), r.choice((1, 2, 3, 8))))
    return [r.choice(pool) if r.random() < 0.8 else x for x in v]


def _extremes(v, b, r):
    lo, hi = b
    return [r.choice((lo, hi, lo + 1, hi - 1)) if r.random() < 0.5 else x for x in v]


def _arith_run(v, b, r):
    lo, hi = b
    fitting = [s for s in STEPS if s * (len(v) - 1) <= hi - lo] or [max(1, (hi - lo) // max(1, len(v) - 1))]
    step = r.choice(fitting)
    start = r.randint(lo, max(lo, hi - step * (len(v) - 1)))
    return [start + i * step for i in range(len(v))]


def _common_residue(v, b, r):
    """Distinct values sharing their residue modulo a power of two or ten: weak hashes collide."""
    lo, hi = b
    mods = [m for m in STEPS[4:] if (hi - lo) // m >= len(v)] or [1]
    m = r.choice(mods)
    base = lo + r.randrange(m) if hi - lo >= m else lo
    slots = r.sample(range((hi - base) // m + 1), k=min(len(v), (hi - base) // m + 1))
    return [base + k * m for k in slots] + [base] * (len(v) - len(slots))


def _organ_pipe(v, b, r):
    s = sorted(v)
    return s[0::2] + s[1::2][::-1]


def _periodic(v, b, r):
    k = r.choice((1, 2, 3, 4, 8))
    block = v[:k] if len(v) >= k else v
    return [block[i % len(block)] for i in range(len(v))]


def _nearly_sorted(v, b, r):
    s = sorted(v)
    for _ in range(max(1, len(s) // 50)):
        i, j = r.randrange(len(s)), r.randrange(len(s))
        s[i], s[j] = s[j], s[i]
    return s


def _random(v, b, r):
    lo, hi = b
    return [r.randint(lo, hi) for _ in v]


def _perturb(v, b, r):
    out = list(v)
    for _ in range(max(1, len(v) // 20)):
        i = r.randrange(len(out))
        out[i] = min(b[1], max(b[0], out[i] + r.choice((-1, 1, -2, 2))))
    return out


NUMBER_MUTATORS = {"sort": _sort, "sort-desc": _sort_desc, "reverse": _reverse, "all-equal": _all_equal,
                   "duplicates": _duplicates, "extremes": _extremes, "arithmetic-run": _arith_run,
                   "common-residue": _common_residue,
                   "organ-pipe": _organ_pipe, "periodic": _periodic, "nearly-sorted": _nearly_sorted,
                   "random": _random, "perturb": _perturb}


def _repeat_char(s, r):
    return s[0] * len(s)


def _periodic_str(s, r):
    k = r.choice((1, 2, 3, 5))
    return "".join(s[i % k] for i in range(len(s))) if len(s) >= k else s


def _alternating(s, r):
    a, b = s[0], (s[1] if len(s) > 1 and s[1] != s[0] else chr(ord(s[0]) ^ 1))
    return "".join(a if i % 2 == 0 else b for i in range(len(s)))


STRING_MUTATORS = {"repeat-char": _repeat_char, "periodic-string": _periodic_str, "alternating": _alternating}


def column(inp: TokenInput, row: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The numbers of a data line -- or, for a linked block of lines, of its first column."""
    link = next((k for k in inp.links if k.data == row and k.how == "lines"), None)
    if link is None:
        return [int(x) for x in inp.lines[row]], [(row, j) for j in range(len(inp.lines[row]))]
    cells = [(i, 0) for i in range(link.data, len(inp.lines)) if inp.lines[i] and is_int(inp.lines[i][0])]
    return [int(inp.lines[i][j]) for i, j in cells], cells


def mutate(inp: TokenInput, bounds: dict[int, tuple[int, int]], rng: random.Random,
           weights: dict[str, float] | None = None) -> tuple[TokenInput, str]:
    """One random structure-aware mutation (mutators picked by WEIGHTS); returns (new input, name)."""
    out = inp.copy()
    rows = out.numeric_lines()
    strings = out.string_tokens()
    if rows and (not strings or rng.random() < 0.7):
        row = rows[0] if rng.random() < 0.7 else rng.choice(rows)
        values, cells = column(out, row)
        if not values:
            return out, "none"
        names = list(NUMBER_MUTATORS)
        name = rng.choices(names, [(weights or {}).get(n, 1.0) for n in names])[0]
        b = bounds.get(row, (min(values), max(values)))
        for (i, j), x in zip(cells, NUMBER_MUTATORS[name](values, b, rng)):
            out.lines[i][j] = str(x)
        return out, name
    if strings:
        i, j = rng.choice(strings)
        name = rng.choice(list(STRING_MUTATORS))
        out.lines[i][j] = STRING_MUTATORS[name](out.lines[i][j], rng)
        return out, name
    return out, "none"


def randomize(inp: TokenInput, bounds: dict[int, tuple[int, int]], rng: random.Random,
              alphabet: str = "") -> TokenInput:
    """A random input of the same shape and size: every data number uniform within its bounds,
    every string drawn from ALPHABET (the seeds' characters; shuffled when none) -- the
    'random legal input of the same size class'."""
    out = inp.copy()
    for row in out.numeric_lines():
        values, cells = column(out, row)
        if not values:
            continue
        lo, hi = bounds.get(row, (min(values), max(values)))
        for i, j in cells:
            out.lines[i][j] = str(rng.randint(lo, hi))
    for i, j in out.string_tokens():
        s = list(out.lines[i][j])
        if alphabet:
            s = rng.choices(alphabet, k=len(s))
        else:
            rng.shuffle(s)
        out.lines[i][j] = "".join(s)
    return out
