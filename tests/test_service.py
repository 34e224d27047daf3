"""The QA service with the deterministic embedder: answers, follow-ups, hot reload."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa_bot.config import Settings
from qa_bot.embedding import HashEmbedder
from qa_bot.service import QAService

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "corpus" / "_posts" / "2021-12-28-NW202112282228830298.md"

FLASH = """---
layout: post
title: "{title}"
date: {date}
categories: emnews
tags: 东财滚动新闻
---

{body}

<http://finance.eastmoney.com/news/{id}.html>
"""


def write_post(folder: Path, name: str, title: str, body: str, date: str = "2022-01-05 09:00:00") -> Path:
    p = folder / "_posts" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(FLASH.format(title=title, date=date, body=body, id=name[:-3]), encoding="utf-8")
    return p


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    c = tmp_path / "corpus"
    (c / "_posts").mkdir(parents=True)
    shutil.copy(SEED, c / "_posts" / SEED.name)
    write_post(c, "2021-12-08-1.md", "离岸人民币兑美元升至2018年以来最高水平", "离岸人民币兑美元升至6.3512，为2018年以来最高水平。", "2021-12-08 10:46:18")
    return c


@pytest.fixture()
def service(tmp_path: Path, corpus: Path) -> QAService:
    s = Settings(
        QA_BOT_CORPUS_DIR=corpus, QA_BOT_INDEX_DIR=tmp_path / "idx", QA_BOT_CACHE_DIR=tmp_path / "cache",
        QA_BOT_READER="off",  # the heuristic extractor: these tests are about the service
    )
    emb = HashEmbedder(dim=256)
    svc = QAService(s, embedder=emb, query_encoder=emb)
    svc.update(full=True)
    return svc


def test_answers_the_headline_question(service: QAService) -> None:
    a = service.ask("算力小镇投资多少")
    assert not a.abstained
    assert a.answer is not None and "30.67亿元" in a.answer and len(a.answer) <= 120
    top = a.sources[0]
    assert "30.67亿元" in top.text
    assert top.title.startswith("【财经分析】杭州打造算力小镇")
    assert top.date == "2021-12-28T19:27:59+08:00"
    assert top.url and top.url.startswith("http://")
    assert a.highlight is not None
    s, e = a.highlight
    assert "30.67亿元" in a.answer[s:e]
    data = a.to_json()
    assert set(data) >= {"question", "answer", "abstained", "sources", "timing_ms"}
    assert data["timing_ms"]["total"] > 0


def test_follow_up_is_resolved_per_conversation(service: QAService) -> None:
    service.ask("算力小镇投资多少", conversation="chat-1")
    a = service.ask("那它占地多大？", conversation="chat-1")
    assert a.resolved_question is not None and "算力小镇" in a.resolved_question
    assert a.answer is not None and "138亩" in a.answer
    other = service.ask("那它占地多大？", conversation="chat-2")
    assert other.resolved_question is None


def test_new_generation_is_picked_up_without_restart(service: QAService, corpus: Path) -> None:
    before = service.ask("巨化股份HFO装置年产能多少")
    assert not any("巨化" in s.text for s in before.sources)
    gen0 = service.stats().generation
    write_post(corpus, "2022-05-26-2.md", "巨化股份新冷媒装置", "巨化股份称，公司两套HFO新型制冷剂装置年产能合计8000吨/年，预计年内投产。")
    # a second service object plays the updater process (CLI, cron or watcher)
    updater = QAService(service.settings, embedder=service.embedder, query_encoder=service.query_encoder)
    report, _ = updater.update()
    assert report.added == 1 and report.embedded_chunks == 1
    after = service.ask("巨化股份HFO装置年产能多少")
    assert service.stats().generation != gen0
    assert after.answer is not None and "8000吨/年" in after.answer


def test_latest_and_stats(service: QAService) -> None:
    latest = service.latest(2)
    assert latest[0].title.startswith("【财经分析】")
    st = service.stats()
    assert st.articles == 2 and st.chunks >= 10 and st.model == "hash-bigram-256"


def test_reindex_reports_changes(service: QAService, corpus: Path) -> None:
    (corpus / "_posts" / "2021-12-08-1.md").unlink()
    out = service.reindex()
    assert out.removed == 1 and out.embedded_chunks == 0
    a = service.ask("离岸人民币兑美元升至多少")
    assert not any("6.3512" in s.text for s in a.sources)


def test_damaged_new_manifest_keeps_serving_the_loaded_generation(service: QAService) -> None:
    first = service.ask("算力小镇投资多少")
    (service.settings.index_dir / "MANIFEST.json").write_text("{garbage", encoding="utf-8")
    again = service.ask("算力小镇投资多少")
    assert again.answer == first.answer
    fresh = QAService(service.settings, embedder=service.embedder, query_encoder=service.query_encoder)
    from qa_bot.index import IndexProblem

    with pytest.raises(IndexProblem):
        fresh.ask("算力小镇投资多少")


def test_sentence_scores_reach_the_hits(service: QAService) -> None:
    hits = service.retrieve("算力小镇占地面积多大", 3)
    assert hits[0].sentences is not None
    spans = hits[0].sentences.spans  # type: ignore[attr-defined]
    assert any("138亩" in hits[0].chunk.text[a:b] for a, b in spans)


def test_index_of_another_layout_is_refused_then_updated(service: QAService) -> None:
    import json

    from qa_bot.index import IndexOutdated

    manifest = service.settings.index_dir / "MANIFEST.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["chunker_version"] = "0+old"
    manifest.write_text(json.dumps(data), encoding="utf-8")
    fresh = QAService(service.settings, embedder=service.embedder, query_encoder=service.query_encoder)
    assert not fresh.index_is_current()
    with pytest.raises(IndexOutdated, match="index update"):
        fresh.ask("算力小镇投资多少")
    report, _ = fresh.update()
    assert report.published and report.embedded_chunks == 0
    assert fresh.index_is_current()
    assert "30.67亿元" in (fresh.ask("算力小镇投资多少").answer or "")


def test_the_extractor_cuts_with_the_index_tokenizer(service: QAService, monkeypatch: pytest.MonkeyPatch) -> None:
    import qa_bot.service as service_module
    from qa_bot.lexical import ChineseTokenizer, default_tokenizer

    seen = []
    real = service_module.extract_answer

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs.get("tokenizer"))
        return real(*args, **kwargs)

    monkeypatch.setattr(service_module, "extract_answer", spy)
    a = service.ask("算力小镇投资多少")
    assert a.answer is not None and "30.67亿元" in a.answer
    # the index's own tokenizer (with the corpus's user words), not the fallback default
    assert len(seen) == 1 and isinstance(seen[0], ChineseTokenizer) and seen[0] is not default_tokenizer()
