"""Sentence-embedding similarity between a target and the cards, using the same local
all-MiniLM-L6-v2 loader as the epsilon-net (`kopt.agent.search.novelty`). Optional: when the model
package is not installed, `similarities` returns None and retrieval uses BM25.

Card vectors are computed in one padded batch (one forward pass instead of one per card)
and cached on disk by text hash under `$KOPT_CACHE_DIR` (default `~/.cache/kopt`), so only
the target is embedded on later runs.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np


@lru_cache(maxsize=1)
def _embedder():
    from kopt.agent.search.novelty import make_embedder

    return make_embedder()


def available() -> bool:
    return _embedder() is not None


def _cache_file() -> Path:
    root = Path(os.environ.get("KOPT_CACHE_DIR") or Path.home() / ".cache" / "kopt")
    return root / "skill-embeddings.npz"


_memory: dict[str, np.ndarray] = {}


def _load_cache() -> None:
    if _memory:
        return
    try:
        with np.load(_cache_file()) as data:
            _memory.update({k: data[k] for k in data.files})
    except (OSError, ValueError):
        pass


def _save_cache() -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **_memory)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs time


def _batch(emb, texts: list[str]) -> list[np.ndarray]:
    """Mean-pooled, normalised vectors for short texts in one forward pass; the same
    pooling as CodeEmbedder.embed on a single chunk (special tokens included)."""
    torch = emb.torch
    step = emb.max_tokens - 2
    rows = [[emb.tok.cls_token_id, *emb.tok(t, add_special_tokens=False, verbose=False)["input_ids"][:step],
             emb.tok.sep_token_id] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [emb.tok.pad_token_id or 0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        hidden = emb.model(input_ids=ids, attention_mask=mask).last_hidden_state
    v = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    v = v / v.norm(dim=1, keepdim=True)
    return [x.numpy() for x in v]


def _vectors(emb, documents: list[str]) -> list[np.ndarray]:
    _load_cache()
    keys = [hashlib.sha256(d.encode()).hexdigest()[:24] for d in documents]
    missing = sorted({k: d for k, d in zip(keys, documents) if k not in _memory}.items())
    for i in range(0, len(missing), 16):
        chunk = missing[i:i + 16]
        for (k, _), vec in zip(chunk, _batch(emb, [d for _, d in chunk])):
            _memory[k] = vec
    if missing:
        _save_cache()
    return [_memory[k] for k in keys]


def similarities(query: str, documents: list[str]) -> list[float] | None:
    """Cosine similarity of `query` to each document, or None without the model."""
    emb = _embedder()
    if emb is None:
        return None
    q = emb.embed(query).numpy()
    return [float(q @ v) for v in _vectors(emb, documents)]
