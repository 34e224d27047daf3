"""Hybrid retrieval: dense (FAISS over e5 vectors) + lexical (BM25 over jieba tokens).

Fusion is a weighted sum of per-query normalized scores. Raw e5 cosines bunch in
0.8–0.9 and BM25 scores are unbounded, so each list is rescaled to [0, 1] over the
candidate pool before mixing; ``qa-bot eval`` compares this with reciprocal-rank
fusion (``fusion="rrf"``), see README "Answer quality".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import numpy as np

from .sentences import score_sentences
from .types import Chunk, ScoredChunk

if TYPE_CHECKING:
    from .index.store import StoreReader

K = TypeVar("K")

RECENT_CUES = re.compile(r"最新|今天|今日|最近|近日|近期|目前|现在|眼下|刚刚")


class QueryEncoder(Protocol):
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class RetrievalConfig:
    fusion: Literal["score", "rrf"] = "score"
    dense_weight: float = 0.5
    candidates: int = 50
    rrf_k: int = 60
    dedup_threshold: float = 0.8  # char-bigram Jaccard above which passages are one story
    recency_weight: float = 0.15
    # the best-matching sentence of each of the top ``rerank`` passages adds up to
    # ``sentence_weight`` (rescaled over those passages); see qa_bot.sentences
    rerank: int = 20
    sentence_weight: float = 0.7


def _bigrams(text: str) -> set[str]:
    t = re.sub(r"\s+", "", text)
    return {t[i : i + 2] for i in range(len(t) - 1)} or {t}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def collapse_duplicates(
    hits: Sequence[ScoredChunk], threshold: float, limit: int | None = None
) -> list[ScoredChunk]:
    """Keep the best of each group of near-identical passages (same story, two outlets),
    stopping once ``limit`` are kept."""
    kept: list[ScoredChunk] = []
    grams: list[set[str]] = []
    for h in hits:
        if limit is not None and len(kept) >= limit:
            break
        g = _bigrams(h.chunk.text)
        if any(jaccard(g, other) >= threshold for other in grams):
            continue
        kept.append(h)
        grams.append(g)
    return kept


def _minmax(values: dict[K, float]) -> dict[K, float]:
    if not values:
        return {}
    lo, hi = min(values.values()), max(values.values())
    if hi - lo < 1e-9:
        return {k: (1.0 if hi > 0 else 0.0) for k in values}
    return {k: (v - lo) / (hi - lo) for k, v in values.items()}


class HybridRetriever:
    """Searches one published version (a ``StoreReader``); create a new one when a
    new version is published."""

    def __init__(
        self, reader: StoreReader, encoder: QueryEncoder, config: RetrievalConfig | None = None
    ) -> None:
        self.reader = reader
        # QAService.examine segments questions with ``retriever.lexical.tokenizer``:
        # the reader's, so questions are cut with the index's user words
        self.lexical = reader
        self.encoder = encoder
        self.config = config or RetrievalConfig()

    def search(self, question: str, k: int = 5, *, encoded: np.ndarray | None = None) -> list[ScoredChunk]:
        cfg = self.config
        qvec = encoded if encoded is not None else self.encoder.embed_queries([question])
        q = np.asarray(qvec, dtype=np.float32).reshape(1, -1)
        dense_hits = self.reader.dense_search(q, cfg.candidates)[0]
        dense: dict[str, float] = {c.chunk_id: float(s) for c, s in dense_hits}
        chunks: dict[str, Chunk] = {c.chunk_id: c for c, _ in dense_hits}
        lexical: dict[str, float] = {}
        for c, s in self.reader.lexical_search(question, cfg.candidates):
            chunks.setdefault(c.chunk_id, c)
            lexical[c.chunk_id] = float(s)

        fused = self._fuse(dense, lexical)
        if RECENT_CUES.search(question):
            fused = self._prefer_recent(fused, chunks)
        ranked = sorted(fused.items(), key=lambda kv: kv[1], reverse=True)
        hits = [
            ScoredChunk(chunks[cid], score, dense.get(cid), lexical.get(cid)) for cid, score in ranked
        ]
        if cfg.sentence_weight > 0:
            hits = self._rerank_by_sentence(hits[: max(cfg.rerank, k)], q.reshape(-1))
        return collapse_duplicates(hits, cfg.dedup_threshold, k)

    def _rerank_by_sentence(self, hits: list[ScoredChunk], qvec: np.ndarray) -> list[ScoredChunk]:
        found = self.reader.sentence_vectors([h.chunk.chunk_id for h in hits])
        per = [
            score_sentences(found[h.chunk.chunk_id], qvec) if h.chunk.chunk_id in found else None
            for h in hits
        ]
        best = {i: s.best for i, s in enumerate(per) if s is not None}
        norm = _minmax(best)
        w = self.config.sentence_weight
        out = [
            ScoredChunk(h.chunk, h.score + w * norm.get(i, 0.0), h.dense, h.lexical, per[i])
            for i, h in enumerate(hits)
        ]
        return sorted(out, key=lambda h: h.score, reverse=True)

    def _fuse(self, dense: dict[str, float], lexical: dict[str, float]) -> dict[str, float]:
        cfg = self.config
        ids = set(dense) | set(lexical)
        if cfg.fusion == "rrf":
            d_rank = {cid: r for r, cid in enumerate(sorted(dense, key=dense.get, reverse=True))}
            l_rank = {cid: r for r, cid in enumerate(sorted(lexical, key=lexical.get, reverse=True))}
            out = {}
            for cid in ids:
                s = 0.0
                if cid in d_rank:
                    s += cfg.dense_weight / (cfg.rrf_k + d_rank[cid] + 1)
                if cid in l_rank:
                    s += (1 - cfg.dense_weight) / (cfg.rrf_k + l_rank[cid] + 1)
                out[cid] = s
            return out
        dn = _minmax(dense)
        # BM25 is scaled by its max only: a zero lexical score must stay zero, and a
        # question with one weak lexical hit should not get a full point for it.
        lmax = max(lexical.values(), default=0.0)
        ln = {cid: v / lmax for cid, v in lexical.items()} if lmax > 0 else {}
        return {
            cid: cfg.dense_weight * dn.get(cid, 0.0) + (1 - cfg.dense_weight) * ln.get(cid, 0.0)
            for cid in ids
        }

    def _prefer_recent(self, fused: dict[str, float], chunks: dict[str, Chunk]) -> dict[str, float]:
        dated = sorted({chunks[cid].date for cid in fused if chunks[cid].date})
        if len(dated) < 2:
            return fused
        rank = {d: i / (len(dated) - 1) for i, d in enumerate(dated)}
        w = self.config.recency_weight
        return {
            cid: s + w * rank.get(chunks[cid].date or "", 0.0) for cid, s in fused.items()
        }
