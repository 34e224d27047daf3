"""The question, analysed once per answer: its type, terms and shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ...lexical import WordCutter
from ..qtype import QType, classify_question, entity_subkind, unit_hint
from ..spans import has_detector
from .align import QShape, qshape
from .terms import Term, terms_of

__all__ = ["Question"]

# Types whose answer is a phrase (a figure, a date, a name, a place): the answer is the clause
# holding the span plus its subject. The others want a whole statement: the full sentence.
_SHORT_TYPES = frozenset({QType.NUMBER, QType.DATE, QType.ENTITY, QType.LOCATION})


@dataclass(frozen=True)
class Question:
    """``short``: the answer is a phrase; ``typed``: a span detector knows what is wanted
    (an entity question counts only when it says which kind of name); ``qterms``: the
    content words of two characters or more; ``sub``/``unit``: the kind of name or the unit
    asked for, if any; ``tokenizer``: what it was cut with, for the passages to be cut alike
    (None: ``qa_bot.lexical.default_tokenizer``)."""

    text: str
    qtype: QType
    terms: tuple[Term, ...]
    shape: QShape
    sub: str
    unit: str | None
    tokenizer: WordCutter | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, question: str, tokenizer: WordCutter | None = None) -> Question:
        qtype = classify_question(question)
        sub = entity_subkind(question) if qtype is QType.ENTITY else ""
        unit = unit_hint(question) if qtype is QType.NUMBER else None
        terms, shape = terms_of(question, tokenizer), qshape(question, tokenizer)
        return cls(question, qtype, terms, shape, sub, unit, tokenizer)

    @property
    def short(self) -> bool:
        return self.qtype in _SHORT_TYPES

    @property
    def typed(self) -> bool:
        return has_detector(self.qtype) and not (self.qtype is QType.ENTITY and not self.sub)

    @property
    def figure_or_date(self) -> bool:
        return self.qtype in (QType.NUMBER, QType.DATE)

    @cached_property
    def qterms(self) -> list[str]:
        return [t.text for t in self.terms if t.pattern is None and len(t.text) >= 2]
