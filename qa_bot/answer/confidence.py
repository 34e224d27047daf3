"""When the reader's answer is given, and when the archive is said not to answer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AbstainPolicy", "ReaderPolicy"]


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


@dataclass(frozen=True)
class ReaderPolicy:
    """Abstention from the reader's margin (best span score − null score).

    ``threshold`` is chosen by the training script on the CMRC trial set (answerable
    pairs against SQuAD 2.0 style negatives) and can be overridden in settings; an
    off-topic question (no content word of it in the top passages) needs ``off_topic``
    more margin.
    """

    threshold: float = 0.0
    off_topic: float = 2.0

    def abstains(self, margin: float, off_topic: bool) -> bool:
        return margin < self.threshold or (off_topic and margin < self.threshold + self.off_topic)
