"""Generators of classic adversarial structures, within an inferred grammar.

Each generator prints one instance of the grammar's layout at a given scale (array length,
text length, grid rows, node count): sorted / reversed / organ-pipe / all-equal arrays for
sorting, values colliding modulo powers of two and primes for hashing, primes and semiprimes
near the upper bound for trial division, repeated characters and near-matches for string
search, serpentine grids, and path, star and dense graphs. They never check legality (the
validator does); `random` is the baseline the others are measured against.
"""
from __future__ import annotations

import functools
import math
import random

from kopt.agent.stress.infer import Grammar, path_edges
from kopt.agent.stress.layouts import Inst

# unordered_map bucket counts of libstdc++ (a multiple of one lands in one bucket), then moduli
# that naive hashes use
HASH_PRIMES = (107897, 126271, 172933, 256279, 375017, 10007, 1000003, 998244353, 10**9 + 7)


def is_prime(n: int) -> bool:
    """Miller-Rabin with the bases that decide every n < 3.3e24."""
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    if n in bases:
        return True
    if any(n % p == 0 for p in bases):
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def primes_below(hi: int, count: int, lo: int = 2) -> list[int]:
    """Up to COUNT largest primes <= HI (and >= LO): a segmented sieve below HI, or above 10^12
    (too many sieving primes) Miller-Rabin on the numbers going down, at most 200 primes."""
    if hi > 10**12:
        found = []
        for x in range(hi, max(lo, 2) - 1, -1):
            if len(found) >= min(count, 200):
                break
            if is_prime(x):
                found.append(x)
        return found
    out: list[int] = []
    top = hi
    while len(out) < count and top >= max(lo, 2):
        bottom = max(lo, 2, top - max(1000, 30 * (count - len(out))))
        seg = bytearray([1]) * (top - bottom + 1)
        for p in range(2, math.isqrt(top) + 1):
            start = max(p * p, (bottom + p - 1) // p * p)
            if start <= top:
                seg[start - bottom::p] = bytes(len(range(start - bottom, len(seg), p)))
        out += [bottom + i for i in range(len(seg) - 1, -1, -1) if seg[i]][:count - len(out)]
        top = bottom - 1
    return out


def _fit(v: list[int], n: int, distinct: bool, lo: int, hi: int) -> list[int]:
    """V cycled to length N (distinct values shift later copies up, within [lo, hi])."""
    if not v:
        return [lo] * n
    if len(v) >= n:
        return v[:n]
    if not distinct:
        return [v[i % len(v)] for i in range(n)]
    seen = set(v)
    extra = [x for x in range(hi, lo - 1, -1) if x not in seen][:n - len(v)] if hi - lo < 4 * n else []
    r = random.Random(n)
    while len(v) + len(extra) < n and len(seen) <= hi - lo:
        x = r.randint(lo, hi)
        if x not in seen:
            seen.add(x)
            extra.append(x)
    return v + extra


def int_generators(g: Grammar):
    """name -> (n, rng) -> values, for arrays of N numbers in the grammar's range."""
    lo = g.values[0]

    def top(n):
        return g.hi_value(n)

    def rand(n, r):
        if g.distinct:
            return r.sample(range(lo, top(n) + 1), n) if top(n) - lo < 10**7 else \
                _fit(list({r.randint(lo, top(n)) for _ in range(n)}), n, True, lo, top(n))
        return [r.randint(lo, top(n)) for _ in range(n)]

    def ascending(n, r):
        return [min(lo + i, top(n)) for i in range(n)] if g.distinct else sorted(rand(n, r))

    def organ(n, r):
        s = ascending(n, r)
        return s[0::2] + s[1::2][::-1]

    def equal(n, r):
        return _fit([r.choice((lo, top(n), (lo + top(n)) // 2))], n, g.distinct, lo, top(n))

    def collide(moduli):
        def gen(n, r):
            fitting = [m for m in moduli if (top(n) - lo) // m >= 1] or [1]
            m = r.choice(fitting)
            base = lo + r.randrange(min(m, top(n) - lo + 1))
            k = (top(n) - base) // m + 1
            picks = r.sample(range(k), min(n, k)) if k < 10**7 else [r.randrange(k) for _ in range(n)]
            return _fit([base + i * m for i in picks], n, g.distinct, lo, top(n))
        return gen

    def primes(n, r):
        return _fit(primes_below(top(n), min(n, 4000), lo), n, g.distinct, lo, top(n))

    def semiprimes(n, r):
        ps = primes_below(math.isqrt(top(n)), 64, 2)
        v = sorted({p * q for p in ps for q in ps if lo <= p * q <= top(n)}, reverse=True)
        return _fit(v, n, g.distinct, lo, top(n))

    def extremes(n, r):
        return _fit([lo, top(n)], n, g.distinct, lo, top(n))

    return {"random": rand, "sorted": ascending, "reversed": lambda n, r: ascending(n, r)[::-1],
            "organ-pipe": organ, "all-equal": equal, "alternating-extremes": extremes,
            "collide-pow2": collide([1 << k for k in range(6, 31)]), "collide-primes": collide(HASH_PRIMES),
            "primes-near-max": primes, "semiprimes-near-max": semiprimes}


def string_generators(g: Grammar):
    """name -> (length, rng) -> string over the grammar's alphabet."""
    a = g.alphabet or "ab"
    b = a[1] if len(a) > 1 else a[0]

    def periodic(block):
        return lambda n, r: (block * (n // max(1, len(block)) + 1))[:n]

    return {"random": lambda n, r: "".join(r.choices(a, k=n)),
            "one-char": periodic(a[0]), "two-chars": periodic(a[0] + b),
            "near-periodic": lambda n, r: periodic(a[0] * r.choice((3, 10, 100, 1000)) + b)(n, r),
            "random-binary": lambda n, r: "".join(r.choices(a[0] + b, k=n)),
            "one-odd-char": lambda n, r: a[0] * (n - 1) + b}


def text_pattern_generators(g: Grammar):
    """name -> (text length, rng) -> (text, pattern): near-matches make naive search quadratic."""
    a = g.alphabet or "ab"
    b = a[1] if len(a) > 1 else a[0]

    def plen(n, r):
        return max(1, min(g.k[1], n, r.choice((n // 2, n // 10, math.isqrt(n) + 1, n))))

    def rand(n, r):
        return "".join(r.choices(a, k=n)), "".join(r.choices(a, k=plen(n, r)))

    def near_match(n, r):
        p = plen(n, r)
        return a[0] * n, a[0] * (p - 1) + b

    def all_match(n, r):
        return a[0] * n, a[0] * plen(n, r)

    def odd_first(n, r):
        p = plen(n, r)
        return a[0] * n, b + a[0] * (p - 1)

    def periodic(n, r):
        p = plen(n, r)
        block = a[0] * r.choice((1, 2, 5)) + b
        return (block * (n // len(block) + 1))[:n], (block * (p // len(block) + 1))[:p - 1] + b

    return {"random": rand, "near-match": near_match, "all-match": all_match, "odd-first": odd_first,
            "periodic-match": periodic}


def grid_generators(g: Grammar):
    """name -> (rows, rng) -> rows of the grid (columns: the largest the grammar allows)."""
    a = g.alphabet or ".#"
    pairs = [(a[0], a[1] if len(a) > 1 else a[0])]
    if len(a) > 1:
        pairs.append((a[1], a[0]))

    def cols(n):
        return max(1, g.k[1])

    def snake(n, r):
        o, w = r.choice(pairs)
        c = cols(n)
        return [o * c if i % 2 == 0 else (w * (c - 1) + o if i % 4 == 1 else o + w * (c - 1)) for i in range(n)]

    def fill(n, r):
        o, _ = r.choice(pairs)
        return [o * cols(n)] * n

    def checker(n, r):
        o, w = r.choice(pairs)
        return [((o + w) * cols(n))[i % 2:][:cols(n)] for i in range(n)]

    return {"random": lambda n, r: ["".join(r.choices(a, k=cols(n))) for _ in range(n)],
            "one-cell-kind": fill, "serpentine": snake, "checkerboard": checker}


def graph_generators(g: Grammar):
    """name -> (nodes, rng) -> flat edge list within the grammar's edge count and labels."""
    b = g.base
    tree = g.family.kind == "tree"

    def m_for(n, r, dense=False):
        if tree:
            return n - 1
        return max(n - 1, min(g.k[1], n * (n - 1) // 2)) if dense else max(g.k[0], min(g.k[1], n - 1))

    def path(n, r):
        return path_edges(n, m_for(n, r), b)

    def star(n, r):
        return [v for i in range(1, n) for v in (b, b + i)][:2 * m_for(n, r)]

    def dense(n, r):
        m = m_for(n, r, dense=True)
        k = 2
        while k * (k - 1) // 2 + (n - k) < m and k < n:
            k += 1
        edges = [(i, j) for i in range(k) for j in range(i + 1, k)] + [(i - 1, i) for i in range(k, n)]
        return [v + b for e in edges[:m] for v in e]

    def rand(n, r):
        return random_graph(n, m_for(n, r), b, r)

    def caterpillar(n, r):
        half = n // 2
        edges = [(i, i + 1) for i in range(half - 1)] + [(r.randrange(max(1, half)), i) for i in range(half, n)]
        return [x + b for e in edges[:m_for(n, r)] for x in e]

    def binary(n, r):
        return [x + b for i in range(1, n) for x in ((i - 1) // 2, i)][:2 * m_for(n, r)]

    return {"random": rand, "path": path, "star": star, "dense": dense, "caterpillar": caterpillar,
            "binary-tree": binary}


def random_graph(n: int, m: int, base: int, r: random.Random) -> list[int]:
    """A random tree on N nodes plus random extra edges up to M: connected, no loops, no repeats."""
    order = list(range(n))
    r.shuffle(order)
    edges = [(order[r.randrange(i)], order[i]) for i in range(1, n)]
    seen = {frozenset(e) for e in edges}
    while len(edges) < m and len(seen) < n * (n - 1) // 2:
        u, v = r.randrange(n), r.randrange(n)
        if u != v and frozenset((u, v)) not in seen:
            seen.add(frozenset((u, v)))
            edges.append((u, v))
    return [x + base for e in edges[:m] for x in e]


def random_like(g: Grammar, x: Inst, r: random.Random) -> Inst:
    """A random legal-looking instance of X's exact shape: the baseline a slowdown is measured on."""
    kind = g.family.kind
    if kind in ("ints", "number"):
        return Inst(int_generators(g)["random"](len(x.nums), r), k=x.k)
    if kind in ("graph", "tree"):
        return Inst(random_graph(x.n, len(x.nums) // 2, g.base, r), n=x.n)
    abc = g.alphabet or "".join(sorted({c for s in x.strs for c in s}))
    return Inst(strs=["".join(r.choices(abc, k=len(s))) for s in x.strs])


def _wrap(fns: dict, build) -> dict:
    """Each generator's output as an Inst: BUILD(fn, scale, rng)."""
    return {name: functools.partial(build, fn) for name, fn in fns.items()}


def generators(g: Grammar):
    """name -> (scale, rng) -> Inst for the grammar's kind; 'random' is always there."""
    kind = g.family.kind
    if kind in ("ints", "number"):
        width = 2 if g.family.name == "pairs" else 1
        ks = (g.k[0], g.k[1], (g.k[0] + g.k[1]) // 2)
        return _wrap(int_generators(g), lambda fn, n, r: Inst(fn(n * width if kind == "ints" else 2, r),
                                                              k=r.choice(ks)))
    if kind == "string":
        return _wrap(string_generators(g), lambda fn, n, r: Inst(strs=[fn(n, r)]))
    if kind == "two-strings":
        return _wrap(text_pattern_generators(g), lambda fn, n, r: Inst(strs=list(fn(n, r))))
    if kind == "grid":
        return _wrap(grid_generators(g), lambda fn, n, r: Inst(strs=fn(n, r)))
    return _wrap(graph_generators(g), lambda fn, n, r: Inst(fn(n, r), n=n))


def mix(a: Inst, b: Inst, r: random.Random) -> Inst:
    """Half of A, half of B (same size): arrays spliced, strings spliced at a random point."""
    if a.nums and len(a.nums) == len(b.nums) and not a.n:
        cut = r.randrange(1, max(2, len(a.nums)))
        return Inst(a.nums[:cut] + b.nums[cut:], a.k)
    if a.strs and len(a.strs) == len(b.strs) == 1:
        cut = r.randrange(1, max(2, len(a.strs[0])))
        return Inst(strs=[a.strs[0][:cut] + b.strs[0][cut:]])
    return b
