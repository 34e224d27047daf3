"""Chunking: one passage per paragraph, short ones joined, long ones split losslessly."""

from __future__ import annotations

import hashlib
from itertools import pairwise
from pathlib import Path

import pytest

from qa_bot.chunking import CHUNKER_VERSION, chunk_article, chunk_corpus, split_sentences
from qa_bot.types import Article

SHARED = Path(__file__).resolve().parents[2] / "shared"
FINEWS = SHARED / "corpus-sample" / "finews"


def article(*paragraphs: str, path: str = "_posts/2021-12-08-1.md", title: str = "标题") -> Article:
    return Article(
        path=path,
        title=title,
        date="2021-12-08T10:46:18",
        categories=("emnews",),
        tags=(),
        url="http://example.com/1.html",
        source=None,
        paragraphs=paragraphs,
        content_hash="0" * 64,
    )


LONG_A = "这是第一段足够长的正文内容，用来保证它绝对不会被当成短段落合并。"
LONG_B = "这是第二段同样足够长的正文内容，它也绝对不会被当成短段落来合并。"


def test_version_is_a_string() -> None:
    assert isinstance(CHUNKER_VERSION, str) and CHUNKER_VERSION


def test_one_line_flash_post_is_one_chunk() -> None:
    art = article("北向资金净流入达30亿元。")
    (chunk,) = chunk_article(art)
    assert chunk.chunk_id == "_posts/2021-12-08-1.md#0"
    assert chunk.ordinal == 0
    assert chunk.article_path == art.path
    assert (chunk.title, chunk.date, chunk.url) == (art.title, art.date, art.url)
    assert chunk.text == "北向资金净流入达30亿元。"
    assert chunk.embed_text == "标题\n北向资金净流入达30亿元。"
    assert chunk.text_hash == hashlib.sha256(chunk.embed_text.encode("utf-8")).hexdigest()


def test_one_chunk_per_long_paragraph() -> None:
    chunks = chunk_article(article(LONG_A, LONG_B))
    assert [c.text for c in chunks] == [LONG_A, LONG_B]
    assert [c.ordinal for c in chunks] == [0, 1]


def test_heading_joins_following_paragraph() -> None:
    chunks = chunk_article(article(LONG_A, "小标题", LONG_B))
    assert [c.text for c in chunks] == [LONG_A, "小标题\n" + LONG_B]


def test_consecutive_short_paragraphs_join_the_next() -> None:
    chunks = chunk_article(article("一、", "小标题", LONG_B))
    assert [c.text for c in chunks] == ["一、\n小标题\n" + LONG_B]


def test_short_trailing_line_joins_previous() -> None:
    chunks = chunk_article(article(LONG_A, LONG_B, "完。"))
    assert [c.text for c in chunks] == [LONG_A, LONG_B + "\n完。"]


def test_all_short_article_is_one_chunk() -> None:
    (chunk,) = chunk_article(article("祝贺开站"))
    assert chunk.text == "祝贺开站"


def test_min_chars_is_configurable() -> None:
    chunks = chunk_article(article("小标题", LONG_B), min_chars=1)
    assert [c.text for c in chunks] == ["小标题", LONG_B]


def count_chars(text: str) -> int:
    """A stand-in tokenizer: one token per character plus two specials."""
    return len(text) + 2


def test_long_paragraph_split_at_sentence_ends_without_loss() -> None:
    sentences = [f"第{i}句话说的是一件事情，数字是{i}.5亿元。" for i in range(20)]
    para = "".join(sentences)
    title = "标题"
    max_tokens = 80
    chunks = chunk_article(
        article(para, title=title), count_tokens=count_chars, max_tokens=max_tokens
    )
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == para  # nothing lost, nothing duplicated
    for c in chunks:
        assert count_chars(c.embed_text) <= max_tokens
        assert c.text.endswith("。")  # cut at sentence ends, never mid-sentence
        assert c.embed_text.startswith(title + "\n")
    # greedy packing: each chunk is as full as the next sentence allows
    for c, nxt in pairwise(chunks):
        first_next = split_sentences(nxt.text)[0]
        assert count_chars(c.embed_text + first_next) > max_tokens


def test_custom_counter_is_used() -> None:
    calls: list[str] = []

    def counter(text: str) -> int:
        calls.append(text)
        return 2 * len(text)  # a "heavier" tokenizer than the default estimate

    para = "甲" * 20 + "。" + "乙" * 20 + "。"
    assert len(chunk_article(article(para), max_tokens=100)) == 1
    chunks = chunk_article(article(para), count_tokens=counter, max_tokens=60)
    assert calls
    assert [c.text for c in chunks] == ["甲" * 20 + "。", "乙" * 20 + "。"]


def test_overlong_sentence_split_at_commas_then_hard_cut() -> None:
    clauses = "，".join(["一二三四五六七八九十"] * 6) + "。"
    chunks = chunk_article(article(clauses), count_tokens=count_chars, max_tokens=30)
    assert "".join(c.text for c in chunks) == clauses
    assert all(count_chars(c.embed_text) <= 30 for c in chunks)
    assert all(c.text.endswith(("，", "。")) for c in chunks)

    run = "无标点" * 40
    chunks = chunk_article(article(run), count_tokens=count_chars, max_tokens=30)
    assert "".join(c.text for c in chunks) == run
    assert all(count_chars(c.embed_text) <= 30 for c in chunks)
    assert len(chunks) == -(-len(run) // (30 - 2 - len("标题\n")))


def test_title_longer_than_window_does_not_shatter_text() -> None:
    chunks = chunk_article(
        article(LONG_A, title="长" * 100), count_tokens=count_chars, max_tokens=50
    )
    assert [c.text for c in chunks] == [LONG_A]


def test_default_estimate_splits_paragraph_over_window() -> None:
    para = "这是一句不太长的话。" * 60  # 600 chars > 512
    chunks = chunk_article(article(para))
    assert len(chunks) == 2
    assert "".join(c.text for c in chunks) == para
    assert all(len(c.embed_text) + 2 <= 512 for c in chunks)


def test_split_sentences_keeps_punctuation_and_closers() -> None:
    text = "他说：“好。”然后走了！汇率报6.35，真的吗?是的; End. 最后"
    parts = split_sentences(text)
    assert "".join(parts) == text
    assert parts == ["他说：“好。”", "然后走了！", "汇率报6.35，真的吗?", "是的; ", "End. ", "最后"]


def test_chunk_ids_stable_and_unique() -> None:
    arts = [article(LONG_A, LONG_B, path="a.md"), article(LONG_A, path="b.md")]
    first = chunk_corpus(arts)
    second = chunk_corpus(arts)
    assert first == second
    ids = [c.chunk_id for c in first]
    assert ids == ["a.md#0", "a.md#1", "b.md#0"]
    assert len(set(ids)) == len(ids)
    # same text under the same title shares a hash (the vector cache key), not an id
    assert first[0].text_hash == first[2].text_hash


def test_max_tokens_must_be_positive() -> None:
    with pytest.raises(ValueError):
        chunk_article(article(LONG_A), max_tokens=0)


@pytest.mark.shared
def test_finews_chunks() -> None:
    if not FINEWS.is_dir():
        pytest.skip("../shared/corpus-sample/finews not available")
    from qa_bot.ingest import load_corpus

    articles, _ = load_corpus(FINEWS)
    chunks = chunk_corpus(articles)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    for art in articles:
        mine = [c for c in chunks if c.article_path == art.path]
        assert [c.ordinal for c in mine] == list(range(len(mine)))
        if len(art.paragraphs) == 1:
            assert len(mine) == 1  # one-line flash posts
        # every character of every paragraph survives, in order
        assert "".join(c.text for c in mine).replace("\n", "") == "".join(art.paragraphs)
    assert all(len(c.embed_text) + 2 <= 512 for c in chunks)
