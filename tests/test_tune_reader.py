"""scripts/tune_reader.py's choices on readings made up to test them: the learned
abstention is fitted, cross-validated and chosen through the script's own functions,
with no model (the real readings take half an hour to collect)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from script_helpers import load_script

from qa_bot.answer.reader import WindowLogits

TEXT = "今年收入为30亿元。其他的内容。"
GOLD = "30亿元"


def _probe(tune, margin: float, dense: float, answerable: bool, kind: str):  # type: ignore[no-untyped-def]
    """One passage whose best span is GOLD, ``margin`` logits over the null score."""
    n = len(TEXT)
    offsets = [(0, 0)] + [(i, i + 1) for i in range(n)]
    context = np.array([False] + [True] * n)
    start, end = np.full(n + 1, -20.0), np.full(n + 1, -20.0)
    start[0] = end[0] = 0.0
    s = TEXT.index(GOLD)
    start[s + 1] = end[s + len(GOLD)] = margin / 2
    window = WindowLogits(0, offsets, context, start, end)
    golds = (GOLD,) if answerable else ()
    return tune.Probe(golds, False, (TEXT,), (window,), (None, None, None), (dense,), kind)


@pytest.fixture
def tune(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    module = load_script("tune_reader")
    # one reading setting: what is under test is abstention
    monkeypatch.setattr(module, "grid", lambda: [module.Setting(1, 0.0, "clause")])
    return module


def _sets(tune, seed: int = 3):  # type: ignore[no-untyped-def]
    """Margins of answerable and unanswerable questions drawn alike; only the retrieval
    similarity tells them apart (as on finews dev, where nulls get margins like answers)."""
    rng = random.Random(seed)

    def many(k: int, answerable: bool, kind: str, dense: float) -> list:
        return [_probe(tune, rng.uniform(-2, 8), dense + rng.uniform(-0.03, 0.03), answerable, kind) for _ in range(k)]

    sets = {"trial": many(60, True, "answerable", 0.86), "finews": many(24, True, "answerable", 0.86)}
    nulls = {"trial": many(30, False, "near miss", 0.74), "finews": many(30, False, "other corpus", 0.74)}
    return sets, nulls


def test_the_learned_abstention_separates_what_the_margin_cannot(tune) -> None:  # type: ignore[no-untyped-def]
    sets, nulls = _sets(tune)
    margin = tune.cross_validate(sets, nulls, 2.0, 4, "margin")["held_out_scores"]
    learned = tune.cross_validate(sets, nulls, 2.0, 4, "learned")["held_out_scores"]
    for name in sets:
        assert learned[name]["answer_hit"] >= 0.95
        assert learned[name]["abstained_unanswerable"] >= 0.95
        # the margin rule must trade one for the other
        assert min(margin[name]["answer_hit"], margin[name]["abstained_unanswerable"]) < 0.9
    final = tune.tune(sets, nulls, 2.0, "learned")
    dense = tune.SIGNALS.index("dense")
    assert final.learned.coef[dense] > 0
    assert "abstained: near miss" in learned["trial"]


def test_tuning_refuses_an_unknown_abstention(tune) -> None:  # type: ignore[no-untyped-def]
    sets, nulls = _sets(tune)
    with pytest.raises(ValueError, match="margin, learned"):
        tune.tune(sets, nulls, 2.0, "magic")


def test_the_card_shows_both_abstentions_and_which_shipped(tune, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sets, nulls = _sets(tune)
    folds = {mode: tune.cross_validate(sets, nulls, 2.0, 2, mode) for mode in tune.ABSTENTION}
    final = tune.tune(sets, nulls, 2.0, "learned")
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# card\n\n## Facts\n{}\n", encoding="utf-8")
    tune.write_card_section(card, final, folds, {})
    text = card.read_text(encoding="utf-8")
    assert "| learned (shipped) | trial |" in text and "| margin | finews |" in text
    assert "logistic regression over margin, off_topic, dense" in text


def _two_passages(tune, top_margin: float, top_right: bool):  # type: ignore[no-untyped-def]
    """The top passage's span (right or wrong) at ``top_margin``; the second passage holds
    the gold at margin 3."""
    wrong = "其他的内容"
    top_text = TEXT if top_right else "今年收入为某个数。其他的内容。"
    answer_at = top_text.index(GOLD) if top_right else top_text.index(wrong)
    answer_len = len(GOLD) if top_right else len(wrong)

    def window(p: int, text: str, at: int, length: int, margin: float) -> WindowLogits:
        n = len(text)
        start, end = np.full(n + 1, -20.0), np.full(n + 1, -20.0)
        start[0] = end[0] = 0.0
        start[at + 1] = end[at + length] = margin / 2
        return WindowLogits(p, [(0, 0)] + [(i, i + 1) for i in range(n)], np.array([False] + [True] * n), start, end)

    windows = (window(0, top_text, answer_at, answer_len, top_margin), window(1, TEXT, TEXT.index(GOLD), len(GOLD), 3.0))
    return tune.Probe((GOLD,), False, (top_text, TEXT), windows, (None, None, None), (0.85, 0.84))


def test_the_early_exit_reads_less_where_the_top_passage_is_sure(monkeypatch, tune) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tune, "grid", lambda: [tune.Setting(2, 0.0, "clause")])
    rng = random.Random(4)
    # sure and right at the top, or unsure and wrong there with the answer second
    probes = [_two_passages(tune, rng.uniform(6, 12), True) for _ in range(30)]
    probes += [_two_passages(tune, rng.uniform(0.5, 2.5), False) for _ in range(10)]
    sets = {"trial": probes}
    full = tune.Setting(2, 0.0, "clause")
    chosen = tune.with_early_exit(sets, full, 2.0)
    assert chosen.early_exit is not None and 2.5 <= chosen.early_exit <= 6.0
    assert tune.answerable_scores(probes, chosen, 2.0) == tune.answerable_scores(probes, full, 2.0)
    assert tune.mean_windows(probes, chosen) == pytest.approx(1.25)  # 30 read one window, 10 two
    assert tune.mean_windows(probes, full) == 2.0
