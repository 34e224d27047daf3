"""The short answer around a span: the clause that holds it, verbatim, within a limit."""

from __future__ import annotations

from dataclasses import dataclass

from .qtype import QType
from .text import clause_bounds, sentence_bounds, trim

__all__ = ["Extraction", "answer_window"]


@dataclass(frozen=True)
class Extraction:
    """A short verbatim answer: ``text``, with ``highlight`` the key span inside it, taken
    from passage ``passage_index`` at character ``offset``; ``confidence`` is the
    extractor's score in [0, 1] or the reader's margin (best span − null score)."""

    text: str
    highlight: tuple[int, int] | None
    passage_index: int
    qtype: QType
    confidence: float
    offset: int  # where ``text`` starts in its passage

    def span_in_passage(self) -> tuple[int, int] | None:
        """The highlighted span as (start, end) in the passage, if there is one."""
        if self.highlight is None:
            return None
        return self.offset + self.highlight[0], self.offset + self.highlight[1]


def answer_window(text: str, start: int, end: int, max_chars: int = 120) -> tuple[int, int]:
    """(start, end) in ``text`` of the answer to show for the span ``text[start:end]``.

    A bare figure or name ("30.67亿元") does not read as an answer; the clause(s) of its
    sentence that the span touches do ("计划于2021-2023年内投资约30.67亿元"). When those
    run past ``max_chars``, the window is cut around the span, which is always kept
    whole unless it alone is longer than the limit.
    """
    sent = next(((s, e) for s, e in sentence_bounds(text) if s <= start < e), (0, len(text)))
    all_clauses = clause_bounds(text, *sent)
    touched = [i for i, c in enumerate(all_clauses) if c[1] > start and c[0] < end]
    if not touched:
        return start, min(end, start + max_chars)
    first, last = touched[0], touched[-1]
    ws, we = trim(text, all_clauses[first][0], all_clauses[last][1])
    if (ws, we) == trim(text, start, end) and first > 0:
        # the span is its whole clause ("他说：好"): the clause before says what it answers
        ws = trim(text, all_clauses[first - 1][0], we)[0]
    ws, we = min(ws, start), max(we, end)
    if end - start >= max_chars:
        return start, start + max_chars
    if we - ws > max_chars:
        # keep the span, spend the rest of the budget on the text before it (the subject)
        ws = max(ws, end - max_chars)
        we = min(we, ws + max_chars)
    return ws, we
