"""What the bot needs from the question-answering service, as types.

``qa_bot.service.QAService`` still returns dicts from ``latest``/``stats``/``reindex``;
:func:`typed_service` adapts such a service at the boundary so the rest of the package
only ever sees the dataclasses below. A service that already returns them passes through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from qa_bot.types import Answer

# Without a hint from the service: roughly what a 512-token model window holds of a
# Chinese question (about one token per character, plus the query prefix and specials).
DEFAULT_MAX_QUESTION_CHARS = 400


@dataclass(frozen=True)
class LatestArticle:
    path: str
    title: str
    date: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class IndexStats:
    articles: int | None = None
    chunks: int | None = None
    last_update: str | None = None
    model: str | None = None
    generation: str | None = None


@dataclass(frozen=True)
class ReindexReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded_chunks: int = 0
    total_chunks: int = 0
    seconds: float | None = None
    skipped: int = 0


class BotService(Protocol):
    """The typed contract the handlers call (blocking calls; they run in worker threads)."""

    def ask(self, question: str, conversation: str | None = None) -> Answer: ...

    def latest(self, n: int = 5) -> Sequence[LatestArticle]: ...

    def stats(self) -> IndexStats: ...

    def reindex(self) -> ReindexReport: ...


class DictBotService(Protocol):
    """Today's ``QAService``: the same calls, answering with plain dicts."""

    def ask(self, question: str, conversation: str | None = None) -> Answer: ...

    def latest(self, n: int = 5) -> list[dict]: ...

    def stats(self) -> dict: ...

    def reindex(self) -> dict: ...


def _count(value: Any) -> int:
    # reindex reports carry either counts or the lists of affected paths
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return len(value)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _optional_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def latest_from_mapping(item: Mapping[str, Any]) -> LatestArticle:
    return LatestArticle(
        path=str(item.get("path") or ""),
        title=str(item.get("title") or ""),
        date=_optional_str(item.get("date")),
        url=_optional_str(item.get("url")),
    )


def stats_from_mapping(stats: Mapping[str, Any]) -> IndexStats:
    return IndexStats(
        articles=_optional_int(stats.get("articles")),
        chunks=_optional_int(stats.get("chunks")),
        last_update=_optional_str(stats.get("last_update")),
        model=_optional_str(stats.get("model")),
        generation=_optional_str(stats.get("generation")),
    )


_REPORT_COUNTS = (
    "added",
    "changed",
    "removed",
    "unchanged",
    "embedded_chunks",
    "total_chunks",
    "skipped",
)


def reindex_from_mapping(result: Mapping[str, Any]) -> ReindexReport:
    seconds = result.get("seconds")
    return ReindexReport(
        **{k: _count(result.get(k)) for k in _REPORT_COUNTS},
        seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
    )



class TypedService:
    """Wraps a service that may answer with dicts; every result comes out typed."""

    def __init__(self, inner: BotService | DictBotService) -> None:
        self.inner = inner

    def ask(self, question: str, conversation: str | None = None) -> Answer:
        return self.inner.ask(question, conversation)

    def latest(self, n: int = 5) -> list[LatestArticle]:
        return [
            item if isinstance(item, LatestArticle) else latest_from_mapping(item)
            for item in self.inner.latest(n)
        ]

    def stats(self) -> IndexStats:
        stats = self.inner.stats()
        return stats if isinstance(stats, IndexStats) else stats_from_mapping(stats)

    def reindex(self) -> ReindexReport:
        result = self.inner.reindex()
        return result if isinstance(result, ReindexReport) else reindex_from_mapping(result)


def typed_service(service: BotService | DictBotService) -> TypedService:
    return service if isinstance(service, TypedService) else TypedService(service)


def max_question_chars(service: object) -> int:
    """The service's own limit (``max_question_chars`` attribute) if it states one."""
    inner = service.inner if isinstance(service, TypedService) else service
    value = getattr(inner, "max_question_chars", None)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_QUESTION_CHARS
