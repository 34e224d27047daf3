"""The local store's read snapshot: one published generation, opened read-only.

Snapshots load the faiss index into memory and keep the generation's SQLite file
open (read-only, ``immutable``), so they keep answering after their directory is
deleted, without holding all chunk texts in RAM (100k chunks of text would cost
hundreds of MB as Python objects).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import faiss
import numpy as np

from ..types import Chunk
from .checksums import VerifiedFiles, check_files
from .errors import IndexCorrupt, ModelMismatch
from .faiss_index import read_faiss
from .generations import (
    DELTA_META_NAME,
    META_NAME,
    VECTORS_NAME,
    Manifest,
    Vanished,
    gen_dir,
    manifest_stats,
    read_manifest,
)
from .layers import LiveVectors, attach_delta, open_live_vectors
from .store import ArticleInfo

_SQL_VARS = 500  # well below SQLite's host-parameter limit

#: the order of a generation's rows (``seq`` of an unlayered one; layered ones number
#: delta/'s rows apart, so queries sort by what ``seq`` follows)
ROW_ORDER = "article_path, ordinal, chunk_id"
CHUNK_COLS = "chunk_id, article_path, ordinal, title, date, url, text, embed_text, text_hash"
ARTICLE_COLS = "path, title, date, url, source, content_hash, n_chunks, categories, tags"


def row_chunk(r: Sequence[Any]) -> Chunk:
    return Chunk(
        chunk_id=r[0],
        article_path=r[1],
        ordinal=r[2],
        title=r[3],
        date=r[4],
        url=r[5],
        text=r[6],
        embed_text=r[7],
        text_hash=r[8],
    )


def row_article(r: Sequence[Any]) -> ArticleInfo:
    return ArticleInfo(
        path=r[0],
        title=r[1],
        date=r[2],
        url=r[3],
        source=r[4],
        content_hash=r[5],
        n_chunks=r[6],
        categories=tuple(json.loads(r[7])),
        tags=tuple(json.loads(r[8])),
    )


class IndexSnapshot:
    """One published generation, read-only, safe to share between threads.

    Keeps working after a newer generation is published and this one's directory is
    deleted: the faiss index is in memory and the SQLite file stays open.
    """

    def __init__(
        self, gen_dir: Path, manifest: Manifest, vectors: LiveVectors, conn: sqlite3.Connection
    ) -> None:
        self.dir = gen_dir
        self.manifest = manifest
        self._vectors = vectors
        self._conn = conn
        # one sqlite connection shared by threads; sqlite3 objects are not thread-safe
        self._lock = threading.Lock()

    @property
    def generation(self) -> str:
        return self.manifest.generation

    @property
    def vectors(self) -> LiveVectors:
        return self._vectors

    def __len__(self) -> int:
        return self.manifest.chunks

    def __enter__(self) -> IndexSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def search(self, qvecs: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        """Top-``k`` chunks by inner product for each row of ``qvecs`` (n, dim) or (dim,)."""
        q = np.ascontiguousarray(np.asarray(qvecs, dtype=np.float32))
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.manifest.dim:
            raise ValueError(f"query vectors must be (n, {self.manifest.dim}), got {q.shape}")
        if k <= 0 or q.shape[0] == 0 or self._vectors.ntotal == 0:
            return [[] for _ in range(q.shape[0])]
        scores, ids = self._vectors.search(q, min(k, self._vectors.ntotal))
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        by_vid = self._chunks_by_vid(wanted)
        out: list[list[tuple[Chunk, float]]] = []
        for row_s, row_i in zip(scores, ids, strict=True):
            out.append(
                [
                    (by_vid[int(i)], float(s))
                    for s, i in zip(row_s, row_i, strict=True)
                    if int(i) in by_vid
                ]
            )
        return out

    def _chunks_by_vid(self, vids: Sequence[int]) -> dict[int, Chunk]:
        res: dict[int, Chunk] = {}
        for i in range(0, len(vids), _SQL_VARS):
            part = vids[i : i + _SQL_VARS]
            marks = ",".join("?" * len(part))
            for r in self._query(
                f"SELECT vid, {CHUNK_COLS} FROM chunks WHERE vid IN ({marks})", part
            ):
                res[r[0]] = row_chunk(r[1:])
        return res

    def chunks_for(self, article_path: str) -> list[Chunk]:
        rows = self._query(
            f"SELECT {CHUNK_COLS} FROM chunks WHERE article_path = ? ORDER BY ordinal", (article_path,)
        )
        return [row_chunk(r) for r in rows]

    def chunks_by_ids(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks with these ids (unknown ids are left out)."""
        res: dict[str, Chunk] = {}
        for i in range(0, len(chunk_ids), _SQL_VARS):
            part = list(chunk_ids[i : i + _SQL_VARS])
            marks = ",".join("?" * len(part))
            for r in self._query(f"SELECT {CHUNK_COLS} FROM chunks WHERE chunk_id IN ({marks})", part):
                c = row_chunk(r)
                res[c.chunk_id] = c
        return res

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in the generation's stable order (the order the artifacts hook saw)."""
        return [row_chunk(r) for r in self._query(f"SELECT {CHUNK_COLS} FROM chunks ORDER BY {ROW_ORDER}")]

    def articles(self) -> list[ArticleInfo]:
        return [
            row_article(r)
            for r in self._query(f"SELECT {ARTICLE_COLS} FROM articles ORDER BY path")
        ]

    def latest_articles(self, n: int) -> list[ArticleInfo]:
        """The ``n`` newest articles; dates are compared in UTC, undated ones last."""
        rows = self._query(
            f"SELECT {ARTICLE_COLS} FROM articles "
            "ORDER BY date_key IS NULL, date_key DESC, path LIMIT ?",
            (max(n, 0),),
        )
        return [row_article(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        return manifest_stats(self.manifest, self.dir).to_json()


    def consistency_problems(self) -> list[str]:
        """What ``verify`` finds wrong inside files whose checksums passed: SQLite's own
        check, chunks without an article, vector ids the manifest did not hand out, and
        faiss ids that differ from the chunks'."""
        m, meta = self.manifest, self.dir / META_NAME
        problems: list[str] = []
        try:
            for schema, path in (("main", meta), ("delta", self.dir / DELTA_META_NAME)):
                if schema == "delta" and m.delta is None:
                    continue
                ok = self._query(f"PRAGMA {schema}.quick_check")
                if ok != [("ok",)]:
                    problems.append(f"{path}: sqlite quick_check: {ok[0][0]}")
            vids = np.array([r[0] for r in self._query("SELECT vid FROM chunks")], dtype=np.int64)
            orphans = self._query(
                "SELECT count(*) FROM chunks c LEFT JOIN articles a ON a.path = c.article_path "
                "WHERE a.path IS NULL"
            )[0][0]
            if orphans:
                problems.append(f"{meta}: {orphans} chunks belong to no article")
            if vids.size and int(vids.max()) >= m.next_vector_id:
                problems.append(f"{meta}: vector id {int(vids.max())} ≥ next_vector_id")
        except sqlite3.DatabaseError as e:
            return [*problems, f"{meta}: unreadable: {e}"]
        if not np.array_equal(np.sort(self._vectors.ids()), np.sort(vids)):
            problems.append(f"{self.dir / VECTORS_NAME}: vector ids differ from the chunks in {META_NAME}")
        return problems

def check_model(index_dir: Path, m: Manifest, model: str | None, dim: int | None) -> None:
    if (model is not None and model != m.model) or (dim is not None and dim != m.dim):
        raise ModelMismatch(index_dir, m.model, m.dim, model, dim)


def open_index(
    index_dir: str | os.PathLike[str],
    *,
    model: str | None = None,
    dim: int | None = None,
    verify: bool = True,
    memo: VerifiedFiles | None = None,
    load_faiss: Callable[[Path], faiss.Index] = read_faiss,
) -> IndexSnapshot:
    """Load the published generation read-only.

    Sizes are always checked; with ``verify`` (the default) so are sha256 sums, before
    any file is parsed. Raises IndexMissing, IndexCorrupt or ModelMismatch.
    """
    index_dir = Path(index_dir)
    last: Manifest | None = None
    for _ in range(5):
        m = read_manifest(index_dir)
        check_model(index_dir, m, model, dim)
        if last is not None and m.generation == last.generation:
            # files still missing with the manifest unchanged: not a race with a writer
            break
        last = m
        try:
            return load_snapshot(gen_dir(index_dir, m.generation), m, verify, memo, load_faiss)
        except Vanished:
            continue
    assert last is not None
    raise IndexCorrupt(gen_dir(index_dir, last.generation), "generation files missing")


def load_snapshot(
    gen_dir: Path,
    m: Manifest,
    verify: bool,
    memo: VerifiedFiles | None = None,
    load_faiss: Callable[[Path], faiss.Index] = read_faiss,
) -> IndexSnapshot:
    if not gen_dir.is_dir():
        raise Vanished()
    meta_path = gen_dir / META_NAME
    # open sqlite first: the fd keeps the file alive even if a writer deletes the dir now
    conn = open_generation_meta(gen_dir, m)
    try:
        for problem in check_files(gen_dir, m, verify, vanished_ok=False, memo=memo):
            raise IndexCorrupt(problem[0], problem[1])
        vectors = open_live_vectors(gen_dir, m, conn, load_faiss)
        try:
            n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            n_articles = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise IndexCorrupt(meta_path, f"unreadable: {e}") from e
        if (n_chunks, n_articles) != (m.chunks, m.articles):
            raise IndexCorrupt(
                meta_path,
                f"{n_articles} articles/{n_chunks} chunks, manifest says {m.articles}/{m.chunks}",
            )
    except BaseException:
        conn.close()
        raise
    return IndexSnapshot(gen_dir, m, vectors, conn)


def open_generation_meta(gen_dir: Path, m: Manifest) -> sqlite3.Connection:
    """The generation's meta.sqlite, read-only; a layered one reads through delta/."""
    conn = open_meta_ro(gen_dir / META_NAME)
    if m.delta is not None:
        try:
            attach_delta(conn, gen_dir)
        except BaseException:
            conn.close()
            raise
    return conn


def open_meta_ro(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        if not path.parent.exists():
            raise Vanished()
        raise IndexCorrupt(path, "missing")
    # immutable=1: no locks, no journal lookups; a published generation never changes,
    # and without it sqlite would look for a -journal next to a deleted file
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.OperationalError as e:
        if not path.exists():
            raise Vanished() from e
        raise IndexCorrupt(path, f"cannot open: {e}") from e
    return conn


