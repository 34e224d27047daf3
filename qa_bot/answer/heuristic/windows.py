"""Candidate answer windows inside a sentence, and the answer a winning window becomes."""

from __future__ import annotations

from ..spans import Span
from ..text import clause_bounds, sentence_bounds, trim

__all__ = ["clause_windows", "final_window", "sentence_windows"]

_SENT_FINAL = "。！？!?"


def clause_windows(
    text: str, ss: int, se: int, max_chars: int, spans: list[Span]
) -> list[tuple[int, int]]:
    """Windows of up to four adjacent clauses of sentence ``text[ss:se]`` that fit in
    ``max_chars``; a single clause that is too long is cut around each typed span it holds
    (never inside the span)."""
    clauses = clause_bounds(text, ss, se)
    out = []
    for i in range(len(clauses)):
        for j in range(i, min(len(clauses), i + 4)):
            ws, we = trim(text, clauses[i][0], clauses[j][1])
            if we <= ws:
                continue
            if we - ws > max_chars:
                if i == j:
                    out.extend(_around_spans(ws, we, max_chars, spans))
                break
            out.append((ws, we))
    return out


def _around_spans(ws: int, we: int, max_chars: int, spans: list[Span]) -> list[tuple[int, int]]:
    out = []
    for sp in spans:
        if ws <= sp.start and sp.end <= we and sp.end - sp.start <= max_chars:
            room = max_chars - (sp.end - sp.start)
            a = max(ws, sp.start - room * 2 // 3)
            b = min(we, a + max_chars)
            a = max(ws, min(a, sp.start))
            out.append((a, max(b, sp.end)))
    return out


def sentence_windows(
    text: str, sentences: tuple[tuple[int, int], ...], si: int, max_chars: int, pair: bool
) -> list[tuple[int, int, int | None]]:
    """Sentence ``si`` whole, and with ``pair`` also joined with the sentence before or
    after (when that fits ``max_chars``): ``(start, end, index of the joined sentence)``."""
    ss, se = sentences[si]
    ws, we = trim(text, ss, se)
    out: list[tuple[int, int, int | None]] = [(ws, we, None)]
    if pair:
        for sj in (si - 1, si + 1):
            if 0 <= sj < len(sentences):
                cs, ce = trim(text, min(ss, sentences[sj][0]), max(se, sentences[sj][1]))
                if ce - cs <= max_chars:
                    out.append((cs, ce, sj))
    return out


def _sentence_end(text: str, we: int, ws: int, max_chars: int) -> int:
    """Extend a window that stops right before the sentence-final mark to include it
    (gold answers quote whole sentences with their "。")."""
    if we < len(text) and text[we] in _SENT_FINAL and we + 1 - ws <= max_chars:
        return we + 1
    return we


def final_window(
    text: str, start: int, end: int, span: Span | None, short: bool, max_chars: int
) -> tuple[int, int]:
    """The answer a winning window becomes: for a figure/date/name/place question without a
    typed span, the whole sentence (the slot is known only by its position); the
    sentence-final mark when the window ends the sentence."""
    if short and (span is None or span.sub == "wh"):
        for ss, se in sentence_bounds(text):
            if ss <= start < se:
                fs, fe = trim(text, ss, se)
                if fe - fs <= max_chars and fs <= start and end <= fe:
                    start, end = fs, fe
                break
    return start, _sentence_end(text, end, start, max_chars)
