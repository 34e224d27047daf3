"""Short verbatim answers from retrieved passages.

Parts, one file each: ``reader`` (the trained span-extraction model) and ``reading`` (its
answer from the top passages); ``weights`` (the shipped reader weights, merged onto the
base model at first use) and ``vocab`` (the reader's pruned tokenizer); ``compose`` (the
clause shown around a span, and the ``Extraction`` every answerer returns); ``confidence`` (abstention); ``qtype`` (question
typing); ``spans`` (typed span detectors); ``text`` (the one sentence and clause splitter);
``metrics`` (CMRC 2018 EM/F1); ``training`` (the reader's training data). ``heuristic/``
is the hand-weighted extractor, a package of its own: the fallback when no reader weights
load.
"""

from .compose import Extraction, answer_window
from .confidence import (
    SIGNALS,
    AbstainPolicy,
    AnswerSignals,
    LearnedAbstention,
    ReaderPolicy,
    answer_signals,
)
from .heuristic import FEATURES, WEIGHTS, content_terms, extract_answer
from .metrics import cmrc_em, cmrc_f1
from .qtype import QType, classify_question
from .reader import Reader, Reading, ReadSpan
from .reading import ReaderChoice, choose_span, heuristic_proposal, read_answer, shown_window
from .spans import Span, find_spans
from .weights import ReaderLoadError, ensure_merged, load_shipped_reader

__all__ = [
    "AbstainPolicy",
    "AnswerSignals",
    "Extraction",
    "FEATURES",
    "LearnedAbstention",
    "QType",
    "ReadSpan",
    "Reader",
    "ReaderChoice",
    "ReaderLoadError",
    "ReaderPolicy",
    "Reading",
    "SIGNALS",
    "Span",
    "WEIGHTS",
    "answer_signals",
    "answer_window",
    "choose_span",
    "classify_question",
    "cmrc_em",
    "cmrc_f1",
    "content_terms",
    "ensure_merged",
    "extract_answer",
    "find_spans",
    "heuristic_proposal",
    "load_shipped_reader",
    "read_answer",
    "shown_window",
]
