"""What the bot needs from the question-answering service: typed results only
(``qa_bot.types``), which ``qa_bot.service.QAService`` returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from qa_bot.types import Answer, IndexStats, LatestArticle, ReindexReport

# Without a hint from the service: roughly what a 512-token model window holds of a
# Chinese question (about one token per character, plus the query prefix and specials).
DEFAULT_MAX_QUESTION_CHARS = 400


class BotService(Protocol):
    """The typed contract the handlers call (blocking calls; they run in worker threads)."""

    def ask(self, question: str, conversation: str | None = None) -> Answer: ...

    def latest(self, n: int = 5) -> Sequence[LatestArticle]: ...

    def stats(self) -> IndexStats: ...

    def reindex(self) -> ReindexReport: ...


def max_question_chars(service: object) -> int:
    """The service's own limit (``max_question_chars`` attribute) if it states one."""
    value = getattr(service, "max_question_chars", None)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_QUESTION_CHARS
