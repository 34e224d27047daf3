"""When the reader's answer is given, and when the archive is said not to answer."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .compose import Extraction

__all__ = ["SIGNALS", "AbstainPolicy", "AnswerSignals", "LearnedAbstention", "ReaderPolicy", "answer_signals"]


@dataclass(frozen=True)
class AbstainPolicy:
    """Abstention for the heuristic extractor (the fallback when no reader loads).

    Calibrated with ``qa-bot eval`` on the dev sets: the extractor's confidence already
    folds in term coverage and typed-span presence.
    """

    min_confidence: float = 0.2
    # a question none of whose content words occur in the top passages is about
    # something the archive does not cover, unless the extractor is quite sure
    off_topic_confidence: float = 0.5

    def abstains(self, confidence: float, off_topic: bool) -> bool:
        return confidence < self.min_confidence or (
            off_topic and confidence < self.off_topic_confidence
        )


# the order of AnswerSignals.vector(), and of a LearnedAbstention's coefficients
SIGNALS = ("margin", "off_topic", "dense", "extractor_confidence", "agrees", "passage_rank")
_MARGIN_CLIP = 20.0  # logits: past this the margin says nothing more, and outliers would pull a fit


@dataclass(frozen=True)
class AnswerSignals:
    """What abstention on one reader answer is decided from."""

    margin: float  # the chosen span's score over the null score, in the reader's logits
    off_topic: bool  # no content word of the question in the top passages
    dense: float  # the best dense (cosine) similarity of a passage read to the question
    extractor_confidence: float  # the heuristic extractor's, over the same passages; 0: no span
    agrees: bool  # the reader's span overlaps the extractor's
    passage_rank: int  # retrieval rank (0: top) of the passage the span is in

    def vector(self) -> tuple[float, ...]:
        margin = max(-_MARGIN_CLIP, min(_MARGIN_CLIP, self.margin))
        return (
            margin,
            float(self.off_topic),
            self.dense,
            self.extractor_confidence,
            float(self.agrees),
            float(self.passage_rank),
        )


def answer_signals(
    answer: Extraction,
    second_opinion: Extraction | None,
    dense: Sequence[float | None],
    off_topic: bool,
) -> AnswerSignals:
    """The signals of the reader's ``answer``, given the extractor's ``second_opinion``
    over the same passages and the passages' dense similarities (None: found by BM25
    alone, counted as no similarity)."""
    agrees = False
    if second_opinion is not None and second_opinion.passage_index == answer.passage_index:
        a, b = answer.span_in_passage(), second_opinion.span_in_passage()
        agrees = a is not None and b is not None and a[0] < b[1] and b[0] < a[1]
    return AnswerSignals(
        margin=answer.confidence,
        off_topic=off_topic,
        dense=max((d for d in dense if d is not None), default=0.0),
        extractor_confidence=second_opinion.confidence if second_opinion is not None else 0.0,
        agrees=agrees,
        passage_rank=answer.passage_index,
    )


@dataclass(frozen=True)
class LearnedAbstention:
    """P(the passages read answer the question), a logistic regression over
    :class:`AnswerSignals` fitted by ``scripts/tune_reader.py`` on answerable questions
    against unanswerable ones (another corpus's questions, and near misses: a question
    whose answer-bearing passages were taken out of its hits). The reader's margin alone
    could not tell the finews dev nulls from answerable questions; retrieval similarity
    and whether the extractor finds the same span can.
    """

    coef: tuple[float, ...]  # per signal in SIGNALS order, on the signals' own scale
    intercept: float
    threshold: float  # abstain when the probability is below this

    def __post_init__(self) -> None:
        if len(self.coef) != len(SIGNALS):
            raise ValueError(f"{len(self.coef)} coefficients for {len(SIGNALS)} signals ({', '.join(SIGNALS)})")

    def probability(self, s: AnswerSignals) -> float:
        z = self.intercept + sum(c * x for c, x in zip(self.coef, s.vector(), strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def abstains(self, s: AnswerSignals) -> bool:
        return self.probability(s) < self.threshold

    def to_json(self) -> dict[str, object]:
        return {
            "signals": list(SIGNALS),
            "coef": [round(c, 6) for c in self.coef],
            "intercept": round(self.intercept, 6),
            "threshold": round(self.threshold, 6),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> LearnedAbstention:
        signals = tuple(raw["signals"])  # type: ignore[arg-type]
        if signals != SIGNALS:
            raise ValueError(f"abstention fitted on signals {signals}, this version computes {SIGNALS}")
        return cls(
            tuple(float(c) for c in raw["coef"]),  # type: ignore[union-attr]
            float(raw["intercept"]),  # type: ignore[arg-type]
            float(raw["threshold"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ReaderPolicy:
    """Abstention on the reader's answers: the learned model when the shipped weights
    carry one, else the margin rule (best span − null score below ``threshold``, or
    ``off_topic`` more for an off-topic question: no content word of it in the top
    passages). A threshold set in settings means the margin rule.
    """

    threshold: float = 0.0
    off_topic: float = 2.0
    learned: LearnedAbstention | None = None

    def abstains(self, s: AnswerSignals) -> bool:
        if self.learned is not None:
            return self.learned.abstains(s)
        return s.margin < self.threshold or (s.off_topic and s.margin < self.threshold + self.off_topic)
