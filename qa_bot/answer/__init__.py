"""Short verbatim answers from retrieved passages.

Parts: ``heuristic`` (question typing, typed spans and the hand-weighted extractor, the
fallback when no reader loads), ``reader`` (the trained span-extraction model),
``reading`` (its answer from retrieved passages), ``compose`` (the clause shown around a
span), ``confidence`` (abstention),
``weights`` (shipped reader weights merged onto the base model), ``metrics`` (CMRC 2018
EM/F1), ``training`` (training data for the reader).
"""

from .compose import answer_window
from .confidence import AbstainPolicy, ReaderPolicy
from .heuristic import (
    FEATURES,
    WEIGHTS,
    Extraction,
    QType,
    Span,
    classify_question,
    content_terms,
    extract_answer,
    find_spans,
)
from .metrics import cmrc_em, cmrc_f1
from .reader import Reader, Reading, ReadSpan
from .reading import read_answer
from .weights import ReaderLoadError, ensure_merged, load_shipped_reader

__all__ = [
    "FEATURES",
    "AbstainPolicy",
    "ReaderPolicy",
    "answer_window",
    "read_answer",
    "load_shipped_reader",
    "WEIGHTS",
    "Extraction",
    "QType",
    "ReadSpan",
    "Reader",
    "ReaderLoadError",
    "Reading",
    "Span",
    "classify_question",
    "cmrc_em",
    "cmrc_f1",
    "content_terms",
    "ensure_merged",
    "extract_answer",
    "find_spans",
]
