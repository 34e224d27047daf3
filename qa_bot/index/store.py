"""The store interface: what the service, retrieval, CLI and bot may ask of an index.

Two implementations: ``local`` (generations of FAISS + SQLite + BM25 files in one
folder, the default) and ``milvus`` (``qa_bot/index/milvus.py``). Everything above the
store (parsing, chunking, computing what changed, filling vectors from the vector
cache or the model, fusion, answers) is shared; a store only persists, publishes and
searches.

An update goes like this (``qa_bot.index.changes.update_store`` does it)::

    with store.writer_lock(timeout):                 # one writer at a time
        state = store.current_state()                # what is published now
        changes = compute_changes(corpus, state, …)  # store-independent
        fill the vectors of added/changed chunks    # vector cache, then the model
        report = store.apply(changes, vectors)       # atomic publish

Versions: every publish gets a new opaque ``version`` string (the local store uses its
generation id). Two reads of ``published_version()`` returning the same string mean
nothing was published in between, so a long-running reader calls it before each
question and opens a new ``StoreReader`` only when it changed. A reader answers from
exactly one version for its whole life, even while newer ones are published.

Errors are the ``IndexProblem`` subclasses of ``qa_bot.index.errors``; ``str(e)`` is a
one-line message for the user (the CLI prints it and exits 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..lexical import PosTagger, WordCutter
from ..sentences import ChunkSentences
from ..types import Article, Chunk

StoreKind = Literal["local", "milvus"]


# --------------------------------------------------------------------------- data crossing the interface


@dataclass(frozen=True)
class ArticleInfo:
    """A published article (without its chunks)."""

    path: str
    title: str
    date: str | None
    url: str | None
    source: str | None
    content_hash: str
    n_chunks: int
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArticleData:
    """One article as an update writes it: the record, its chunks and their vectors."""

    article: Article
    #: ``qa_bot.index.changes.article_signature`` of the article and its chunks; the
    #: store keeps it and returns it in ``PublishedState.signatures``
    signature: str
    chunks: tuple[Chunk, ...]  # in (ordinal, chunk_id) order
    #: (len(chunks), dim) float32, unit rows, row i is chunks[i]'s passage vector
    vectors: np.ndarray


@dataclass(frozen=True)
class ChangeSet:
    """What an update publishes, computed against one published version.

    ``added``/``changed`` carry every chunk of those articles with its vector already
    filled; ``removed`` and ``unchanged`` are article paths. With ``full`` the store
    replaces everything: ``unchanged`` articles are then also given with their data in
    ``kept`` (vectors filled), and the store must not reuse anything of what it holds.
    """

    #: the ``PublishedState.version`` this was computed against (None: nothing usable
    #: was published); ``Store.apply`` raises StaleChanges if that is no longer so
    base_version: str | None
    model: str
    dim: int
    #: chunker and artifact formats (``QAService.layout_version()``); a store must
    #: publish a new version when it differs from the published one, even if no
    #: article changed, and readers refuse a version whose layout is not theirs
    layout_version: str
    full: bool
    added: tuple[ArticleData, ...] = ()
    changed: tuple[ArticleData, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    kept: tuple[ArticleData, ...] = ()  # only with ``full``: the unchanged articles' data
    total_chunks: int = 0  # chunks of the published index after this change set

    @property
    def total_articles(self) -> int:
        return len(self.added) + len(self.changed) + len(self.unchanged)

    @property
    def touches_articles(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class PublishedState:
    """What a change set is computed against (``Store.current_state``)."""

    #: the published version, or None when nothing is published or what is published
    #: cannot serve as the base of an update (then ``problem`` says why, and the update
    #: writes everything from scratch)
    version: str | None
    model: str | None = None
    dim: int | None = None
    layout_version: str | None = None
    #: published article path → its signature (``ArticleData.signature``)
    signatures: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


@dataclass
class UpdateReport:
    """What an update did. ``Store.apply`` fills the counts from the change set and the
    publishing fields; the caller that filled the vectors adds ``embedded_chunks``,
    ``reused_chunks`` and ``seconds``."""

    added: int = 0  # articles
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded_chunks: int = 0  # distinct texts sent to the model
    reused_chunks: int = 0  # chunks of the new version that needed no model call
    total_chunks: int = 0
    total_articles: int = 0
    generation: str | None = None  # the published version after the update
    seconds: float = 0.0
    published: bool = False  # False: nothing changed, nothing was written
    rebuilt: bool = False  # the vector index was built from scratch (full, IVF (re)train, repair)
    faiss_kind: str | None = None  # local store: "flat" | "ivf"; None for other stores
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass(frozen=True)
class StoreStats:
    """Counts, model and dates of the published version (``qa-bot index stats``)."""

    kind: str
    version: str
    articles: int
    chunks: int
    model: str
    dim: int
    layout_version: str
    built_at: str  # ISO 8601, last from-scratch build
    last_update: str  # ISO 8601, this version
    size_bytes: int  # of the published version's data
    #: store-specific facts, printed as they are (local: generation dir, faiss kind,
    #: nlist, nprobe, total size on disk with the previous generation and the cache)
    details: Mapping[str, str | int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Today's ``index stats --json`` keys first, then the details."""
        return {
            "generation": self.version,
            "articles": self.articles,
            "chunks": self.chunks,
            "model": self.model,
            "dim": self.dim,
            "chunker_version": self.layout_version,
            **{k: v for k, v in self.details.items() if k not in ("dir", "total_size_bytes")},
            "size_bytes": self.size_bytes,
            "built_at": self.built_at,
            "last_update": self.last_update,
            **{k: v for k, v in self.details.items() if k in ("dir", "total_size_bytes")},
            "store": self.kind,
        }


# --------------------------------------------------------------------------- protocols


class VectorSource(Protocol):
    """Vectors for chunks and their sentences, from the vector cache or else the model
    (new ones are cached as they are computed). Given to ``Store.apply`` for what the
    change set does not carry: the sentence vectors, and the vectors of unchanged
    chunks when a store decides to rebuild its vector index."""

    def chunk_vectors(self, chunks: Sequence[Chunk]) -> np.ndarray:
        """(len(chunks), dim) float32 unit rows of the chunks' ``embed_text``."""
        ...

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> list[ChunkSentences]:
        """The sentences of each chunk's ``text`` (``qa_bot.sentences.sentence_spans``)
        with their vectors, in the order of ``chunks``."""
        ...


class Segmenter(WordCutter, PosTagger, Protocol):
    """The index's segmentation, which the service hands to everything that cuts a
    question or passage: the off-topic check, the answer extractor (``cut``) and the
    follow-up memory (``tag``)."""

    def words(self, text: str) -> list[str]:
        """Plain word segmentation (jieba with the index's user words, no overlapping
        sub-words); the follow-up memory and the off-topic check use it."""
        ...


@runtime_checkable
class StoreReader(Protocol):
    """One published version, read-only, safe to share between threads.

    A long-running bot keeps one open and answers from it while newer versions are
    published (it must keep working even after the store deleted that version's
    files); it opens a new one when ``Store.published_version()`` changes and closes
    the old one.
    """

    @property
    def version(self) -> str:
        """The version this reader answers from (as ``Store.published_version()`` gave)."""
        ...

    @property
    def layout_version(self) -> str:
        """``ChangeSet.layout_version`` of the update that published this version."""
        ...

    @property
    def chunk_count(self) -> int: ...

    @property
    def tokenizer(self) -> Segmenter:
        """The segmentation lexical search uses (with the index's user dictionary)."""
        ...

    def dense_search(self, qvecs: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        """The ``k`` nearest chunks by inner product (= cosine: rows are unit vectors)
        for each row of ``qvecs`` ((n, dim), or (dim,) for one), best first.
        Raises ValueError on a wrong dimension."""
        ...

    def lexical_search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """Up to ``k`` chunks with a positive BM25 score for ``query``, best first.
        The store tokenizes (local: jieba ``cut_for_search`` minus question words,
        ``qa_bot.lexical``); scores are comparable within one call only."""
        ...

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, ChunkSentences]:
        """The sentences of these chunks with their vectors (unknown ids left out)."""
        ...

    def chunks_by_ids(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks with these ids (unknown ids are left out)."""
        ...

    def articles(self) -> list[ArticleInfo]:
        """Every article, by path."""
        ...

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, by article path then ordinal (an update reuses the chunking of
        unchanged files from here)."""
        ...

    def latest_articles(self, n: int) -> list[ArticleInfo]:
        """The ``n`` newest articles; dates compared in UTC, undated ones last."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> StoreReader: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Store(Protocol):
    """Where the index lives. Cheap to create: it opens nothing until asked."""

    #: "local" | "milvus"
    kind: str

    @property
    def location(self) -> str:
        """Where the store is, for messages (a folder, a URI with the collection)."""
        ...

    def published_version(self) -> str | None:
        """The published version, None when nothing was ever published.

        Cheap (one small read: a reader calls it before every question) and changes on
        every publish. Raises IndexCorrupt when the published pointer itself is
        unreadable (the caller keeps its open reader and reports the problem), or
        StorageProblem when the store cannot be reached.
        """
        ...

    def open_reader(
        self, *, model: str | None = None, dim: int | None = None, layout_version: str | None = None
    ) -> StoreReader:
        """A reader of the published version, its data checked before it is trusted.

        Raises IndexMissing (nothing published), IndexCorrupt (damaged data),
        ModelMismatch (``model``/``dim``, when given, differ from what the index was
        built with), IndexOutdated (``layout_version``, when given, differs from the
        published one: checked before any layout-dependent data is read),
        StorageProblem (unreachable, unreadable disk).
        """
        ...

    def writer_lock(self, timeout: float) -> AbstractContextManager[None]:
        """Hold the one-writer lock for a whole update (state, embedding, apply).

        Waits up to ``timeout`` seconds for another writer, then raises IndexBusy.
        Re-entrant in the holding thread: ``apply`` inside it does not wait again.
        """
        ...

    def current_state(self) -> PublishedState:
        """The published articles' signatures, model and layout (call it under
        ``writer_lock``). A damaged published index is not an error here: the state
        then has ``version`` None and says why in ``problem``."""
        ...

    def apply(
        self,
        changes: ChangeSet,
        vectors: VectorSource,
        *,
        allow_shrink: bool = False,
        max_shrink_fraction: float = 0.5,
        lock_timeout: float = 600,
    ) -> UpdateReport:
        """Publish ``changes`` atomically: readers see all of it or none of it, and a
        crash (even kill -9) at any point leaves the previous version published and
        the store usable by the next update.

        Takes the writer lock (IndexBusy after ``lock_timeout``; no wait under
        ``writer_lock``). Raises StaleChanges when ``changes.base_version`` is no
        longer what ``current_state()`` reports; ShrinkRefused when the result would
        hold more than ``max_shrink_fraction`` fewer articles than the published
        version, unless ``allow_shrink``; ModelMismatch when the model differs from
        the published one without ``changes.full``; StorageProblem when the store
        refuses a write (the published version keeps answering). Publishes nothing
        (``report.published`` False) when nothing changed and the layout is the same.
        """
        ...

    def vector_cache_path(self) -> Path:
        """The SQLite vector cache this store's updates use (local: in the index folder)."""
        ...

    def stats(self) -> StoreStats:
        """The published version's counts, model, dates and sizes (IndexMissing,
        IndexCorrupt, StorageProblem)."""
        ...

    def verify(self) -> list[str]:
        """Problems with the published version, one line each; empty means OK. Never
        raises an IndexProblem: a missing or unreadable index is one problem line."""
        ...
