"""scripts/train_extractor.py: window labels and the conditional-logit fit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from qa_bot.answer import FEATURES, WEIGHTS
from qa_bot.evaluate import Question
from qa_bot.types import Chunk, ScoredChunk

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_extractor.py"
spec = importlib.util.spec_from_file_location("train_extractor", SCRIPT)
assert spec and spec.loader
T = importlib.util.module_from_spec(spec)
spec.loader.exec_module(T)


def _hit(text: str) -> ScoredChunk:
    c = Chunk("c0", "a.md", 0, "", None, None, text, text, "h")
    return ScoredChunk(chunk=c, score=1.0)


def test_collect_labels_windows_that_become_a_gold_answer() -> None:
    passages = [_hit("算力小镇计划于2021-2023年内投资约30.67亿元。小镇占地面积约3.5平方公里。")]
    ex = T.collect(Question("算力小镇投资多少", ("30.67亿元",)), passages)
    assert ex is not None
    assert ex.feats.shape == (len(ex.hits), len(FEATURES))
    assert ex.hits.any() and not ex.hits.all()
    # the hand weights pick a window that hits
    assert ex.hits[int(np.argmax(ex.feats @ np.asarray(WEIGHTS)))]


def test_fit_moves_weights_toward_the_feature_that_marks_positives() -> None:
    rng = np.random.default_rng(0)
    d = len(FEATURES)
    exs = []
    for _ in range(60):
        feats = rng.normal(size=(6, d))
        hits = np.zeros(6, dtype=bool)
        i = int(np.argmax(feats[:, -1]))  # the last feature decides, the hand weight is 0
        hits[i] = True
        exs.append(T.Example(feats, hits, np.full(6, 20)))
    prior = np.asarray(WEIGHTS, dtype=np.float64)
    w = T.fit([exs], prior, l2=0.01)
    assert w[-1] > 1.0
    assert T.hit_rate(w, exs)[0] > T.hit_rate(prior, exs)[0]
