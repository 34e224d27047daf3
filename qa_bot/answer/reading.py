"""The reader's answer to a question from the top retrieved passages."""

from __future__ import annotations

from collections.abc import Sequence

from qa_bot.types import ScoredChunk

from .compose import Extraction, answer_window
from .qtype import classify_question
from .reader import Reader

__all__ = ["read_answer"]


def read_answer(
    reader: Reader,
    question: str,
    passages: Sequence[ScoredChunk],
    *,
    max_passages: int = 3,
    max_chars: int = 120,
) -> Extraction | None:
    """The best span over the top ``max_passages`` passages, shown inside its clause.

    ``confidence`` is the reader's margin (best span score − null score), not a
    probability: ``ReaderPolicy`` turns it into abstention.
    """
    texts = [p.chunk.text for p in passages[:max_passages]]
    reading = reader.read(question, texts)
    best = reading.best
    if best is None:
        return None
    text = texts[best.passage]
    ws, we = answer_window(text, best.start, best.end, max_chars)
    hs, he = max(best.start, ws) - ws, min(best.end, we) - ws
    return Extraction(
        text=text[ws:we],
        highlight=(hs, he),
        passage_index=best.passage,
        qtype=classify_question(question),
        confidence=reading.margin,
    )
