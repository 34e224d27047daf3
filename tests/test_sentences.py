"""Sentence vectors: built from the cache, memory-mapped, and used to rerank passages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_retrieval import CHUNKS, MemoryReader, make_chunk

from qa_bot.embedding import HashEmbedder
from qa_bot.index import CachedVectors
from qa_bot.sentences import SentenceVectors, sentence_spans, write_sentence_vectors
from qa_bot.types import Chunk, ScoredChunk


class Counting(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(dim=128)
        self.embedded = 0

    def embed_passages(self, texts):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return super().embed_passages(texts)


def test_spans_cover_sentences() -> None:
    text = "第一句。第二句！第三句"
    assert [text[a:b] for a, b in sentence_spans(text)] == ["第一句。", "第二句！", "第三句"]


def build_sentence_vectors(chunks: list[Chunk], gen_dir: Path, emb: HashEmbedder, cache: Path) -> CachedVectors:
    """Sentence vectors as the local store's update writes them: through the vector cache."""
    with CachedVectors(cache, emb) as source:
        write_sentence_vectors(gen_dir, chunks, source.sentence_vectors(chunks), emb.dim)
    return source


def test_build_reuses_cached_sentences(tmp_path: Path) -> None:
    emb = Counting()
    cache = tmp_path / "cache.sqlite"
    first = build_sentence_vectors(CHUNKS, tmp_path / "g1", emb, cache)
    n = emb.embedded
    assert first.embedded_sentences == n > 0
    second = build_sentence_vectors(CHUNKS, tmp_path / "g2", emb, cache)
    assert second.embedded_sentences == 0 and second.reused_sentences == n and emb.embedded == n
    sv = SentenceVectors(tmp_path / "g2")
    q = emb.embed_queries(["占地面积138亩"])[0]
    sc = sv.scores(CHUNKS[0].chunk_id, q)
    assert sc is not None and len(sc.spans) == len(sc.sims) == 1
    assert np.isclose(sc.best, float(emb.embed_passages([CHUNKS[0].text])[0] @ q), atol=1e-2)


def test_rerank_prefers_passage_with_matching_sentence(tmp_path: Path) -> None:
    from qa_bot.retrieval import HybridRetriever, RetrievalConfig

    a = make_chunk("x.md", 0, "报告", "市场波动加大。甲公司去年营收增长了百分之二十。其他内容很多很多。")
    b = make_chunk("y.md", 0, "报告", "市场波动加大，投资者情绪谨慎，其他内容很多很多。")
    emb = HashEmbedder(dim=256)
    build_sentence_vectors([a, b], tmp_path, emb, tmp_path / "c.sqlite")
    r = HybridRetriever(MemoryReader([], emb, sentences=SentenceVectors(tmp_path)), emb, RetrievalConfig())  # type: ignore[arg-type]
    q = emb.embed_queries(["甲公司去年营收增长了多少"])[0]
    # b starts ahead; a's matching sentence must lift it above b
    hits = r._rerank_by_sentence([ScoredChunk(b, 0.9), ScoredChunk(a, 0.5)], q)
    assert hits[0].chunk is a
