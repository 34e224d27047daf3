"""What an update changes, and the update every store shares.

An update takes the whole corpus (not a delta). An article is unchanged when its
record and chunks are identical (``article_signature``; content_hash alone would miss
chunker changes). The change set carries the added and changed articles with their
chunk vectors, filled from the vector cache or the model (``vectors.CachedVectors``);
the store only applies it (``Store.apply``). Nothing here knows how a store keeps
its data.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..embedding import Embedder
from ..types import Article, Chunk
from .errors import ModelMismatch, ShrinkRefused, StaleChanges
from .store import ArticleData, ChangeSet, PublishedState, Store, UpdateReport, VectorSource
from .vectors import CachedVectors, remove_damaged_caches


def article_signature(a: Article, chunks: Sequence[Chunk]) -> str:
    # content_hash alone would miss chunker or parser changes that leave the file unchanged
    payload = json.dumps(
        [asdict(a), [asdict(c) for c in chunks]], ensure_ascii=False, sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Corpus:
    """The whole corpus of an update, checked: unique paths and chunk ids, every chunk
    belonging to a given article."""

    articles: dict[str, Article]  # by path
    chunks: dict[str, list[Chunk]]  # by article path, in (ordinal, chunk_id) order

    @property
    def ordered(self) -> list[Chunk]:
        """Every chunk by article path, then ordinal: the index's stable row order."""
        return [c for p in sorted(self.chunks) for c in self.chunks[p]]

    @property
    def n_chunks(self) -> int:
        return sum(len(cs) for cs in self.chunks.values())


def validate_corpus(articles: Sequence[Article], chunks: Sequence[Chunk]) -> Corpus:
    """Raises ValueError on duplicate paths or chunk ids and on orphan chunks."""
    by_path: dict[str, Article] = {}
    for a in articles:
        if a.path in by_path:
            raise ValueError(f"duplicate article path {a.path!r}")
        by_path[a.path] = a
    per_article: dict[str, list[Chunk]] = {p: [] for p in by_path}
    seen: set[str] = set()
    for c in chunks:
        if c.chunk_id in seen:
            raise ValueError(f"duplicate chunk id {c.chunk_id!r}")
        seen.add(c.chunk_id)
        if c.article_path not in per_article:
            raise ValueError(f"chunk {c.chunk_id!r} belongs to no given article")
        per_article[c.article_path].append(c)
    for lst in per_article.values():
        lst.sort(key=lambda c: (c.ordinal, c.chunk_id))
    return Corpus(by_path, per_article)


@dataclass(frozen=True)
class KnownUnchanged:
    """Published articles known to be unchanged without reading their files (the
    service's file stamps, ``qa_bot.ingest.stamps``): they are not in the corpus given
    to ``update_store``, and count as unchanged articles of ``version``."""

    version: str  # the published version they are articles of
    chunks: Mapping[str, int]  # path → its chunk count in that version


@dataclass(frozen=True)
class ArticleDiff:
    """Article paths of the corpus against the published signatures."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    signatures: dict[str, str]  # of the corpus's articles

    @property
    def touches_articles(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def diff_articles(
    corpus: Corpus, published: Mapping[str, str], known: KnownUnchanged | None = None
) -> ArticleDiff:
    sigs = {p: article_signature(a, corpus.chunks[p]) for p, a in corpus.articles.items()}
    for p in known.chunks if known else ():
        sigs[p] = published[p]  # the same bytes as published: the same article and chunks
    sigs = dict(sorted(sigs.items()))
    return ArticleDiff(
        added=tuple(p for p in sigs if p not in published),
        changed=tuple(p for p, s in sigs.items() if p in published and published[p] != s),
        removed=tuple(sorted(p for p in published if p not in sigs)),
        unchanged=tuple(p for p, s in sigs.items() if published.get(p) == s),
        signatures=sigs,
    )


def _check_known(state: PublishedState, known: KnownUnchanged, corpus: Corpus) -> None:
    """Known-unchanged articles must be of the published version, and not also given."""
    if state.version != known.version or any(p not in state.signatures for p in known.chunks):
        raise StaleChanges(known.version, state.version)
    both = next((p for p in known.chunks if p in corpus.articles), None)
    if both is not None:
        raise ValueError(f"article {both!r} is both given and known unchanged")


def check_shrink(before: int, after: int, allow: bool, max_fraction: float) -> None:
    """Refuse to publish a collapse: all or most articles gone at once is almost always
    a broken pull or parser, and publishing it would remove their answers for everyone."""
    if allow or before == 0 or after >= before:
        return
    if (before - after) / before > max_fraction:
        raise ShrinkRefused(before, after, max_fraction)


def build_change_set(
    corpus: Corpus,
    diff: ArticleDiff,
    state: PublishedState,
    embedder: Embedder,
    vectors: VectorSource,
    *,
    full: bool,
    layout_version: str,
    known: KnownUnchanged | None = None,
) -> ChangeSet:
    """The change set with the chunk vectors of every article it carries filled in one
    pass over the cache (one progress bar, each text embedded once)."""
    carried = [*diff.added, *diff.changed, *(diff.unchanged if full else ())]
    chunks = [c for p in carried for c in corpus.chunks[p]]
    # a no-op update (nothing changed) does not touch the cache: the store sees an empty
    # change set and publishes nothing (unless the layout changed)
    noop = not full and state.version is not None and not diff.touches_articles
    matrix = np.zeros((0, embedder.dim), np.float32) if noop else vectors.chunk_vectors(chunks)
    data: dict[str, ArticleData] = {}
    row = 0
    for p in carried:
        cs = corpus.chunks[p]
        data[p] = ArticleData(
            corpus.articles[p], diff.signatures[p], tuple(cs), matrix[row : row + len(cs)]
        )
        row += len(cs)
    return ChangeSet(
        base_version=state.version,
        model=embedder.name,
        dim=embedder.dim,
        layout_version=layout_version,
        full=full,
        added=tuple(data[p] for p in diff.added),
        changed=tuple(data[p] for p in diff.changed),
        removed=diff.removed,
        unchanged=diff.unchanged,
        kept=tuple(data[p] for p in diff.unchanged) if full else (),
        total_chunks=corpus.n_chunks + (sum(known.chunks.values()) if known else 0),
    )


def _check_state(store: Store, state: PublishedState, embedder: Embedder, full: bool) -> list[str]:
    """Notes on the published state; ModelMismatch unless a full build replaces it."""
    notes = []
    if state.model is not None and (state.model, state.dim) != (embedder.name, embedder.dim):
        if not full:
            raise ModelMismatch(store.location, state.model, state.dim or 0, embedder.name, embedder.dim)
        notes.append(f"model changed from {state.model} (dim {state.dim}): full rebuild")
    if state.problem:
        notes.append(f"previous index unusable, building from scratch: {state.problem}")
    return notes


def update_store(
    store: Store,
    articles: Sequence[Article],
    chunks: Sequence[Chunk],
    embedder: Embedder,
    *,
    full: bool = False,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    lock_timeout: float = 600,
    batch_size: int = 32,
    layout_version: str = "",
    allow_shrink: bool = False,
    max_shrink_fraction: float = 0.5,
    known: KnownUnchanged | None = None,
) -> UpdateReport:
    """Make the given corpus the published index, embedding as little as possible.

    ``articles``/``chunks`` are the whole corpus (not a delta), but for the ``known``
    unchanged articles of the published version (StaleChanges if it is no longer the
    published one; not with ``full``). Texts whose hash is in
    the vector cache for this model are not embedded (``use_cache=False`` re-embeds
    them); ``progress(done, total)`` is called per embedded batch. ``full`` replaces
    everything the store holds (and allows a model change). An update that would
    leave more than ``max_shrink_fraction`` fewer articles than the published index
    raises ShrinkRefused before anything is embedded, unless ``allow_shrink``.
    Raises IndexBusy, ModelMismatch, ShrinkRefused, StorageProblem, ValueError (bad
    corpus or embedder output).
    """
    t0 = time.monotonic()
    corpus = validate_corpus(articles, chunks)
    if full and known is not None:
        raise ValueError("a full build reads every article")
    with store.writer_lock(lock_timeout):
        state = store.current_state()
        notes = _check_state(store, state, embedder, full)
        if known is not None:
            _check_known(state, known, corpus)
        diff = diff_articles(corpus, state.signatures if state.version is not None else {}, known)
        before = len(state.signatures) if state.version is not None else 0
        check_shrink(before, len(diff.signatures), allow_shrink, max_shrink_fraction)
        cache = store.vector_cache_path()
        with CachedVectors(
            cache, embedder, use_cache=use_cache, batch_size=batch_size, progress=progress
        ) as source:
            changes = build_change_set(
                corpus, diff, state, embedder, source, full=full, layout_version=layout_version, known=known
            )
            report = store.apply(
                changes,
                source,
                allow_shrink=allow_shrink,
                max_shrink_fraction=max_shrink_fraction,
                lock_timeout=lock_timeout,
            )
        if report.published:
            remove_damaged_caches(cache)
    report.notes[:0] = notes
    report.embedded_chunks = len(source.embedded_chunks)
    embedded = sum(c.text_hash in source.embedded_chunks for c in corpus.ordered)
    report.reused_chunks = report.total_chunks - embedded
    report.seconds = time.monotonic() - t0
    return report
