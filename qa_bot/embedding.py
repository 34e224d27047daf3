"""Embedders: text → L2-normalized float32 vectors.

The index only ever talks to the :class:`Embedder` protocol. ``HashEmbedder`` is a
small deterministic stand-in for unit tests; the real models live below it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """What the index and retriever need from a model."""

    #: identifies the model in the index manifest; an index built with another name is refused
    name: str
    dim: int
    #: the model's window in tokens (including special tokens and the e5 prefix)
    max_tokens: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalized."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalized."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model would use for ``text`` as a passage (prefix and specials included)."""
        ...


class HashEmbedder:
    """Deterministic bag-of-character-bigrams embedder for unit tests.

    Texts sharing bigrams get similar vectors, so retrieval tests mean something,
    without loading a model.
    """

    def __init__(self, dim: int = 64, name: str = "hash-bigram", max_tokens: int = 512) -> None:
        self.dim = dim
        self.name = f"{name}-{dim}"
        self.max_tokens = max_tokens

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        grams = [text[i : i + 2] for i in range(max(len(text) - 1, 1))]
        for g in grams:
            h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        n = float(np.linalg.norm(v))
        if n == 0.0:
            v[0] = 1.0
            n = 1.0
        return v / n

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_passages(texts)

    def count_tokens(self, text: str) -> int:
        return len(text) + 2
