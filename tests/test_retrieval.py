"""Hybrid retrieval on its own: lexical tokens, user dictionary, fusion, dedup, recency."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from qa_bot.embedding import HashEmbedder
from qa_bot.lexical import (
    ChineseTokenizer,
    LexicalIndex,
    build_lexical,
    derive_user_words,
    load_lexical,
)
from qa_bot.retrieval import HybridRetriever, RetrievalConfig, collapse_duplicates
from qa_bot.sentences import ChunkSentences, SentenceVectors
from qa_bot.types import Chunk, ScoredChunk


def make_chunk(path: str, ordinal: int, title: str, text: str, date: str | None = None) -> Chunk:
    embed = f"{title}\n{text}"
    return Chunk(
        chunk_id=f"{path}#{ordinal}",
        article_path=path,
        ordinal=ordinal,
        title=title,
        date=date,
        url=None,
        text=text,
        embed_text=embed,
        text_hash=hashlib.sha256(embed.encode()).hexdigest(),
    )


class MemoryReader:
    """The part of a StoreReader retrieval uses, over chunks in memory: exact inner
    product over HashEmbedder vectors (stands in for FAISS), the real BM25 index and
    sentence vectors when given."""

    def __init__(
        self,
        chunks: list[Chunk],
        emb: HashEmbedder,
        lexical: LexicalIndex | None = None,
        sentences: SentenceVectors | None = None,
    ) -> None:
        self.chunks = chunks
        self.by_id = {c.chunk_id: c for c in chunks}
        self.vecs = emb.embed_passages([c.embed_text for c in chunks]) if chunks else None
        self.lexical, self.sentences = lexical, sentences
        self.tokenizer = lexical.tokenizer if lexical else ChineseTokenizer()

    def dense_search(self, q: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        if self.vecs is None:
            return [[]]
        s = self.vecs @ q[0]
        order = np.argsort(-s)[:k]
        return [[(self.chunks[i], float(s[i])) for i in order]]

    def lexical_search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        top = self.lexical.top(query, k) if self.lexical else []
        return [(self.by_id[cid], s) for cid, s in top]

    def sentence_vectors(self, chunk_ids: list[str]) -> dict[str, ChunkSentences]:
        return self.sentences.get(chunk_ids) if self.sentences else {}


CHUNKS = [
    make_chunk("a.md", 0, "杭州打造算力小镇", "中国(杭州)算力小镇位于杭州市临平区，占地面积138亩。", "2021-12-28T19:27:59+08:00"),
    make_chunk("a.md", 1, "杭州打造算力小镇", "该小镇计划于2021-2023年内投资约30.67亿元，其中特色产业项目投资占比100%。", "2021-12-28T19:27:59+08:00"),
    make_chunk("b.md", 0, "离岸人民币兑美元升至2018年以来最高水平", "离岸人民币兑美元升至6.3512，为2018年以来最高水平。", "2021-12-08T10:46:18"),
    make_chunk("c.md", 0, "印度央行维持利率不变", "印度央行将关键利率维持在4.00%不变，符合市场预期。", "2021-12-08T13:00:00"),
    make_chunk("d.md", 0, "印度央行维持利率不变", "印度央行将关键利率维持在4.00%不变，符合市场预期！", "2022-01-02T09:00:00"),
]


@pytest.fixture(scope="module")
def tokenizer() -> ChineseTokenizer:
    return ChineseTokenizer()


def test_query_tokens_drop_question_words(tokenizer: ChineseTokenizer) -> None:
    toks = tokenizer.query_tokens("算力小镇投资多少？")
    assert "多少" not in toks and "？" not in toks
    assert "投资" in toks


def test_user_words_derived_from_titles() -> None:
    words = derive_user_words(CHUNKS[:2])
    assert "算力小镇" in words
    t = ChineseTokenizer(words)
    assert "算力小镇" in t.tokens("算力小镇投资多少")


@pytest.fixture()
def retriever(tmp_path: Path) -> HybridRetriever:
    build_lexical(CHUNKS, tmp_path, None)
    lex = load_lexical(tmp_path)
    emb = HashEmbedder(dim=256)
    return HybridRetriever(MemoryReader(CHUNKS, emb, lex), emb)  # type: ignore[arg-type]


def test_lexical_index_reuses_tokens_of_previous_generation(tmp_path: Path) -> None:
    g1, g2 = tmp_path / "g1", tmp_path / "g2"
    first = build_lexical(CHUNKS[:3], g1, None)
    assert first["tokenized"] == 3
    second = build_lexical(CHUNKS, g2, g1)
    assert second == {"tokenized": 2, "reused": 3, "user_words": second["user_words"]}
    assert load_lexical(g2).n_docs == len(CHUNKS)


def test_incremental_user_words_are_what_a_full_derivation_gives(tmp_path: Path) -> None:
    # an update derives words from its new articles only: the result must not differ
    g1, g2, full = tmp_path / "g1", tmp_path / "g2", tmp_path / "full"
    build_lexical(CHUNKS[:2], g1, None)  # 算力小镇 comes from the first article
    build_lexical(CHUNKS, g2, g1)
    build_lexical(CHUNKS, full, None)
    words = (g2 / "lexical" / "userdict.txt").read_text(encoding="utf-8").split()
    assert words == (full / "lexical" / "userdict.txt").read_text(encoding="utf-8").split()
    assert "算力小镇" in words and set(words) >= derive_user_words(CHUNKS[2:])


def test_hybrid_finds_the_investment_passage(retriever: HybridRetriever) -> None:
    hits = retriever.search("算力小镇投资多少", k=3)
    assert hits[0].chunk.chunk_id == "a.md#1"
    assert hits[0].lexical is not None and hits[0].lexical > 0


@pytest.mark.parametrize("fusion", ["score", "rrf"])
def test_both_fusions_rank_lexical_match_first(retriever: HybridRetriever, fusion: str) -> None:
    import dataclasses

    retriever.config = dataclasses.replace(retriever.config, fusion=fusion)
    hits = retriever.search("离岸人民币最高水平", k=2)
    assert hits[0].chunk.article_path == "b.md"


def test_near_duplicates_collapse(retriever: HybridRetriever) -> None:
    hits = retriever.search("印度央行利率", k=5)
    paths = [h.chunk.article_path for h in hits]
    assert ("c.md" in paths) != ("d.md" in paths)


def test_collapse_keeps_best_first() -> None:
    a = ScoredChunk(CHUNKS[3], 0.9)
    b = ScoredChunk(CHUNKS[4], 0.8)
    c = ScoredChunk(CHUNKS[0], 0.7)
    assert collapse_duplicates([a, b, c], 0.8) == [a, c]


def test_recent_cue_prefers_newer_article(retriever: HybridRetriever) -> None:
    import dataclasses

    retriever.config = dataclasses.replace(retriever.config, dedup_threshold=1.01, recency_weight=0.5)
    plain = retriever.search("印度央行利率", k=2)
    recent = retriever.search("最新 印度央行利率", k=2)
    assert recent[0].chunk.article_path == "d.md"
    assert {h.chunk.article_path for h in plain} == {"c.md", "d.md"}


def test_unknown_words_give_no_lexical_hits(retriever: HybridRetriever) -> None:
    assert retriever.reader.lexical_search("比特币", 50) == []
    assert [c.article_path for c, _ in retriever.reader.lexical_search("算力小镇", 50)][:1] == ["a.md"]


def test_config_defaults_are_documented_values() -> None:
    cfg = RetrievalConfig()
    assert cfg.fusion in ("score", "rrf") and 0 <= cfg.dense_weight <= 1
