"""The reader's answer to a question from the top retrieved passages.

These choices sit between the model's output and the answer shown, each measured by
``scripts/tune_reader.py`` on the validation sets (k-fold cross-validated) and shipped in
``reader.json`` with the abstention threshold:

- which passage's span wins: raw span scores of different passages are not comparable
  (each window's logits are only calibrated against each other), and the reader alone
  picked the wrong passage of three far more often than retrieval ranks it first, so a
  prior from the passage's retrieval rank is added;
- how much text is shown around the span: its clause, or its whole sentence when that
  fits the limit (long descriptive answers rarely fit in one clause);
- a per-token length prior inside a window: the model trained on CMRC and DRCD answers
  ends spans early more often than late (on 150 trial questions given the gold paragraph,
  40% of its spans were strictly inside a gold answer, 3% strictly around one);
- a penalty per clause break a span crosses: its best span sometimes runs on from the
  answer into the next clause ("约30.67亿元，其中特色产业项目投资占比100%");
- a second opinion: the heuristic extractor's typed span, scored by the model, with a
  bonus in logits (``heuristic_bonus``; None: the extractor is not asked). The two err on
  different questions: the reader is drawn to spans next to a word of the question
  ("投资占比100%" for 投资多少), the extractor knows which kind of span is wanted; the
  bonus may grow with the extractor's confidence (``heuristic_slope``);
- an early exit: the top passage is read first, and when its answer's margin over its
  null score reaches ``early_exit`` the others are not read at all. Reading is nearly all
  of an answer's time and grows with the passages read, while the top passage answers
  most questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from qa_bot.types import ScoredChunk

from .compose import Extraction, answer_window
from .qtype import classify_question
from .reader import Reader, Reading, ReadSpan, WindowLogits, choose_span, decode, with_proposal
from .text import sentence_bounds

__all__ = [
    "WINDOWS",
    "Proposal",
    "ReaderChoice",
    "choose_span",
    "early_answer",
    "heuristic_proposal",
    "read_answer",
    "reading_of",
    "shown_window",
    "weigh_proposal",
]

Window = Literal["clause", "sentence"]
WINDOWS: tuple[Window, ...] = ("clause", "sentence")
_SENT_TAIL = " \t\r\n；;"


@dataclass(frozen=True)
class ReaderChoice:
    max_passages: int = 3
    rank_penalty: float = 0.0  # subtracted from a span's score per retrieval rank below the top
    window: Window = "clause"
    length_bonus: float = 0.0  # per token, when choosing a span inside a window
    within_sentence: bool = False  # spans never cross a sentence end
    clause_penalty: float = 0.0  # taken from a span's choice per clause break it crosses
    heuristic_bonus: float | None = None  # added to the extractor's span, scored by the model
    early_exit: float | None = None  # margin at which the top passage's answer stands alone
    heuristic_slope: float = 0.0  # more bonus per unit of the extractor's confidence (0..1)

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"unknown answer window {self.window!r}; choose one of {', '.join(WINDOWS)}")
        if self.max_passages < 1:
            raise ValueError(f"max_passages must be at least 1, not {self.max_passages}")


def shown_window(text: str, start: int, end: int, window: Window, max_chars: int) -> tuple[int, int]:
    """(start, end) in ``text`` of the answer shown for the span ``text[start:end]``."""
    if window == "sentence":
        for s, e in sentence_bounds(text):
            if s <= start < e:
                while s < e and text[s].isspace():
                    s += 1
                # keep the full stop, drop a trailing semicolon or newline
                while e > s and text[e - 1] in _SENT_TAIL:
                    e -= 1
                if e >= end and e - s <= max_chars:
                    return s, e
                break
    return answer_window(text, start, end, max_chars)


class Proposal(NamedTuple):
    """Another answerer's span put to the reader: where it is, and how sure that answerer is."""

    passage: int
    start: int
    end: int
    confidence: float


def heuristic_proposal(extraction: Extraction | None) -> Proposal | None:
    """The extractor's highlighted span as a proposal for the reader."""
    span = extraction.span_in_passage() if extraction is not None else None
    if extraction is None or span is None:
        return None
    return Proposal(extraction.passage_index, span[0], span[1], extraction.confidence)


def weigh_proposal(
    reading: Reading, windows: Sequence[WindowLogits], proposal: Proposal | None, choice: ReaderChoice
) -> Reading:
    """``reading`` with ``proposal`` scored by the model plus the choice's bonus for it."""
    if proposal is None or choice.heuristic_bonus is None:
        return reading
    bonus = choice.heuristic_bonus + choice.heuristic_slope * proposal.confidence
    return with_proposal(reading, windows, (proposal.passage, proposal.start, proposal.end), bonus)


def reading_of(
    windows: Sequence[WindowLogits],
    texts: Sequence[str],
    choice: ReaderChoice,
    max_answer_tokens: int,
    proposal: Proposal | None = None,
) -> Reading:
    """The choice's decoding of ``windows`` over ``texts``, with ``proposal`` (another
    answerer's span) weighed when the choice gives it a bonus."""
    reading = decode(
        windows, texts, max_answer_tokens, choice.length_bonus, choice.within_sentence, choice.clause_penalty
    )
    return weigh_proposal(reading, windows, proposal, choice)


def early_answer(first: Reading, choice: ReaderChoice) -> ReadSpan | None:
    """The top passage's span when it stands without reading the others (``first``: the
    reading of the top passage alone), else None."""
    if choice.early_exit is None or choice.max_passages < 2:
        return None
    best = choose_span(first, choice.rank_penalty)
    return best if best is not None and first.margin_of(best) >= choice.early_exit else None


def _read(
    reader: Reader, question: str, texts: list[str], choice: ReaderChoice, proposal: Proposal | None
) -> tuple[Reading, ReadSpan | None]:
    """The reading the answer comes from and its chosen span: of the top passage alone
    when it stands (early exit), else of all of them."""
    if choice.early_exit is not None and len(texts) > 1:
        first_windows = reader.window_logits(question, texts[:1])
        own = proposal if proposal is not None and proposal.passage == 0 else None
        first = reading_of(first_windows, texts[:1], choice, reader.max_answer_tokens, own)
        if (span := early_answer(first, choice)) is not None:
            return first, span
        rest = reader.window_logits(question, texts[1:])
        windows = first_windows + [replace(w, passage=w.passage + 1) for w in rest]
    else:
        windows = reader.window_logits(question, texts)
    reading = reading_of(windows, texts, choice, reader.max_answer_tokens, proposal)
    return reading, choose_span(reading, choice.rank_penalty)


def read_answer(
    reader: Reader,
    question: str,
    passages: Sequence[ScoredChunk],
    choice: ReaderChoice | None = None,
    *,
    max_chars: int = 120,
    proposal: Proposal | None = None,
) -> Extraction | None:
    """The chosen span over the top passages, shown inside its clause or sentence.

    ``proposal`` (passage, start, end): another answerer's span, weighed by the model
    with ``choice.heuristic_bonus``. ``confidence`` is the chosen span's margin over the
    null score, not a probability: ``ReaderPolicy`` turns it into abstention.
    """
    choice = choice or ReaderChoice()
    texts = [p.chunk.text for p in passages[: choice.max_passages]]
    reading, best = _read(reader, question, texts, choice, proposal)
    if best is None:
        return None
    text = texts[best.passage]
    ws, we = shown_window(text, best.start, best.end, choice.window, max_chars)
    hs, he = max(best.start, ws) - ws, min(best.end, we) - ws
    return Extraction(
        text=text[ws:we],
        highlight=(hs, he),
        passage_index=best.passage,
        qtype=classify_question(question),
        confidence=reading.margin_of(best),
        offset=ws,
    )
