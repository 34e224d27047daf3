"""Small dataclasses passed between the pipeline stages.

Every stage (ingest → chunking → embedding → index → retrieval → answer) speaks in
these types only, so that each module can be tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Article:
    """One parsed post.

    ``path`` (relative to the corpus dir, POSIX separators) is the article's key:
    two files may share the numeric id in their names (a malformed twin and its
    well-formed copy), but never a path.
    """

    path: str
    title: str
    date: str | None  # ISO 8601, e.g. "2021-12-28T19:27:59+08:00"
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    url: str | None
    source: str | None  # "（文章来源：新华财经）" → "新华财经"
    paragraphs: tuple[str, ...]
    content_hash: str  # sha256 of the raw file bytes


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested, and why (shown to the user, never silent)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Chunk:
    """A passage: normally one paragraph of one article.

    ``text`` is what users see; ``embed_text`` is what the model sees (the title is
    prepended because a question's key term is often only in the title).
    ``text_hash`` keys the vector cache, so identical text is never embedded twice.
    """

    chunk_id: str
    article_path: str
    ordinal: int
    title: str
    date: str | None
    url: str | None
    text: str
    embed_text: str
    text_hash: str


@dataclass(frozen=True)
class ScoredChunk:
    """A retrieval hit with the scores that produced it."""

    chunk: Chunk
    score: float
    dense: float | None = None
    lexical: float | None = None
    # per-sentence similarities with the question (qa_bot.sentences.SentenceScores), when known
    sentences: object | None = None


@dataclass(frozen=True)
class Source:
    """A passage shown with an answer (the JSON protocol's ``sources`` items)."""

    path: str
    title: str
    date: str | None
    url: str | None
    text: str
    score: float


@dataclass
class Answer:
    """What the bot says to one question (the JSON protocol's answer object)."""

    question: str
    answer: str | None
    abstained: bool
    sources: list[Source] = field(default_factory=list)
    # (start, end) of the key span inside ``answer``, for bold/highlight
    highlight: tuple[int, int] | None = None
    # the question actually asked of the index after follow-up resolution
    resolved_question: str | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "highlight": list(self.highlight) if self.highlight else None,
            "resolved_question": self.resolved_question,
            "sources": [
                {
                    "path": s.path,
                    "title": s.title,
                    "date": s.date,
                    "url": s.url,
                    "text": s.text,
                    "score": round(float(s.score), 6),
                }
                for s in self.sources
            ],
            "timing_ms": {k: round(v, 2) for k, v in self.timing_ms.items()},
        }


@dataclass(frozen=True)
class LatestArticle:
    """One of the most recent articles (the bot's /latest)."""

    path: str
    title: str
    date: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class IndexStats:
    """What the published index holds (the bot's /stats)."""

    articles: int | None = None
    chunks: int | None = None
    last_update: str | None = None
    model: str | None = None
    generation: str | None = None


@dataclass(frozen=True)
class ReindexReport:
    """What an update changed (the bot's /reindex)."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded_chunks: int = 0
    total_chunks: int = 0
    seconds: float | None = None
    skipped: int = 0
