"""The Milvus store: ``qa_bot.index.store.Store`` over Milvus Lite or a Milvus server.

See ``_schema`` for the collections and the born/died versioning that makes every
publish one write, ``_lock`` for the one-writer rule.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import Any

from ...lexical import derive_user_words
from ...types import Chunk
from ..changes import check_shrink
from ..errors import (
    IndexCorrupt,
    IndexMissing,
    IndexOutdated,
    IndexProblem,
    ModelMismatch,
    StaleChanges,
)
from ..generations import crashpoint
from ..publish import date_key, now_iso
from ..store import ArticleData, ChangeSet, PublishedState, StoreStats, UpdateReport, VectorSource
from ._conn import Target, calls, connect, ensure_loaded, release
from ._lock import WriterLock
from ._reader import MilvusReader, scan
from ._schema import (
    ALIVE,
    CHUNK_FIELDS,
    Names,
    article_row,
    chunk_row,
    create_generation,
    create_meta,
    live,
    quoted,
    row_chunk,
    sentence_rows,
)
from ._state import Published, read_published, write_published

_BATCH = 256  # chunks per insert (with their sentences: well under gRPC's 64 MB message)
_IDS_PER_QUERY = 200


@dataclass
class _Counts:
    articles: int = 0
    chunks: int = 0
    sentences: int = 0


class MilvusStore:
    """The index in Milvus collections under ``prefix`` (see ``_schema``)."""

    kind = "milvus"

    def __init__(self, uri: str, *, token: str = "", prefix: str = "qa_bot", cache_path: Path) -> None:
        self._target = Target(uri, token)
        self._names = Names(prefix)
        self._cache_path = Path(cache_path)
        self._lock = WriterLock(self._target, self._names, self._client)
        self._last_state: tuple[str, PublishedState] | None = None

    @property
    def location(self) -> str:
        return f"{self._target.location} ({self._names.prefix}_*)"

    def _client(self) -> Any:
        return connect(self._target)

    def close(self) -> None:
        """Let go of Milvus (Lite: the folder, for other processes); reopened on next use."""
        release(self._target)

    def vector_cache_path(self) -> Path:
        # the index folder holds only the cache here, and may not exist yet
        self._cache_path.parent.mkdir(parents=True, exist_ok=True)
        return self._cache_path

    # -- reading ----------------------------------------------------------------
    def _published(self) -> Published | None:
        return read_published(self._client(), self._target, self._names)

    def published_version(self) -> str | None:
        pub = self._published()
        return pub.version if pub else None

    def open_reader(
        self, *, model: str | None = None, dim: int | None = None, layout_version: str | None = None
    ) -> MilvusReader:
        pub = self._published()
        if pub is None:
            raise IndexMissing(self.location)
        if (model is not None and model != pub.model) or (dim is not None and dim != pub.dim):
            raise ModelMismatch(self.location, pub.model, pub.dim, model, dim)
        if layout_version is not None and layout_version != pub.layout_version:
            raise IndexOutdated(self.location)
        client = self._client()
        self._load(client, pub)
        with calls(self._target, self._names.chunks(pub.gen)):
            n = client.query(self._names.chunks(pub.gen), filter=live(pub.seq), output_fields=["count(*)"])
        got = int(n[0]["count(*)"]) if n else 0
        if got != pub.chunks:
            raise IndexCorrupt(
                f"{self._target.location} {self._names.chunks(pub.gen)}",
                f"{got} chunks, the published record says {pub.chunks}",
            )
        return MilvusReader(client, self._target, self._names, pub)

    def _load(self, client: Any, pub: Published) -> None:
        """Collections must be loaded before they answer (Lite releases them on restart)."""
        for name in self._names.generation(pub.gen):
            with calls(self._target, name):
                if not client.has_collection(name):
                    raise IndexCorrupt(f"{self._target.location} {name}", "collection missing")
                ensure_loaded(client, self._target, name)

    def stats(self) -> StoreStats:
        pub = self._published()
        if pub is None:
            raise IndexMissing(self.location)
        lite = self._target.lite_path
        size = sum(p.stat().st_size for p in lite.rglob("*") if p.is_file()) if lite else 0
        return StoreStats(
            kind=self.kind, version=pub.version, articles=pub.articles, chunks=pub.chunks,
            model=pub.model, dim=pub.dim, layout_version=pub.layout_version,
            built_at=pub.built_at, last_update=pub.updated_at, size_bytes=size,
            details={
                "uri": self._target.location, "collections": ", ".join(self._names.generation(pub.gen)),
                "sentences": pub.sentences, "user_words": len(pub.user_words),
            },
        )

    def verify(self) -> list[str]:
        try:
            return self._verify()
        except IndexProblem as e:
            return [str(e)]

    def _verify(self) -> list[str]:
        pub = self._published()
        if pub is None:
            return [str(IndexMissing(self.location))]
        client = self._client()
        self._load(client, pub)
        chunks_c, sent_c, art_c = self._names.generation(pub.gen)
        flt = live(pub.seq)
        with calls(self._target, chunks_c):
            arts = scan(client, self._target, art_c, flt, ["article_path", "n_chunks"])
            chunk_paths = scan(client, self._target, chunks_c, flt, ["article_path", "chunk_id"])
            sents = scan(client, self._target, sent_c, flt, ["chunk_id"])
        problems = []
        where = f"{self._target.location} {self._names.prefix}_g{pub.gen}"
        if (len(arts), len(chunk_paths), len(sents)) != (pub.articles, pub.chunks, pub.sentences):
            problems.append(
                f"{where}: {len(arts)} articles/{len(chunk_paths)} chunks/{len(sents)} sentences, "
                f"the published record says {pub.articles}/{pub.chunks}/{pub.sentences}"
            )
        per: dict[str, int] = {}
        for r in chunk_paths:
            per[r["article_path"]] = per.get(r["article_path"], 0) + 1
        expected = {r["article_path"]: int(r["n_chunks"]) for r in arts}
        orphans = set(per) - set(expected)
        if orphans:
            problems.append(f"{where}: chunks of {len(orphans)} articles that are not published")
        wrong = [p for p, n in expected.items() if per.get(p, 0) != n]
        if wrong:
            problems.append(f"{where}: {len(wrong)} articles without all their chunks (e.g. {wrong[0]})")
        bare = {r["chunk_id"] for r in chunk_paths} - {r["chunk_id"] for r in sents}
        if bare:
            problems.append(f"{where}: {len(bare)} chunks without sentence vectors")
        return problems

    # -- writing ----------------------------------------------------------------
    def writer_lock(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        return self._lock.hold(timeout)

    def current_state(self) -> PublishedState:
        return self._state()[1]

    def _state(self) -> tuple[Published | None, PublishedState]:
        """The readable published record (or None) and the state an update may build
        on: its version is None when the record or its collections are unusable."""
        try:
            raw = self._published()
        except IndexCorrupt as e:
            return None, PublishedState(None, problem=str(e))
        if raw is None:
            return None, PublishedState(None)
        cached = self._last_state
        if cached is not None and cached[0] == raw.version:
            return raw, cached[1]  # apply() right after current_state(): scan once
        try:
            client = self._client()
            self._load(client, raw)
            art_c = self._names.articles(raw.gen)
            with calls(self._target, art_c):
                rows = scan(client, self._target, art_c, live(raw.seq), ["article_path", "sig"])
        except IndexCorrupt as e:
            return raw, PublishedState(None, problem=str(e))
        sigs = {r["article_path"]: r["sig"] for r in rows}
        if len(sigs) != raw.articles:
            problem = f"{len(sigs)} articles, the published record says {raw.articles}"
            return raw, PublishedState(None, problem=f"{self.location}: {problem}")
        state = PublishedState(raw.version, raw.model, raw.dim, raw.layout_version, sigs)
        self._last_state = (raw.version, state)
        return raw, state

    def apply(
        self,
        changes: ChangeSet,
        vectors: VectorSource,
        *,
        allow_shrink: bool = False,
        max_shrink_fraction: float = 0.5,
        lock_timeout: float = 600,
    ) -> UpdateReport:
        with self._lock.hold(lock_timeout):
            return self._apply_locked(changes, vectors, allow_shrink, max_shrink_fraction)

    def _apply_locked(
        self, changes: ChangeSet, vectors: VectorSource, allow_shrink: bool, max_shrink: float
    ) -> UpdateReport:
        report = UpdateReport(
            added=len(changes.added), changed=len(changes.changed), removed=len(changes.removed),
            unchanged=len(changes.unchanged), total_chunks=changes.total_chunks,
            total_articles=changes.total_articles,
        )
        client = self._client()
        raw, state = self._state()
        self._last_state = None
        if changes.base_version != state.version:
            raise StaleChanges(changes.base_version, state.version)
        # an unusable published version is rebuilt from scratch; its numbers still count
        pub = raw if state.version is not None else None
        if pub is not None and (pub.model, pub.dim) != (changes.model, changes.dim) and not changes.full:
            raise ModelMismatch(self.location, pub.model, pub.dim, changes.model, changes.dim)
        check_shrink(pub.articles if pub else 0, changes.total_articles, allow_shrink, max_shrink)
        with calls(self._target, self._names.meta):
            create_meta(client, self._names)
        same_layout = pub is not None and pub.layout_version == changes.layout_version
        if pub is not None and not changes.full and same_layout and not changes.touches_articles:
            report.generation = pub.version
            return report
        # after the check above: a crashed writer's rows are invisible to readers, so an
        # update with nothing to write leaves them to the next one that writes (in Milvus
        # Lite each filtered delete scans a whole collection: 12 s at 10k chunks)
        self._clean(client, pub)
        seq = (raw.seq if raw else 0) + 1
        if changes.full or pub is None or pub.dim != changes.dim:
            new = self._rebuild(client, changes, vectors, raw, seq)
            report.rebuilt = True
        else:
            new = self._patch(client, changes, vectors, pub, seq, same_layout)
        crashpoint("milvus-before-publish")
        write_published(client, self._target, self._names, new)
        self._drop_generations(client, keep={new.gen, new.prev_gen})
        report.generation, report.published = new.version, True
        report.total_chunks, report.total_articles = new.chunks, new.articles
        return report

    def _new_version(self, seq: int) -> str:
        # random suffix: a version number reused after a crashed update is still new
        return f"{seq:06d}-{secrets.token_hex(3)}"

    def _rebuild(
        self, client: Any, changes: ChangeSet, vectors: VectorSource, pub: Published | None, seq: int
    ) -> Published:
        """Everything into a new generation of collections (a full build, a first
        build, a new model): readers of the old one keep it until the next update."""
        datas = [*changes.added, *changes.changed, *changes.kept]
        existing = self._generations(client)
        gen = max([*existing, pub.gen if pub else 0]) + 1
        words = sorted(derive_user_words([c for d in datas for c in d.chunks]))
        with calls(self._target, self._names.chunks(gen)):
            create_generation(client, self._names, gen, changes.dim, words)
        counts = self._write(client, gen, seq, datas, vectors)
        now = now_iso()
        return Published(
            version=self._new_version(seq), seq=seq, gen=gen,
            prev_seq=pub.seq if pub else 0, prev_gen=pub.gen if pub else gen,
            model=changes.model, dim=changes.dim, layout_version=changes.layout_version,
            articles=counts.articles, chunks=counts.chunks, sentences=counts.sentences,
            built_at=now, updated_at=now, user_words=tuple(words),
        )

    def _patch(
        self, client: Any, changes: ChangeSet, vectors: VectorSource, pub: Published, seq: int,
        same_layout: bool,
    ) -> Published:
        """New rows born ``seq``, superseded rows died ``seq``; invisible until published."""
        gone = [*changes.removed, *(d.article.path for d in changes.changed)]
        killed = self._kill(client, pub.gen, seq, gone)
        counts = self._write(client, pub.gen, seq, [*changes.added, *changes.changed], vectors)
        if not same_layout:
            k, w = self._carry(client, pub, seq, changes.unchanged, vectors)
            killed, counts = _add(killed, k), _add(counts, w)
        return replace(
            pub, version=self._new_version(seq), seq=seq, prev_seq=pub.seq, prev_gen=pub.gen,
            layout_version=changes.layout_version,
            articles=pub.articles - killed.articles + counts.articles,
            chunks=pub.chunks - killed.chunks + counts.chunks,
            sentences=pub.sentences - killed.sentences + counts.sentences,
            updated_at=now_iso(),
        )

    def _write(
        self, client: Any, gen: int, seq: int, datas: Sequence[ArticleData], vectors: VectorSource
    ) -> _Counts:
        counts = _Counts()
        batch: list[ArticleData] = []
        n = 0
        for i, d in enumerate(datas):
            batch.append(d)
            n += len(d.chunks)
            if n >= _BATCH or i == len(datas) - 1:
                a_rows = [
                    article_row(b.article, b.signature, len(b.chunks), date_key(b.article.date), seq)
                    for b in batch
                ]
                chunks = [c for b in batch for c in b.chunks]
                dense = [v for b in batch for v in b.vectors]
                self._insert(client, gen, seq, chunks, dense, a_rows, vectors, counts)
                crashpoint("milvus-after-batch")
                batch, n = [], 0
        return counts

    def _insert(
        self, client: Any, gen: int, seq: int, chunks: Sequence[Chunk], dense: Sequence[Any],
        a_rows: list[dict[str, Any]], vectors: VectorSource, counts: _Counts,
    ) -> None:
        """Rows born ``seq``: the chunks with their sentences, and their articles."""
        chunks_c, sent_c, art_c = self._names.generation(gen)
        c_rows, s_rows = [], []
        for c, v, s in zip(chunks, dense, vectors.sentence_vectors(chunks), strict=True):
            c_rows.append(chunk_row(c, v, seq, len(s.spans)))
            s_rows += sentence_rows(c, s.spans, s.vectors, seq)
        with calls(self._target, chunks_c):
            for name, rows in ((chunks_c, c_rows), (sent_c, s_rows), (art_c, a_rows)):
                for j in range(0, len(rows), _BATCH):
                    client.insert(name, rows[j : j + _BATCH])
        counts.articles += len(a_rows)
        counts.chunks += len(c_rows)
        counts.sentences += len(s_rows)

    def _carry(
        self, client: Any, pub: Published, seq: int, paths: Sequence[str], vectors: VectorSource
    ) -> tuple[_Counts, _Counts]:
        """Unchanged articles rewritten as of ``seq`` from what the store holds (with
        sentences cut anew): a new layout may split sentences differently.
        Returns (killed, written)."""
        chunks_c, _, art_c = self._names.generation(pub.gen)
        killed, written = _Counts(), _Counts()
        for part in _parts(list(paths)):
            flt = f"article_path in {quoted(part)} and died == {ALIVE}"
            with calls(self._target, chunks_c):
                c_rows = scan(client, self._target, chunks_c, flt, [*CHUNK_FIELDS, "dense"])
                a_rows = scan(client, self._target, art_c, flt, ["*"])
            killed = _add(killed, self._kill(client, pub.gen, seq, part))
            for r in a_rows:
                r.update(pk=f"{seq}:{r['article_path']}", born=seq, died=ALIVE)
            chunks = [row_chunk(r) for r in c_rows]
            self._insert(client, pub.gen, seq, chunks, [r["dense"] for r in c_rows], a_rows, vectors, written)
        return killed, written

    def _kill(self, client: Any, gen: int, seq: int, paths: Sequence[str]) -> _Counts:
        """Mark the current rows of these articles superseded as of ``seq``."""
        chunks_c, sent_c, art_c = self._names.generation(gen)
        killed = _Counts()
        for part in _parts(list(dict.fromkeys(paths))):
            flt = f"article_path in {quoted(part)} and died == {ALIVE}"
            killed.chunks += self._mark(client, chunks_c, flt, seq)
            killed.sentences += self._mark(client, sent_c, flt, seq)
            killed.articles += self._mark(client, art_c, flt, seq)
        return killed

    def _mark(self, client: Any, collection: str, flt: str, died: int) -> int:
        """Set ``died`` on the rows matching ``flt`` (partial upserts: only pk and died)."""
        with calls(self._target, collection):
            pks = [r["pk"] for r in scan(client, self._target, collection, flt, ["pk"])]
            for j in range(0, len(pks), _BATCH):
                rows = [{"pk": pk, "died": died} for pk in pks[j : j + _BATCH]]
                client.upsert(collection, rows, partial_update=True)
        return len(pks)

    def _clean(self, client: Any, pub: Published | None) -> None:
        """Undo what crashed writers left and drop what no reader can still use.

        Rows born after the published version are unpublished debris; rows marked
        superseded by an unpublished version are current again; rows superseded
        before the previous version are invisible to every reader that may still run.
        """
        if pub is None:
            return  # without a readable record nothing is known to be debris
        self._drop_generations(client, keep={pub.gen, pub.prev_gen})
        for name in self._names.generation(pub.gen):
            with calls(self._target, name):
                if not client.has_collection(name):
                    continue
                client.delete(name, filter=f"born > {pub.seq}")
            self._mark(client, name, f"died > {pub.seq} and died < {ALIVE}", ALIVE)
            with calls(self._target, name):
                client.delete(name, filter=f"died <= {pub.prev_seq}")

    def _generations(self, client: Any) -> set[int]:
        with calls(self._target, self._names.meta):
            names = client.list_collections()
        return {g for g in map(self._names.gen_of, names) if g is not None}

    def _drop_generations(self, client: Any, keep: set[int]) -> None:
        for gen in sorted(self._generations(client) - keep):
            for name in self._names.generation(gen):
                with calls(self._target, name):
                    if client.has_collection(name):
                        client.drop_collection(name)


def _add(a: _Counts, b: _Counts) -> _Counts:
    return _Counts(*(x + y for x, y in zip(astuple(a), astuple(b), strict=True)))


def _parts(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _IDS_PER_QUERY):
        yield items[i : i + _IDS_PER_QUERY]
