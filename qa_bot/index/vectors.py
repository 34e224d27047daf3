"""The vector cache and the one call that fills vectors: from the cache, else the model.

Every vector ever computed is kept in one SQLite file, keyed by model and content
hash, so an update embeds only text the model never saw (re-added or moved posts
cost nothing), and an interrupted update keeps what it embedded. Chunk vectors and
sentence vectors go through the same ``VectorCache.get_or_embed``; ``CachedVectors``
is the ``VectorSource`` an update hands to ``Store.apply``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..embedding import Embedder
from ..sentences import ChunkSentences, sentence_key, sentence_spans
from ..types import Chunk
from .errors import StorageProblem
from .generations import crashpoint

log = logging.getLogger(__name__)

_SQL_VARS = 500  # well below SQLite's host-parameter limit

Progress = Callable[[int, int], None]


def sqlite_reason(e: sqlite3.Error) -> str:
    return f"{e} ({getattr(e, 'sqlite_errorname', 'SQLITE_ERROR')})"


def is_corrupt(path: Path, e: sqlite3.DatabaseError) -> bool:
    """True only for a real integrity failure: SQLite says the file is no database or
    malformed, and ``PRAGMA integrity_check`` (when it can run) agrees."""
    if getattr(e, "sqlite_errorname", "") not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError as again:
        return getattr(again, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class VectorCache:
    """(model, key) → float32 unit vector, committed batch by batch.

    Keys are chunk text hashes (``Chunk.text_hash``) and ``sentence_key`` of sentences.
    Only the writer (under the store's writer lock) opens it. WAL + synchronous=NORMAL survives a
    killed process; a power cut may lose the last batches, which are re-embedded.
    """

    def __init__(self, path: Path, model: str, dim: int) -> None:
        self.path, self.model, self.dim = Path(path), model, dim
        path = self.path
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as e:
            if not is_corrupt(path, e):
                # disk full, I/O error, read-only: the file is fine, the disk is not
                raise StorageProblem(path, sqlite_reason(e)) from None
            # it is only a cache: set the damaged file aside rather than fail the update
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            log.warning("vector cache %s unreadable (%s); moved to %s", path, e, aside)
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{path}{suffix}")
                if src.exists():
                    os.replace(src, Path(f"{aside}{suffix}"))
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # a rowid table keeps the ~1.5 KB blobs inline; WITHOUT ROWID would spill each
            # row to overflow pages and triple the file size
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (id INTEGER PRIMARY KEY, model TEXT NOT NULL, "
                "text_hash TEXT NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL, "
                "UNIQUE (model, text_hash))"
            )
            conn.commit()
            conn.execute("SELECT count(*) FROM vectors WHERE model = ?", ("",)).fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def get_many(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        nbytes = self.dim * 4
        for i in range(0, len(hashes), _SQL_VARS):
            part = list(hashes[i : i + _SQL_VARS])
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(
                f"SELECT text_hash, dim, vec FROM vectors WHERE model = ? AND text_hash IN ({marks})",
                [self.model, *part],
            )
            for h, d, blob in rows:
                # a wrong-sized blob is treated as a miss and overwritten
                if d == self.dim and isinstance(blob, bytes) and len(blob) == nbytes:
                    found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, hashes: Sequence[str], vecs: np.ndarray) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors (model, text_hash, dim, vec) VALUES (?, ?, ?, ?)",
                [
                    (self.model, h, self.dim, np.ascontiguousarray(v, np.float32).tobytes())
                    for h, v in zip(hashes, vecs, strict=True)
                ],
            )

    def get_or_embed(
        self,
        texts: Mapping[str, str],
        embed: Callable[[list[str]], np.ndarray],
        *,
        use_cache: bool = True,
        batch_size: int = 32,
        progress: Progress | None = None,
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Unit vectors for every key of ``texts`` (key → the text to embed).

        Cached keys are read (unless ``use_cache`` is False); the others are embedded
        ``batch_size`` at a time and committed to the cache batch by batch, so a crash
        loses at most the batch in flight. ``progress(done, total)`` counts embedded
        texts. Returns the vectors by key and the keys embedded now. Raises ValueError
        when the model returns a wrong shape or non-finite values.
        """
        vectors = self.get_many(list(texts)) if use_cache else {}
        missing = [k for k in texts if k not in vectors]
        total = len(missing)
        if progress:
            progress(0, total)
        step = max(1, batch_size)
        for i in range(0, total, step):
            part = missing[i : i + step]
            vecs = normalize(embed([texts[k] for k in part]), self.dim, len(part))
            self.put_many(part, vecs)  # committed now: a crash later loses at most this batch
            crashpoint("after-batch")
            vectors.update(zip(part, vecs, strict=True))
            if progress:
                progress(min(i + step, total), total)
        return vectors, missing

    def close(self) -> None:
        self._conn.close()


def normalize(vecs: np.ndarray, dim: int, n: int) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(vecs, dtype=np.float32))
    if v.shape != (n, dim):
        raise ValueError(f"embedder returned shape {v.shape}, expected {(n, dim)}")
    if not np.isfinite(v).all():
        raise ValueError("embedder returned non-finite values")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    # the protocol promises unit rows; renormalizing guards inner product = cosine
    return v / np.where(norms > 0, norms, 1.0)


def remove_damaged_caches(cache_path: Path) -> int:
    """Delete copies of the cache set aside as damaged: called once an update has
    published, so the damaged copy is no longer the only record of anything."""
    n = 0
    for p in cache_path.parent.glob(f"{cache_path.name}.damaged-*"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


class CachedVectors:
    """The ``VectorSource`` of an update: chunk and sentence vectors of one model from
    the cache at ``cache_path``, the model filling what the cache lacks.

    Opens the cache on first use; use it as a context manager (or ``close()``) so the
    connection is closed. Counts what it embedded, for the update report.
    """

    def __init__(
        self,
        cache_path: Path,
        embedder: Embedder,
        *,
        use_cache: bool = True,
        batch_size: int = 32,
        progress: Progress | None = None,
    ) -> None:
        self.cache_path, self.embedder = Path(cache_path), embedder
        self.use_cache, self.batch_size, self.progress = use_cache, batch_size, progress
        self._cache: VectorCache | None = None
        #: text hashes of the chunk texts embedded by this source
        self.embedded_chunks: set[str] = set()
        self.embedded_sentences = 0
        self.reused_sentences = 0

    def __enter__(self) -> CachedVectors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _fill(self, texts: Mapping[str, str]) -> tuple[dict[str, np.ndarray], list[str]]:
        if self._cache is None:
            self._cache = VectorCache(self.cache_path, self.embedder.name, self.embedder.dim)
        return self._cache.get_or_embed(
            texts,
            self.embedder.embed_passages,
            use_cache=self.use_cache,
            batch_size=self.batch_size,
            progress=self.progress,
        )

    def chunk_vectors(self, chunks: Sequence[Chunk]) -> np.ndarray:
        texts: dict[str, str] = {}
        for c in chunks:
            texts.setdefault(c.text_hash, c.embed_text)  # the same text twice is embedded once
        vectors, embedded = self._fill(texts)
        self.embedded_chunks.update(embedded)
        if not chunks:
            return np.zeros((0, self.embedder.dim), np.float32)
        return np.stack([vectors[c.text_hash] for c in chunks])

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> list[ChunkSentences]:
        per_chunk: list[tuple[tuple[tuple[int, int], ...], list[str]]] = []
        texts: dict[str, str] = {}
        for c in chunks:
            spans = tuple(sentence_spans(c.text))
            keys = []
            for a, b in spans:
                t = c.text[a:b].strip()
                k = sentence_key(t)
                keys.append(k)
                texts.setdefault(k, t)
            per_chunk.append((spans, keys))
        vectors, embedded = self._fill(texts)
        self.embedded_sentences += len(embedded)
        self.reused_sentences += len(texts) - len(embedded)
        dim = self.embedder.dim
        return [
            ChunkSentences(spans, np.stack([vectors[k] for k in keys]) if keys else np.zeros((0, dim), np.float32))
            for spans, keys in per_chunk
        ]
