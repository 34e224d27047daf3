"""`qa-bot eval` pieces: question files, generated corpora, metrics."""

from __future__ import annotations

import json
from pathlib import Path

from qa_bot.evaluate import Question, load_questions, run_eval, write_posts_corpus
from qa_bot.ingest import load_corpus
from qa_bot.types import Answer, Source


def test_load_jsonl_and_squad(tmp_path: Path) -> None:
    j = tmp_path / "q.jsonl"
    j.write_text(
        json.dumps({"q": "投资多少", "answer": "30.67亿元"}, ensure_ascii=False) + "\n"
        + json.dumps({"q": "比特币多少钱", "answer": None}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    qs, posts = load_questions(j)
    assert posts is None and qs == [Question("投资多少", ("30.67亿元",)), Question("比特币多少钱", ())]
    sq = tmp_path / "s.json"
    sq.write_text(json.dumps({"data": [{"title": "泡泡战士", "paragraphs": [{"context": "生命数耗完即算为踢爆。", "qas": [{"question": "生命数耗完即算为什么？", "answers": [{"text": "踢爆"}, {"text": "踢爆"}]}]}]}]}, ensure_ascii=False), encoding="utf-8")
    qs, posts = load_questions(sq)
    assert qs == [Question("生命数耗完即算为什么？", ("踢爆",))]
    assert posts == [("泡泡战士", "生命数耗完即算为踢爆。")]
    write_posts_corpus(posts, tmp_path / "c")
    articles, skipped = load_corpus(tmp_path / "c")
    assert not skipped and articles[0].title == "泡泡战士" and articles[0].paragraphs == ("生命数耗完即算为踢爆。",)


def _answer(q: str, a: str | None, texts: list[str], ms: float) -> Answer:
    return Answer(q, a, a is None, [Source("p", "t", None, None, t, 1.0) for t in texts], timing_ms={"total": ms})


def test_metrics() -> None:
    qs = [Question("a", ("X",)), Question("b", ("Y",)), Question("c", ())]
    answers = {
        "a": _answer("a", "…X…", ["other", "has X"], 10),  # hit, passage at rank 2
        "b": _answer("b", None, ["Y here"], 30),  # false abstention, passage at rank 1
        "c": _answer("c", None, [], 20),  # correct abstention
    }
    r = run_eval(qs, lambda q: answers[q])
    assert r.answer_hit == 0.5 and r.passage_hit_at_1 == 0.5 and r.passage_hit_at_3 == 1.0
    assert r.false_abstentions == 1 and r.abstained_unanswerable == 1
    assert r.latency_ms_p50 == 20
    assert [f["q"] for f in r.failures] == ["b"]


def test_long_answer_is_not_a_hit() -> None:
    r = run_eval([Question("a", ("X",))], lambda q: _answer(q, "X" + "长" * 120, [], 1))
    assert r.answer_hit == 0.0
