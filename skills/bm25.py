"""Okapi BM25 over code-aware tokens: the text similarity retrieval falls back to when no
local embedding model is installed (and the one the `rules` proposer always uses, since it
is instant and deterministic)."""
from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
STOP = frozenset("the a an of to in on for and or is are be it its as at by with from this that then than "
                 "self return def import if else not no".split())


def tokens(text: str) -> list[str]:
    """Identifiers are kept whole and also split at `_` and camelCase humps, so
    `sync_with_stdio` matches a card that says "stdio" and `LayerNorm` one that says "norm"."""
    out = []
    for word in _WORD.findall(text):
        low = word.lower()
        parts = [p.lower() for piece in word.split("_") for p in _CAMEL.findall(piece)]
        for t in {low, *parts}:
            if len(t) > 1 and t not in STOP:
                out.append(t)
    return out


class BM25:
    def __init__(self, documents: list[str], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.docs = [Counter(tokens(d)) for d in documents]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        df: Counter = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: str) -> list[float]:
        """One score per document; each distinct query term counts once (a long source
        repeating `x` a hundred times is not a hundred times about `x`)."""
        terms = set(tokens(query)) & self.idf.keys()
        out = []
        for doc, length in zip(self.docs, self.lengths):
            s = 0.0
            norm = self.k1 * (1 - self.b + self.b * length / (self.avg or 1.0))
            for t in terms:
                f = doc.get(t)
                if f:
                    s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
            out.append(s)
        return out
