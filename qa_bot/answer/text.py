"""Sentence and clause boundaries and trimming, shared by the extractor and the reader's
answer window: one splitter for the answer package."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["CLAUSE_BREAKS", "TRIM_CHARS", "clause_bounds", "sentence_bounds", "trim"]

_SENT_END = set("。！？!?；;\n")
_CLAUSE_END = set("，,：:")
# whatever ends a clause or a sentence: a span that crosses one says two things
CLAUSE_BREAKS = frozenset(_SENT_END | _CLAUSE_END)
_OPEN = "（(《“「【[‘"
_CLOSE = "）)》”」】]’"


@lru_cache(maxsize=1024)
def sentence_bounds(text: str) -> tuple[tuple[int, int], ...]:
    """Sentence boundaries, never splitting inside brackets or quotes."""
    out, start, depth = [], 0, 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in _SENT_END and (depth == 0 or ch == "\n"):
            if ch == "\n":
                depth = 0
            if i + 1 > start:
                out.append((start, i + 1))
            start = i + 1
    if start < len(text):
        out.append((start, len(text)))
    return tuple((s, e) for s, e in out if text[s:e].strip())


def clause_bounds(text: str, s0: int, e0: int) -> list[tuple[int, int]]:
    out, start, depth = [], s0, 0
    for i in range(s0, e0):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in _CLAUSE_END and depth == 0:
            out.append((start, i + 1))
            start = i + 1
    if start < e0:
        out.append((start, e0))
    return out


TRIM_CHARS = " \t\r\n，,：:；;。！？!?、"


def trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in TRIM_CHARS:
        s += 1
    while e > s and text[e - 1] in TRIM_CHARS:
        e -= 1
    return s, e
