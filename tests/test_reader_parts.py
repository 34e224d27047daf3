"""Reader parts that need no model: the CMRC measure, training data, answer windows."""

from __future__ import annotations

import importlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from api_helpers import assert_all_is_exact

from qa_bot.answer import (
    ReaderChoice,
    ReaderLoadError,
    answer_window,
    choose_span,
    cmrc_em,
    cmrc_f1,
    heuristic_proposal,
    shown_window,
)
from qa_bot.answer.compose import Extraction
from qa_bot.answer.confidence import (
    SIGNALS,
    AnswerSignals,
    LearnedAbstention,
    ReaderPolicy,
    answer_signals,
)
from qa_bot.answer.metrics import mixed_segmentation
from qa_bot.answer.qtype import QType
from qa_bot.answer.reader import (
    Reading,
    ReadSpan,
    WindowLogits,
    _best_in_window,
    decode,
    score_span,
    with_proposal,
)
from qa_bot.answer.reading import Proposal, early_answer, weigh_proposal
from qa_bot.answer.training import QAExample, load_squad, make_negatives, to_simplified
from qa_bot.answer.weights import MANIFEST, SHIPPED_DIR, read_manifest


def test_mixed_segmentation_splits_chinese_by_character_and_other_text_by_word() -> None:
    assert mixed_segmentation("约30.67亿元, Apple Inc。") == ["约", "30.67", "亿", "元", ",", "apple", "inc"]


@pytest.mark.parametrize(
    ("golds", "pred", "f1", "em"),
    [
        (["30.67亿元"], "30.67亿元", 1.0, 1.0),
        (["30.67亿元"], "约30.67亿元", 2 * (3 / 4) * 1 / (3 / 4 + 1), 0.0),
        (["《红楼梦》"], "红楼梦", 1.0, 1.0),  # punctuation removed on both sides
        (["北京", "上海市"], "上海", 2 * 1 * (2 / 3) / (1 + 2 / 3), 0.0),  # best gold counts
        (["北京"], "南京", 2 * 0.5 * 0.5 / 1.0, 0.0),
        (["北京"], "京北", 2 * 0.5 * 0.5 / 1.0, 0.0),  # substring, not bag of tokens: 1 of 2
        (["北京"], None, 0.0, 0.0),  # an abstention scores 0
    ],
)
def test_cmrc_measure(golds: list[str], pred: str | None, f1: float, em: float) -> None:
    assert cmrc_f1(golds, pred) == pytest.approx(f1)
    assert cmrc_em(golds, pred) == em


def test_cmrc_f1_is_longest_common_substring_not_overlap() -> None:
    # SQuAD's bag-of-tokens F1 would give 1.0 here; CMRC's substring F1 gives 0.5
    assert cmrc_f1(["甲乙"], "乙甲") == pytest.approx(0.5)


def _squad(tmp_path: Path, context: str, answers: list[dict]) -> Path:
    path = tmp_path / "s.json"
    data = {"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "多少？", "answers": answers}]}]}]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_squad_moves_an_answer_to_its_nearest_occurrence(tmp_path: Path) -> None:
    ctx = "甲公司投资5亿元。乙公司投资5亿元。"
    ex = load_squad(_squad(tmp_path, ctx, [{"text": "5亿元", "answer_start": 12}]))
    assert ex[0].answers == (("5亿元", 14),)
    assert ctx[14:17] == "5亿元"


def test_load_squad_skips_a_question_whose_answer_is_absent(tmp_path: Path) -> None:
    assert load_squad(_squad(tmp_path, "没有答案。", [{"text": "5亿元", "answer_start": 0}])) == []


def test_to_simplified_keeps_every_answer_at_its_offset() -> None:
    import opencc

    convert = opencc.OpenCC("t2s").convert
    ctx = "臺灣積體電路製造公司於1987年成立，總部位於新竹科學園區。"
    ans = "新竹科學園區"
    ex = QAExample("1", "總部在哪裡？", ctx, ((ans, ctx.index(ans)),))
    out, report = to_simplified([ex], convert)
    (text, at), = out[0].answers
    assert text == "新竹科学园区" and out[0].context[at : at + len(text)] == text
    assert out[0].question == "总部在哪里？" and report.dropped == 0


def test_drcd_converts_with_every_answer_at_its_offset(shared_dir: Path) -> None:
    import opencc

    raw = load_squad(shared_dir / "train" / "drcd_dev.json")[:400]
    out, report = to_simplified(raw, opencc.OpenCC("t2s").convert)
    assert len(out) >= 395 and report.dropped <= 5
    for ex in out:
        for text, at in ex.answers:
            assert ex.context[at : at + len(text)] == text
    assert "臺" not in "".join(ex.context for ex in out)


def test_negatives_never_hold_the_answer() -> None:
    ctxs = [f"背景{i}。答案是A{i}B。后文{i}。" for i in range(60)]
    exs = [
        QAExample(str(i), f"第{i}个问题是什么", c, ((f"A{i}B", c.index(f"A{i}B")),))
        for i, c in enumerate(ctxs)
    ]
    negs = make_negatives(exs, 1.0, random.Random(1))
    assert len(negs) >= 50
    by_id = {ex.id: ex for ex in exs}
    kinds = set()
    for n in negs:
        own = by_id[n.id.rsplit("-", 1)[0]]
        kinds.add(n.id.rsplit("-", 1)[1])
        assert not n.answers and not any(g in n.context for g in own.golds)
    assert kinds == {"minus", "other"}


def test_encode_for_training_labels_the_answer_tokens(converted: Path) -> None:
    from transformers import AutoTokenizer

    from qa_bot.answer.training import encode_for_training

    tok = AutoTokenizer.from_pretrained(str(converted))
    ctx = "前文。" * 120 + "计划于2021-2023年内投资约30.67亿元。" + "后文。" * 60
    ex = QAExample("1", "算力小镇投资多少", ctx, (("30.67亿元", ctx.index("30.67亿元")),))
    neg = QAExample("2", "算力小镇投资多少", "无关的段落。" * 10, ())
    feats = encode_for_training(tok, [ex, neg], max_length=96, stride=32, rng=random.Random(0))
    pos, nul = feats
    span = tok.decode(pos["input_ids"][pos["start_positions"] : pos["end_positions"] + 1])
    assert span.replace(" ", "") == "30.67亿元"
    assert len(pos["input_ids"]) <= 96
    assert (nul["start_positions"], nul["end_positions"]) == (0, 0)


@pytest.mark.parametrize(
    ("text", "span", "want"),
    [
        ("该小镇拟实施11个项目，计划于2021-2023年内投资约30.67亿元，其中产业项目占比100%。", "30.67亿元",
         "计划于2021-2023年内投资约30.67亿元"),
        ("他说：好。", "好", "他说：好"),
    ],
)
def test_answer_window_is_the_clause_around_the_span(text: str, span: str, want: str) -> None:
    s = text.index(span)
    ws, we = answer_window(text, s, s + len(span))
    assert text[ws:we] == want


def test_answer_window_keeps_the_span_within_the_limit() -> None:
    text = "甲" * 300 + "答案" + "乙" * 300 + "。"
    s = text.index("答案")
    ws, we = answer_window(text, s, s + 2, max_chars=50)
    assert we - ws <= 50 and ws <= s and we >= s + 2
    long_span = (10, 250)
    ws, we = answer_window(text, *long_span, max_chars=120)
    assert (ws, we) == (10, 130)


def _signals(margin: float, off_topic: bool = False, **kw: object) -> AnswerSignals:
    base = {"dense": 0.8, "extractor_confidence": 0.5, "agrees": True, "passage_rank": 0}
    return AnswerSignals(margin=margin, off_topic=off_topic, **{**base, **kw})  # type: ignore[arg-type]


def test_reader_policy_needs_more_margin_off_topic() -> None:
    p = ReaderPolicy(threshold=1.0, off_topic=2.0)
    assert not p.abstains(_signals(1.5))
    assert p.abstains(_signals(1.5, off_topic=True))
    assert p.abstains(_signals(0.5))
    assert not p.abstains(_signals(3.5, off_topic=True))


def test_learned_abstention_weighs_every_signal_and_round_trips() -> None:
    # only the dense similarity counts: the margin rule would answer both
    model = LearnedAbstention(coef=(0.0, 0.0, 10.0, 0.0, 0.0, 0.0), intercept=-8.0, threshold=0.5)
    policy = ReaderPolicy(threshold=-100.0, learned=model)
    assert policy.abstains(_signals(9.0, dense=0.7))
    assert not policy.abstains(_signals(9.0, dense=0.9))
    assert model.probability(_signals(0.0, dense=0.8)) == pytest.approx(0.5)
    assert LearnedAbstention.from_json(json.loads(json.dumps(model.to_json()))) == model
    # an outlying margin is clipped, not allowed to dominate
    margin_only = LearnedAbstention((1.0, 0, 0, 0, 0, 0), 0.0, 0.5)
    assert margin_only.probability(_signals(1e6)) == margin_only.probability(_signals(20.0))


def test_learned_abstention_refuses_coefficients_of_other_signals() -> None:
    raw = LearnedAbstention((1.0, 0, 0, 0, 0, 0), 0.0, 0.5).to_json()
    with pytest.raises(ValueError, match="signals"):
        LearnedAbstention.from_json({**raw, "signals": [*SIGNALS[:-1], "something_else"]})
    with pytest.raises(ValueError, match="coefficients"):
        LearnedAbstention((1.0, 2.0), 0.0, 0.5)


def _ex(passage: int, start: int, end: int, confidence: float) -> Extraction:
    return Extraction("x" * 40, (start - 10, end - 10), passage, QType.NUMBER, confidence, offset=10)


def test_answer_signals_compare_the_readers_span_with_the_extractors() -> None:
    reader = _ex(1, 20, 25, 4.5)
    s = answer_signals(reader, _ex(1, 22, 30, 0.6), [0.81, None, 0.86], off_topic=False)
    assert s == AnswerSignals(4.5, False, 0.86, 0.6, True, 1)
    assert not answer_signals(reader, _ex(1, 25, 30, 0.6), [0.8], False).agrees  # touching, not overlapping
    assert not answer_signals(reader, _ex(0, 20, 25, 0.6), [0.8], False).agrees  # another passage
    none = answer_signals(reader, None, [None], True)
    assert (none.extractor_confidence, none.agrees, none.dense, none.off_topic) == (0.0, False, 0.0, True)


@pytest.mark.parametrize(
    "name",
    [
        "qa_bot.answer",
        "qa_bot.answer.heuristic",
        "qa_bot.answer.heuristic.align",
        "qa_bot.answer.heuristic.extract",
        "qa_bot.answer.heuristic.question",
        "qa_bot.answer.heuristic.scoring",
        "qa_bot.answer.heuristic.terms",
        "qa_bot.answer.heuristic.windows",
        "qa_bot.answer.qtype",
        "qa_bot.answer.spans",
    ],
)
def test_answer_public_api_is_exactly_all(name: str) -> None:
    assert_all_is_exact(importlib.import_module(name))


def _reading(*spans: tuple[int, int, float] | None, nulls: tuple[float, ...] | None = None) -> Reading:
    made = tuple(None if s is None else ReadSpan(i, *s) for i, s in enumerate(spans))
    return Reading(made, nulls or (0.0,) * len(spans))


def test_choose_span_weighs_retrieval_rank_against_span_score() -> None:
    reading = _reading((0, 2, 5.0), (3, 6, 6.5), None)
    assert choose_span(reading, 0.0).passage == 1  # raw scores: the second passage wins
    assert choose_span(reading, 2.0).passage == 0  # 6.5 - 2 < 5: the top passage wins
    assert choose_span(_reading(None, None), 1.0) is None


def test_reading_margin_is_against_the_lowest_null_score() -> None:
    reading = _reading((0, 2, 5.0), (3, 6, 6.5), nulls=(1.0, 3.0))
    assert reading.best is not None and reading.best.passage == 1
    assert reading.margin == 5.5
    assert reading.margin_of(reading.spans[0]) == 4.0


def test_sentence_window_shows_the_whole_sentence_when_it_fits() -> None:
    text = "尤金袋鼠分布在澳洲南部。由于牠们大量繁殖，破坏了生活环境而被认为是害虫。后来被保护。"
    start = text.index("由于")
    end = text.index("环境") + 2
    ws, we = shown_window(text, start, end, "sentence", 120)
    assert text[ws:we] == "由于牠们大量繁殖，破坏了生活环境而被认为是害虫。"
    # too long for the limit: the clause window instead, the span kept whole
    ws, we = shown_window(text, start, end, "sentence", 20)
    assert (ws, we) == answer_window(text, start, end, 20)
    assert ws <= start and we >= end
    ws, we = shown_window(text, start, end, "clause", 120)
    assert text[ws:we] == "由于牠们大量繁殖，破坏了生活环境而被认为是害虫"  # no full stop


def test_reader_choice_validates_with_the_valid_choices_in_the_message() -> None:
    with pytest.raises(ValueError, match="clause, sentence"):
        ReaderChoice(window="paragraph")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        ReaderChoice(max_passages=0)


def test_manifest_choice_is_read_and_a_bad_one_is_a_load_error(tmp_path: Path) -> None:
    shipped = tmp_path / "r"
    shipped.mkdir()
    raw = json.loads((SHIPPED_DIR / MANIFEST).read_text(encoding="utf-8"))
    raw["choice"] = {"max_passages": 2, "rank_penalty": 1.5, "window": "sentence"}
    (shipped / MANIFEST).write_text(json.dumps(raw), encoding="utf-8")
    assert read_manifest(shipped).choice == ReaderChoice(2, 1.5, "sentence")
    raw["choice"]["window"] = "page"
    (shipped / MANIFEST).write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ReaderLoadError, match="unreadable"):
        read_manifest(shipped)


def test_length_bonus_moves_the_choice_but_not_the_score() -> None:
    # tokens: <s> q </s> | c1 c2 c3 (context); the best pair is (c1, c1), the longer (c1, c3)
    start = np.array([0.0, 0, 0, 3.0, 0.5, 0.1])
    end = np.array([0.0, 0, 0, 2.0, 0.1, 1.6])
    ctx = np.array([False, False, False, True, True, True])
    assert _best_in_window(start, end, ctx, 10) == (3, 3, 5.0)
    ts, te, score = _best_in_window(start, end, ctx, 10, length_bonus=0.5)  # type: ignore[misc]
    assert (ts, te) == (3, 5) and score == pytest.approx(4.6)  # the raw score, for the null margin
    assert _best_in_window(start, end, ctx, 1, length_bonus=0.5)[:2] == (3, 3)  # the cap holds


def test_decode_keeps_each_passage_best_span_and_lowest_null() -> None:
    texts = ["甲乙丙", "丁戊己"]
    def win(p: int, s: list[float], e: list[float]) -> WindowLogits:
        return WindowLogits(p, [(0, 0), (0, 1), (1, 2), (2, 3)], np.array([False, True, True, True]),
                            np.array(s), np.array(e))
    reading = decode(
        [win(0, [2.0, 1, 0, 0], [1.0, 0, 0, 3]), win(0, [0.5, 0, 4, 0], [0.5, 0, 4, 0]), win(1, [9.0, 0, 0.5, 0], [0.0, 0, 1, 0])],
        texts, max_tokens=5,
    )
    assert reading.nulls == (1.0, 9.0)
    assert reading.spans[0] == ReadSpan(0, 1, 2, 8.0)  # the second window's 乙 beats 甲乙丙 (4.0)
    assert reading.spans[1] == ReadSpan(1, 1, 2, 1.5)


def test_a_span_never_crosses_a_sentence_end() -> None:
    text = "投资约30亿元。其中占比100%。"
    # tokens over: 投资约 | 30亿元 | 。其中 | 占比 | 100%。 ; the raw best pair runs 30亿元 … 100%
    offsets = [(0, 0), (0, 3), (3, 7), (7, 10), (10, 12), (12, 17)]
    ctx = np.array([False, True, True, True, True, True])
    w = WindowLogits(0, offsets, ctx, np.array([0.0, 0, 3, 0, 0, 0]), np.array([0.0, 0, 1, 0, 0, 3]))
    assert decode([w], [text], max_tokens=10).spans[0] == ReadSpan(0, 3, 16, 6.0)  # crosses (the full stop trimmed)
    best = decode([w], [text], max_tokens=10, within_sentence=True).spans[0]
    assert best is not None and text[best.start : best.end] == "30亿元"


def test_the_clause_penalty_keeps_a_span_inside_its_clause_unless_it_wins_by_more() -> None:
    text = "投资约30亿元，其中占比100%"
    # tokens: 投资约 | 30亿元 | ，其中 | 占比 | 100%
    offsets = [(0, 0), (0, 3), (3, 7), (7, 10), (10, 12), (12, 16)]
    ctx = np.array([False, True, True, True, True, True])
    # 30亿元 alone: 3 + 2.5; 30亿元 … 100% (one break crossed): 3 + 3
    w = WindowLogits(0, offsets, ctx, np.array([0.0, 0, 3, 0, 0, 0]), np.array([0.0, 0, 2.5, 0, 0, 3]))

    def shown(penalty: float) -> str:
        best = decode([w], [text], max_tokens=10, clause_penalty=penalty).spans[0]
        assert best is not None
        return text[best.start : best.end]

    assert shown(0.0) == "30亿元，其中占比100%"
    assert shown(0.4) == "30亿元，其中占比100%"  # a clear enough win crosses the comma
    assert shown(1.0) == "30亿元"
    # the penalty steers the choice only: the score stays the model's (comparable with null)
    assert decode([w], [text], max_tokens=10, clause_penalty=1.0).spans[0].score == 5.5


def _window(passage: int, start: list[float], end: list[float]) -> WindowLogits:
    # "投资约30亿元，其中占比100%", tokens: 投资约 | 30亿元 | ，其中 | 占比 | 100%
    offsets = [(0, 0), (0, 3), (3, 7), (7, 10), (10, 12), (12, 16)]
    ctx = np.array([False, True, True, True, True, True])
    return WindowLogits(passage, offsets, ctx, np.array(start), np.array(end))


def test_score_span_is_the_model_score_of_the_tokens_holding_the_characters() -> None:
    w = _window(0, [0.0, 0, 1, 0, 0, 4], [0.0, 0, 2, 0, 0, 4])
    assert score_span([w], 0, 3, 7) == 3.0  # 30亿元: start and end on one token
    assert score_span([w], 0, 4, 6) == 3.0  # inside a token: the token that holds it
    assert score_span([w], 0, 3, 16) == 5.0  # 30亿元 … 100%
    assert score_span([w], 1, 3, 7) is None  # no window of that passage
    assert score_span([w], 0, 3, 40) is None  # not inside the window


def test_a_proposal_wins_only_when_its_score_plus_the_bonus_beats_the_best_span() -> None:
    text = "投资约30亿元，其中占比100%"
    w = _window(0, [0.0, 0, 1, 0, 0, 4], [0.0, 0, 2, 0, 0, 4])
    reading = decode([w], [text], max_tokens=10)
    assert reading.spans[0] == ReadSpan(0, 12, 16, 8.0)  # the model's pick: 100%
    assert with_proposal(reading, [w], (0, 3, 7), 4.0) == reading  # 3 + 4 < 8
    won = with_proposal(reading, [w], (0, 3, 7), 6.0)
    assert won.spans[0] == ReadSpan(0, 3, 7, 9.0) and won.nulls == reading.nulls
    assert with_proposal(reading, [w], (5, 3, 7), 6.0) == reading  # a passage not read


def test_a_sure_extractor_earns_more_bonus_with_a_slope() -> None:
    text = "投资约30亿元，其中占比100%"
    w = _window(0, [0.0, 0, 1, 0, 0, 4], [0.0, 0, 2, 0, 0, 4])
    reading = decode([w], [text], max_tokens=10)  # the model: 100% at 8, 30亿元 at 3
    flat = ReaderChoice(heuristic_bonus=4.0)
    sloped = ReaderChoice(heuristic_bonus=4.0, heuristic_slope=4.0)
    sure, unsure = Proposal(0, 3, 7, 0.5), Proposal(0, 3, 7, 0.1)
    assert weigh_proposal(reading, [w], sure, flat) == reading  # 3 + 4 < 8
    assert weigh_proposal(reading, [w], sure, sloped).spans[0] == ReadSpan(0, 3, 7, 9.0)  # 3 + 4 + 2
    assert weigh_proposal(reading, [w], unsure, sloped) == reading  # 3 + 4 + 0.4 < 8
    assert weigh_proposal(reading, [w], sure, ReaderChoice(heuristic_slope=9.0)) == reading  # not asked


def test_heuristic_proposal_is_the_extractors_span_in_its_passage() -> None:
    from qa_bot.answer import Extraction, QType

    ex = Extraction("投资约30亿元", (3, 7), 2, QType.NUMBER, 0.9, offset=10)
    assert heuristic_proposal(ex) == (2, 13, 17, ex.confidence)
    assert heuristic_proposal(Extraction("整句", None, 0, QType.OTHER, 0.9, offset=0)) is None
    assert heuristic_proposal(None) is None


def test_the_top_passage_stands_alone_only_past_the_early_exit_margin() -> None:
    first = Reading((ReadSpan(0, 1, 3, 7.0),), (2.0,))  # margin 5
    assert early_answer(first, ReaderChoice(3, early_exit=4.0)) == ReadSpan(0, 1, 3, 7.0)
    assert early_answer(first, ReaderChoice(3, early_exit=6.0)) is None
    assert early_answer(first, ReaderChoice(3)) is None  # no early exit set
    assert early_answer(first, ReaderChoice(1, early_exit=0.0)) is None  # nothing more to read anyway
    assert early_answer(Reading((None,), (0.0,)), ReaderChoice(3, early_exit=-50.0)) is None
