"""The on-disk index: FAISS vectors + SQLite metadata, published by generations.

Modelled on txtai's embeddings (one index object, upsert/delete, one persisted
layout), but built for a long-running reader (the Telegram bot) that must never
see a half-written index, and for cheap incremental updates.

Layout of ``<index_dir>`` (default ``embeddings/``)::

    MANIFEST.json            the published pointer; replaced atomically
                             (write tmp, fsync, os.replace, fsync dir)
    gen-<id>/meta.sqlite     articles + chunks of this generation (immutable once published)
    gen-<id>/vectors.faiss   IndexIDMap2(IndexFlatIP), or IndexIVFFlat past APPROX_THRESHOLD;
                             ids are the chunks' stable int64 vector ids (chunks.vid)
    gen-<id>/...             extra artifacts written by the ``artifacts`` hook (e.g. BM25)
    .tmp-gen-<id>/           a generation being written; removed by the next writer if left over
    MANIFEST.json.<pid>.tmp  a manifest being written (likewise)
    vector_cache.sqlite      (model, text_hash) -> float32 blob (+ -wal/-shm); committed batch
                             by batch; never pruned, so re-added text is never re-embedded
    .lock                    filelock: one writer at a time

MANIFEST.json (``format`` 1)::

    {"format": 1, "generation": "000007-3fa2c1", "previous_generation": "000006-…",
     "model": "…", "dim": 384, "chunker_version": "…",
     "counts": {"articles": 1234, "chunks": 56789},
     "built_at": ISO (last from-scratch build), "updated_at": ISO (this generation),
     "faiss": {"kind": "flat" | "ivf", "nlist": 0, "nprobe": 0, "trained_size": 0},
     "next_vector_id": 56800,
     "files": {"meta.sqlite": {"sha256": "…", "size": 123}, "vectors.faiss": {…}, …}}

meta.sqlite tables: ``articles`` (path, title, date, date_key = UTC for sorting, url,
source, categories, tags, content_hash, n_chunks, sig = hash of the article and its
chunks), ``chunks`` (vid = faiss id, seq = stable order, chunk_id, article_path,
ordinal, title, date, url, text, embed_text, text_hash), ``meta`` (format, next_vector_id).

Updates take the whole corpus. An article is unchanged when its record and chunks are
identical (``sig``; content_hash alone would miss chunker changes). A chunk whose
(chunk_id, text_hash) is unchanged keeps its vid; a freed vid whose text reappears
(rename, move) is reused as is; other chunks get new vids and vectors from the cache
or the model. The previous faiss index is patched (remove_ids/add_with_ids) unless
``full``, the corpus first reaches APPROX_THRESHOLD (flat → IVF), or an IVF index has
grown 4× since its quantizer was trained.

Every file of a generation (artifacts included) is listed with its sha256 and size,
and checked before anything in it is trusted. Writers keep the current and the
previous generation; older ones are deleted. Snapshots load the faiss index into
memory and keep the generation's SQLite file open (read-only, ``immutable``), so they
keep answering after their directory is deleted, without holding all chunk texts
in RAM (100k chunks of text would cost hundreds of MB as Python objects).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import faiss
import numpy as np
from filelock import FileLock
from filelock import Timeout as LockTimeout

from ..embedding import Embedder
from ..types import Article, Chunk
from .errors import (
    BUILD_HINT,
    IndexBusy,
    IndexCorrupt,
    IndexMissing,
    IndexProblem,
    ModelMismatch,
    ShrinkRefused,
    StorageProblem,
)
from .store import ArticleInfo, UpdateReport

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: chunks at or above which a from-scratch build uses IVF instead of exact search
APPROX_THRESHOLD = 50_000
#: recall@10 (vs exact search) that nprobe is tuned for when an IVF index is trained
IVF_TARGET_RECALL = 0.99

MANIFEST_NAME = "MANIFEST.json"
LOCK_NAME = ".lock"
CACHE_NAME = "vector_cache.sqlite"
META_NAME = "meta.sqlite"
VECTORS_NAME = "vectors.faiss"
GEN_PREFIX = "gen-"
TMP_PREFIX = ".tmp-"

_GEN_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_SQL_VARS = 500  # well below SQLite's host-parameter limit


class _Vanished(Exception):
    """A generation file disappeared while opening (a writer garbage-collected it)."""


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class FaissInfo:
    kind: str  # "flat" | "ivf"
    nlist: int = 0
    nprobe: int = 0
    trained_size: int = 0  # vectors in the index when the IVF quantizer was trained


@dataclass(frozen=True)
class Manifest:
    generation: str
    previous_generation: str | None
    model: str
    dim: int
    chunker_version: str
    articles: int
    chunks: int
    built_at: str
    updated_at: str
    faiss: FaissInfo
    next_vector_id: int
    files: dict[str, FileEntry]
    format: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "generation": self.generation,
            "previous_generation": self.previous_generation,
            "model": self.model,
            "dim": self.dim,
            "chunker_version": self.chunker_version,
            "counts": {"articles": self.articles, "chunks": self.chunks},
            "built_at": self.built_at,
            "updated_at": self.updated_at,
            "faiss": asdict(self.faiss),
            "next_vector_id": self.next_vector_id,
            "files": {k: asdict(v) for k, v in sorted(self.files.items())},
        }

    @classmethod
    def from_json(cls, raw: Any) -> Manifest:
        """Parse and validate; raises ValueError/KeyError/TypeError on anything off."""
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        fmt = raw["format"]
        if fmt != FORMAT_VERSION:
            raise ValueError(f"format {fmt!r}, this qa-bot reads format {FORMAT_VERSION}")
        gen = _typed(raw["generation"], str)
        if not _GEN_ID_RE.match(gen):
            raise ValueError(f"bad generation id {gen!r}")
        prev = raw.get("previous_generation")
        if prev is not None and not (isinstance(prev, str) and _GEN_ID_RE.match(prev)):
            raise ValueError(f"bad previous generation id {prev!r}")
        fi = _typed(raw["faiss"], dict)
        kind = _typed(fi["kind"], str)
        if kind not in ("flat", "ivf"):
            raise ValueError(f"unknown faiss kind {kind!r}")
        files: dict[str, FileEntry] = {}
        for name, ent in _typed(raw["files"], dict).items():
            if not _safe_relpath(name):
                raise ValueError(f"unsafe file name {name!r}")
            ent = _typed(ent, dict)
            sha = _typed(ent["sha256"], str)
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ValueError(f"bad sha256 for {name}")
            files[name] = FileEntry(sha, _nonneg(ent["size"]))
        for required in (META_NAME, VECTORS_NAME):
            if required not in files:
                raise ValueError(f"{required} not listed")
        counts = _typed(raw["counts"], dict)
        dim = _nonneg(raw["dim"])
        if dim == 0:
            raise ValueError("dim is 0")
        return cls(
            format=fmt,
            generation=gen,
            previous_generation=prev,
            model=_typed(raw["model"], str),
            dim=dim,
            chunker_version=_typed(raw.get("chunker_version", ""), str),
            articles=_nonneg(counts["articles"]),
            chunks=_nonneg(counts["chunks"]),
            built_at=_typed(raw["built_at"], str),
            updated_at=_typed(raw["updated_at"], str),
            faiss=FaissInfo(
                kind=kind,
                nlist=_nonneg(fi.get("nlist", 0)),
                nprobe=_nonneg(fi.get("nprobe", 0)),
                trained_size=_nonneg(fi.get("trained_size", 0)),
            ),
            next_vector_id=_nonneg(raw["next_vector_id"]),
            files=files,
        )


def _typed(v: Any, t: type) -> Any:
    if not isinstance(v, t):
        raise TypeError(f"expected {t.__name__}, got {type(v).__name__}")
    return v


def _nonneg(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"expected a non-negative integer, got {v!r}")
    return v


def _safe_relpath(name: str) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _read_manifest(index_dir: Path) -> Manifest:
    path = index_dir / MANIFEST_NAME
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise IndexMissing(index_dir) from None
    except OSError as e:
        raise IndexCorrupt(path, f"unreadable: {e.strerror or e}") from e
    if len(data) > _MAX_MANIFEST_BYTES:
        raise IndexCorrupt(path, "implausibly large")
    try:
        return Manifest.from_json(json.loads(data.decode("utf-8")))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        reason = f"missing field {e}" if isinstance(e, KeyError) else str(e).splitlines()[0][:200]
        raise IndexCorrupt(path, f"bad manifest: {reason}") from e


def published_generation(index_dir: str | os.PathLike[str]) -> str | None:
    """The published generation id, or None if there is no index.

    Cheap (reads the small manifest); readers call it per question to decide whether
    to reload. Raises :class:`IndexCorrupt` if the manifest is unreadable, so a reader
    can keep serving its current snapshot and report the problem.
    """
    try:
        return _read_manifest(Path(index_dir)).generation
    except IndexMissing:
        return None


# --------------------------------------------------------------------------- snapshot


_CHUNK_COLS = "chunk_id, article_path, ordinal, title, date, url, text, embed_text, text_hash"
_ARTICLE_COLS = "path, title, date, url, source, content_hash, n_chunks, categories, tags"


def _row_chunk(r: Sequence[Any]) -> Chunk:
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


def _row_article(r: Sequence[Any]) -> ArticleInfo:
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
        self, gen_dir: Path, manifest: Manifest, index: faiss.Index, conn: sqlite3.Connection
    ) -> None:
        self.dir = gen_dir
        self.manifest = manifest
        self._index = index
        self._conn = conn
        # one sqlite connection shared by threads; sqlite3 objects are not thread-safe
        self._lock = threading.Lock()

    @property
    def generation(self) -> str:
        return self.manifest.generation

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
        if k <= 0 or q.shape[0] == 0 or self._index.ntotal == 0:
            return [[] for _ in range(q.shape[0])]
        scores, ids = self._index.search(q, min(k, int(self._index.ntotal)))
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
                f"SELECT vid, {_CHUNK_COLS} FROM chunks WHERE vid IN ({marks})", part
            ):
                res[r[0]] = _row_chunk(r[1:])
        return res

    def chunks_for(self, article_path: str) -> list[Chunk]:
        rows = self._query(
            f"SELECT {_CHUNK_COLS} FROM chunks WHERE article_path = ? ORDER BY seq", (article_path,)
        )
        return [_row_chunk(r) for r in rows]

    def chunks_by_ids(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks with these ids (unknown ids are left out)."""
        res: dict[str, Chunk] = {}
        for i in range(0, len(chunk_ids), _SQL_VARS):
            part = list(chunk_ids[i : i + _SQL_VARS])
            marks = ",".join("?" * len(part))
            for r in self._query(f"SELECT {_CHUNK_COLS} FROM chunks WHERE chunk_id IN ({marks})", part):
                c = _row_chunk(r)
                res[c.chunk_id] = c
        return res

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in the generation's stable order (the order the artifacts hook saw)."""
        return [
            _row_chunk(r) for r in self._query(f"SELECT {_CHUNK_COLS} FROM chunks ORDER BY seq")
        ]

    def articles(self) -> list[ArticleInfo]:
        return [
            _row_article(r)
            for r in self._query(f"SELECT {_ARTICLE_COLS} FROM articles ORDER BY path")
        ]

    def latest_articles(self, n: int) -> list[ArticleInfo]:
        """The ``n`` newest articles; dates are compared in UTC, undated ones last."""
        rows = self._query(
            f"SELECT {_ARTICLE_COLS} FROM articles "
            "ORDER BY date_key IS NULL, date_key DESC, path LIMIT ?",
            (max(n, 0),),
        )
        return [_row_article(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        return _stats_from_manifest(self.manifest, self.dir)


def _check_model(index_dir: Path, m: Manifest, model: str | None, dim: int | None) -> None:
    if (model is not None and model != m.model) or (dim is not None and dim != m.dim):
        raise ModelMismatch(index_dir, m.model, m.dim, model, dim)


def open_index(
    index_dir: str | os.PathLike[str],
    *,
    model: str | None = None,
    dim: int | None = None,
    verify: bool = True,
) -> IndexSnapshot:
    """Load the published generation read-only.

    Sizes are always checked; with ``verify`` (the default) so are sha256 sums, before
    any file is parsed. Raises IndexMissing, IndexCorrupt or ModelMismatch.
    """
    index_dir = Path(index_dir)
    last: Manifest | None = None
    for _ in range(5):
        m = _read_manifest(index_dir)
        _check_model(index_dir, m, model, dim)
        if last is not None and m.generation == last.generation:
            # files still missing with the manifest unchanged: not a race with a writer
            break
        last = m
        try:
            return _load_snapshot(index_dir / f"{GEN_PREFIX}{m.generation}", m, verify)
        except _Vanished:
            continue
    assert last is not None
    raise IndexCorrupt(index_dir / f"{GEN_PREFIX}{last.generation}", "generation files missing")


def _load_snapshot(gen_dir: Path, m: Manifest, verify: bool) -> IndexSnapshot:
    if not gen_dir.is_dir():
        raise _Vanished()
    meta_path = gen_dir / META_NAME
    # open sqlite first: the fd keeps the file alive even if a writer deletes the dir now
    conn = _open_meta_ro(meta_path)
    try:
        for problem in _check_files(gen_dir, m, verify, vanished_ok=False):
            raise IndexCorrupt(problem[0], problem[1])
        vec_path = gen_dir / VECTORS_NAME
        index = _read_faiss(vec_path)
        _check_faiss(vec_path, index, m)
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
    return IndexSnapshot(gen_dir, m, index, conn)


def _open_meta_ro(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        if not path.parent.exists():
            raise _Vanished()
        raise IndexCorrupt(path, "missing")
    # immutable=1: no locks, no journal lookups; a published generation never changes,
    # and without it sqlite would look for a -journal next to a deleted file
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.OperationalError as e:
        if not path.exists():
            raise _Vanished() from e
        raise IndexCorrupt(path, f"cannot open: {e}") from e
    return conn


def _read_faiss(path: Path) -> faiss.Index:
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        if not path.exists():
            raise _Vanished() from e
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "read error"
        raise IndexCorrupt(path, f"unreadable faiss index: {msg[-160:]}") from e


def _check_faiss(path: Path, index: faiss.Index, m: Manifest) -> None:
    if index.d != m.dim:
        raise IndexCorrupt(path, f"dimension {index.d}, manifest says {m.dim}")
    if index.ntotal != m.chunks:
        raise IndexCorrupt(path, f"{index.ntotal} vectors, manifest says {m.chunks} chunks")
    expected = "ivf" if m.faiss.kind == "ivf" else "flat"
    if _faiss_kind(index) != expected:
        raise IndexCorrupt(path, f"faiss index is not of kind {expected}")
    if expected == "ivf" and m.faiss.nprobe:
        index.nprobe = m.faiss.nprobe


def _faiss_kind(index: faiss.Index) -> str | None:
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    if isinstance(index, faiss.IndexIDMap2):
        return "flat"
    return None


def _faiss_ids(index: faiss.Index) -> np.ndarray:
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    inv = index.invlists
    parts = []
    for lst in range(index.nlist):
        size = inv.list_size(lst)
        if size:
            parts.append(np.array(faiss.rev_swig_ptr(inv.get_ids(lst), size), dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _check_files(
    gen_dir: Path, m: Manifest, verify: bool, *, vanished_ok: bool = True
) -> Iterator[tuple[Path, str]]:
    """Yield (file, problem) for listed files whose size or sha256 differs."""
    for name, ent in sorted(m.files.items()):
        p = gen_dir / name
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            if not vanished_ok and not gen_dir.exists():
                raise _Vanished() from None
            yield p, "missing"
            continue
        if size != ent.size:
            yield (
                p,
                f"size {size} bytes, manifest says {ent.size}"
                + (" (truncated)" if size < ent.size else ""),
            )
            continue
        if verify:
            try:
                digest = _sha256(p)
            except FileNotFoundError:
                if not vanished_ok:
                    raise _Vanished() from None
                yield p, "missing"
                continue
            except OSError as e:
                yield p, f"unreadable: {e.strerror or e}"
                continue
            if digest != ent.sha256:
                yield p, "checksum mismatch (file altered)"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- verify / stats


def verify_index(index_dir: str | os.PathLike[str]) -> list[str]:
    """Problems with the published index, one line each; empty means OK."""
    index_dir = Path(index_dir)
    try:
        m = _read_manifest(index_dir)
    except IndexProblem as e:
        return [str(e)]
    gen_dir = index_dir / f"{GEN_PREFIX}{m.generation}"
    if not gen_dir.is_dir():
        return [f"generation directory {gen_dir} is missing: {BUILD_HINT}"]
    problems = [f"{p}: {why}" for p, why in _check_files(gen_dir, m, verify=True)]
    listed = set(m.files)
    for p in sorted(gen_dir.rglob("*")):
        if p.is_file() and p.relative_to(gen_dir).as_posix() not in listed:
            problems.append(f"{p}: not listed in the manifest")
    if problems:
        return problems  # don't parse files that failed their checksum
    try:
        snap = _load_snapshot(gen_dir, m, verify=False)
    except (IndexProblem, _Vanished) as e:
        return [str(e)]
    with snap:
        meta = gen_dir / META_NAME
        try:
            ok = snap._query("PRAGMA quick_check")
            if ok != [("ok",)]:
                problems.append(f"{meta}: sqlite quick_check: {ok[0][0]}")
            vids = np.array([r[0] for r in snap._query("SELECT vid FROM chunks")], dtype=np.int64)
            orphans = snap._query(
                "SELECT count(*) FROM chunks c LEFT JOIN articles a ON a.path = c.article_path "
                "WHERE a.path IS NULL"
            )[0][0]
            if orphans:
                problems.append(f"{meta}: {orphans} chunks belong to no article")
            if vids.size and int(vids.max()) >= m.next_vector_id:
                problems.append(f"{meta}: vector id {int(vids.max())} ≥ next_vector_id")
        except sqlite3.DatabaseError as e:
            return [*problems, f"{meta}: unreadable: {e}"]
        fids = _faiss_ids(snap._index)
        if not np.array_equal(np.sort(fids), np.sort(vids)):
            problems.append(
                f"{gen_dir / VECTORS_NAME}: vector ids differ from the chunks in {META_NAME}"
            )
    return problems


def _dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return total


def _stats_from_manifest(m: Manifest, gen_dir: Path) -> dict[str, Any]:
    return {
        "generation": m.generation,
        "articles": m.articles,
        "chunks": m.chunks,
        "model": m.model,
        "dim": m.dim,
        "chunker_version": m.chunker_version,
        "faiss_kind": m.faiss.kind,
        "nlist": m.faiss.nlist,
        "nprobe": m.faiss.nprobe,
        "size_bytes": sum(e.size for e in m.files.values()),
        "built_at": m.built_at,
        "last_update": m.updated_at,
        "dir": str(gen_dir),
    }


def index_stats(index_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts, model, sizes and dates of the published index (IndexMissing/IndexCorrupt)."""
    index_dir = Path(index_dir)
    m = _read_manifest(index_dir)
    stats = _stats_from_manifest(m, index_dir / f"{GEN_PREFIX}{m.generation}")
    # everything under index_dir: previous generation and vector cache included
    stats["total_size_bytes"] = _dir_size(index_dir)
    return stats


# --------------------------------------------------------------------------- vector cache


def _sqlite_reason(e: sqlite3.Error) -> str:
    return f"{e} ({getattr(e, 'sqlite_errorname', 'SQLITE_ERROR')})"


def _is_corrupt(path: Path, e: sqlite3.DatabaseError) -> bool:
    """True only for a real integrity failure: SQLite says the file is no database or
    malformed, and ``PRAGMA integrity_check`` (when it can run) agrees."""
    if getattr(e, "sqlite_errorname", "") not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError as again:
        return getattr(again, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def remove_damaged_caches(index_dir: Path) -> int:
    """Delete vector caches set aside as damaged: called once an update has published,
    so the damaged copy is no longer the only record of anything."""
    n = 0
    for p in Path(index_dir).glob(f"{CACHE_NAME}.damaged-*"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


class _VectorCache:
    """(model, text_hash) → float32 vector, committed batch by batch.

    Only the writer (under the lock) opens it. WAL + synchronous=NORMAL survives a
    killed process; a power cut may lose the last batches, which are re-embedded.
    """

    def __init__(self, path: Path, model: str, dim: int) -> None:
        self.path, self.model, self.dim = path, model, dim
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as e:
            if not _is_corrupt(path, e):
                # disk full, I/O error, read-only: the file is fine, the disk is not
                raise StorageProblem(path, _sqlite_reason(e)) from None
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

    def close(self) -> None:
        self._conn.close()


# --------------------------------------------------------------------------- update


@dataclass
class _Previous:
    manifest: Manifest
    gen_dir: Path
    sigs: dict[str, str]  # article path → signature
    vids: dict[str, tuple[int, str]]  # chunk_id → (vid, text_hash)
    text_hash_of_vid: dict[int, str]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _date_key(date: str | None) -> str | None:
    """Sortable form of an ISO date: UTC when the offset is known (mixed offsets sort right)."""
    if not date:
        return None
    s = date.strip()
    try:
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError:
        return s
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="seconds")


def _article_sig(a: Article, chunks: Sequence[Chunk]) -> str:
    # content_hash alone would miss chunker or parser changes that leave the file unchanged
    payload = json.dumps(
        [asdict(a), [asdict(c) for c in chunks]], ensure_ascii=False, sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _validate_corpus(
    articles: Sequence[Article], chunks: Sequence[Chunk]
) -> tuple[dict[str, Article], dict[str, list[Chunk]], list[Chunk]]:
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
    ordered = [c for p in sorted(per_article) for c in per_article[p]]
    return by_path, per_article, ordered


def _load_previous(
    index_dir: Path, embedder: Embedder, full: bool, notes: list[str]
) -> _Previous | None:
    try:
        m = _read_manifest(index_dir)
    except IndexMissing:
        return None
    except IndexCorrupt as e:
        notes.append(f"previous index unusable, building from scratch: {e}")
        return None
    if (m.model, m.dim) != (embedder.name, embedder.dim):
        if not full:
            raise ModelMismatch(index_dir, m.model, m.dim, embedder.name, embedder.dim)
        notes.append(f"model changed from {m.model} (dim {m.dim}): full rebuild")
    gen_dir = index_dir / f"{GEN_PREFIX}{m.generation}"
    problems = list(_check_files(gen_dir, m, verify=True))
    if problems:
        p, why = problems[0]
        notes.append(f"previous index unusable, building from scratch: {p}: {why}")
        return None
    try:
        conn = _open_meta_ro(gen_dir / META_NAME)
    except (IndexCorrupt, _Vanished) as e:
        notes.append(f"previous index unusable, building from scratch: {e}")
        return None
    try:
        sigs = dict(conn.execute("SELECT path, sig FROM articles"))
        vids: dict[str, tuple[int, str]] = {}
        by_vid: dict[int, str] = {}
        for cid, vid, th in conn.execute("SELECT chunk_id, vid, text_hash FROM chunks"):
            vids[cid] = (vid, th)
            by_vid[vid] = th
    except sqlite3.DatabaseError as e:
        notes.append(f"previous index unusable, building from scratch: {gen_dir / META_NAME}: {e}")
        return None
    finally:
        conn.close()
    return _Previous(m, gen_dir, sigs, vids, by_vid)


def _gc(index_dir: Path, keep: set[str] | None) -> None:
    """Remove leftovers of crashed writers and, unless ``keep`` is None, generations not in it.

    Called with the lock held, so no temp dir belongs to a live writer.
    """
    for p in index_dir.iterdir():
        name = p.name
        leftover = name.startswith(TMP_PREFIX) or (
            name.startswith(MANIFEST_NAME + ".") and name.endswith(".tmp")
        )
        stale_gen = (
            keep is not None and name.startswith(GEN_PREFIX) and name[len(GEN_PREFIX) :] not in keep
        )
        if not (leftover or stale_gen):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError as e:  # e.g. Windows with a reader holding a file: retry next time
            log.warning("could not remove %s: %s", p, e)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform/filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _write_manifest(index_dir: Path, m: Manifest) -> None:
    tmp = index_dir / f"{MANIFEST_NAME}.{os.getpid()}.tmp"
    data = json.dumps(m.to_json(), ensure_ascii=False, indent=2).encode("utf-8")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / MANIFEST_NAME)
    _fsync_dir(index_dir)


def _write_meta(
    path: Path,
    articles: dict[str, Article],
    per_article: dict[str, list[Chunk]],
    sigs: dict[str, str],
    ordered: list[Chunk],
    vid_of: dict[str, int],
    next_vid: int,
) -> None:
    conn = sqlite3.connect(path)
    try:
        # the whole dir is discarded if we die, and fsynced before publishing: no journal needed
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE articles (
                path TEXT PRIMARY KEY, title TEXT NOT NULL, date TEXT, date_key TEXT,
                url TEXT, source TEXT, categories TEXT NOT NULL, tags TEXT NOT NULL,
                content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, sig TEXT NOT NULL
            );
            CREATE TABLE chunks (
                vid INTEGER PRIMARY KEY, seq INTEGER NOT NULL UNIQUE,
                chunk_id TEXT NOT NULL UNIQUE, article_path TEXT NOT NULL,
                ordinal INTEGER NOT NULL, title TEXT NOT NULL, date TEXT, url TEXT,
                text TEXT NOT NULL, embed_text TEXT NOT NULL, text_hash TEXT NOT NULL
            );
            """
        )
        with conn:
            conn.execute(
                "INSERT INTO meta VALUES ('format', ?), ('next_vector_id', ?)",
                (str(FORMAT_VERSION), str(next_vid)),
            )
            conn.executemany(
                "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        a.path,
                        a.title,
                        a.date,
                        _date_key(a.date),
                        a.url,
                        a.source,
                        json.dumps(list(a.categories), ensure_ascii=False),
                        json.dumps(list(a.tags), ensure_ascii=False),
                        a.content_hash,
                        len(per_article[p]),
                        sigs[p],
                    )
                    for p, a in sorted(articles.items())
                ],
            )
            conn.executemany(
                "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        vid_of[c.chunk_id],
                        seq,
                        c.chunk_id,
                        c.article_path,
                        c.ordinal,
                        c.title,
                        c.date,
                        c.url,
                        c.text,
                        c.embed_text,
                        c.text_hash,
                    )
                    for seq, c in enumerate(ordered)
                ],
            )
        # built after the bulk insert: faster than maintaining them row by row
        conn.execute("CREATE INDEX chunks_article ON chunks (article_path, ordinal)")
        conn.execute("CREATE INDEX articles_date ON articles (date_key)")
        conn.commit()
    finally:
        conn.close()


def _normalize(vecs: np.ndarray, dim: int, n: int) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(vecs, dtype=np.float32))
    if v.shape != (n, dim):
        raise ValueError(f"embedder returned shape {v.shape}, expected {(n, dim)}")
    if not np.isfinite(v).all():
        raise ValueError("embedder returned non-finite values")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    # the protocol promises unit rows; renormalizing guards inner product = cosine
    return v / np.where(norms > 0, norms, 1.0)


def _nlist_for(n: int) -> int:
    # ≈ 4·sqrt(n), but k-means wants ≥ 39 points per centroid
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def _tune_nprobe(index: faiss.IndexIVF, x: np.ndarray, target: float = IVF_TARGET_RECALL) -> int:
    """Smallest nprobe whose recall@10 vs exact search reaches ``target`` on perturbed data points.

    Queries are data points plus noise rather than the points themselves, so the
    trivial self-match does not inflate the estimate.
    """
    n, d = x.shape
    rng = np.random.default_rng(1)
    q = x[rng.choice(n, size=min(256, n), replace=False)]
    q = q + rng.normal(scale=0.5 / math.sqrt(d), size=q.shape).astype(np.float32)
    q = _normalize(q, d, q.shape[0])
    k = min(10, n)
    _, truth = faiss.knn(q, x, k, metric=faiss.METRIC_INNER_PRODUCT)  # no copy of x
    nprobe = 1
    while True:
        index.nprobe = nprobe
        _, got = index.search(q, k)
        hits = sum(len(set(t) & set(g)) for t, g in zip(truth.tolist(), got.tolist(), strict=True))
        if hits / truth.size >= target or nprobe >= index.nlist:
            return nprobe
        nprobe = min(nprobe * 2, index.nlist)


def _build_faiss(
    x: np.ndarray, ids: np.ndarray, dim: int, approx_threshold: int
) -> tuple[faiss.Index, FaissInfo]:
    n = x.shape[0]
    if n < max(approx_threshold, 1) or _nlist_for(n) < 2:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if n:
            index.add_with_ids(x, ids)
        return index, FaissInfo("flat")
    nlist = _nlist_for(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.spherical = True  # centroids on the unit sphere suit inner product on unit vectors
    rng = np.random.default_rng(0)
    sample = x if n <= 64 * nlist else x[rng.choice(n, size=64 * nlist, replace=False)]
    index.train(sample)
    index.add_with_ids(x, ids)
    # margin: real queries ("query: …") sit farther from passages than the tuning probes,
    # and at this size extra lists cost microseconds
    nprobe = min(nlist, max(2 * _tune_nprobe(index, x), 16))
    index.nprobe = nprobe
    return index, FaissInfo("ivf", nlist=nlist, nprobe=nprobe, trained_size=n)


def _new_generation_id(prev: Manifest | None) -> str:
    seq = 1
    if prev is not None:
        head = prev.generation.split("-", 1)[0]
        seq = int(head) + 1 if head.isdigit() else 1
    # random suffix: an unpublished dir from a crashed run can never collide
    return f"{seq:06d}-{secrets.token_hex(3)}"


def _crashpoint(name: str) -> None:
    """Fault injection for the crash-safety tests: ``QA_BOT_CRASH_AT=<name>`` makes the
    process kill itself (SIGKILL, like ``kill -9``) at that point of an update."""
    if os.environ.get("QA_BOT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _check_shrink(prev: _Previous | None, after: int, allow: bool, max_fraction: float) -> None:
    """Refuse to publish a collapse: all or most articles gone at once is almost always
    a broken pull or parser, and publishing it would remove their answers for everyone."""
    before = prev.manifest.articles if prev else 0
    if allow or before == 0 or after >= before:
        return
    if (before - after) / before > max_fraction:
        raise ShrinkRefused(before, after, max_fraction)


def update_index(
    index_dir: str | os.PathLike[str],
    articles: Sequence[Article],
    chunks: Sequence[Chunk],
    embedder: Embedder,
    *,
    full: bool = False,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    artifacts: Callable[[list[Chunk], Path, Path | None], None] | None = None,
    lock_timeout: float = 600,
    batch_size: int = 32,
    approx_threshold: int = APPROX_THRESHOLD,
    chunker_version: str = "",
    allow_shrink: bool = False,
    max_shrink_fraction: float = 0.5,
) -> UpdateReport:
    """Make the given corpus the published index, embedding as little as possible.

    ``articles``/``chunks`` are the whole corpus (not a delta). Chunks whose text hash
    is in the vector cache for this model are not embedded; unchanged chunks keep
    their vector ids, so the previous faiss index is patched rather than rebuilt.
    ``full`` rebuilds the faiss index from scratch (and allows a model change);
    ``use_cache=False`` also re-embeds every needed text. ``progress(done, total)``
    is called per embedded batch. ``artifacts(chunks_in_order, new_gen_dir,
    previous_gen_dir)`` may write extra files into the new generation before it is
    published; they are checksummed with the rest.
    An update that would leave more than ``max_shrink_fraction`` fewer articles than the
    published index raises ShrinkRefused before anything is embedded, unless
    ``allow_shrink``.
    Raises IndexBusy, ModelMismatch, ShrinkRefused, ValueError (bad corpus or embedder output).
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    lock_path = index_dir / LOCK_NAME
    lock = FileLock(str(lock_path), timeout=lock_timeout)
    try:
        lock.acquire()
    except LockTimeout:
        raise IndexBusy(lock_path, lock_timeout) from None
    try:
        return _update_locked(
            index_dir,
            articles,
            chunks,
            embedder,
            full=full,
            use_cache=use_cache,
            progress=progress,
            artifacts=artifacts,
            batch_size=max(1, batch_size),
            approx_threshold=approx_threshold,
            chunker_version=chunker_version,
            shrink_guard=(allow_shrink, max_shrink_fraction),
        )
    finally:
        lock.release()


def _update_locked(
    index_dir: Path,
    articles: Sequence[Article],
    chunks: Sequence[Chunk],
    embedder: Embedder,
    *,
    full: bool,
    use_cache: bool,
    progress: Callable[[int, int], None] | None,
    artifacts: Callable[[list[Chunk], Path, Path | None], None] | None,
    batch_size: int,
    approx_threshold: int,
    chunker_version: str,
    shrink_guard: tuple[bool, float],
) -> UpdateReport:
    t0 = time.monotonic()
    report = UpdateReport()
    by_path, per_article, ordered = _validate_corpus(articles, chunks)
    report.total_articles, report.total_chunks = len(by_path), len(ordered)

    prev = _load_previous(index_dir, embedder, full, report.notes)
    # leftovers of crashed writers (temp dirs, generations renamed but never published) go
    # first; without a readable manifest we cannot tell which generations matter, keep them
    _gc(
        index_dir,
        {prev.manifest.generation, prev.manifest.previous_generation or ""} if prev else None,
    )

    sigs = {p: _article_sig(a, per_article[p]) for p, a in by_path.items()}
    old_sigs = prev.sigs if prev else {}
    report.added = sum(p not in old_sigs for p in sigs)
    report.removed = sum(p not in sigs for p in old_sigs)
    report.changed = sum(p in old_sigs and old_sigs[p] != s for p, s in sigs.items())
    report.unchanged = sum(old_sigs.get(p) == s for p, s in sigs.items())

    # a new chunker or artifact version must publish a new generation even when no post changed
    same_version = prev is not None and prev.manifest.chunker_version == chunker_version
    if prev is not None and not full and same_version and not (
        report.added or report.changed or report.removed
    ):
        report.generation = prev.manifest.generation
        report.faiss_kind = prev.manifest.faiss.kind
        report.reused_chunks = report.total_chunks
        report.seconds = time.monotonic() - t0
        return report
    _check_shrink(prev, len(by_path), *shrink_guard)

    # --- vector ids: keep them for unchanged (chunk_id, text) pairs; a freed id whose
    # text reappears elsewhere (rename, move) is reused, since its vector is identical
    old_vids = prev.vids if prev else {}
    next_vid = prev.manifest.next_vector_id if prev else 0
    vid_of: dict[str, int] = {}
    for c in ordered:
        old = old_vids.get(c.chunk_id)
        if old is not None and old[1] == c.text_hash:
            vid_of[c.chunk_id] = old[0]
    kept = set(vid_of.values())
    pool: dict[str, list[int]] = {}
    for vid, th in sorted((prev.text_hash_of_vid if prev else {}).items()):
        if vid not in kept:
            pool.setdefault(th, []).append(vid)
    to_add: list[tuple[int, Chunk]] = []
    for c in ordered:
        if c.chunk_id in vid_of:
            continue
        free = pool.get(c.text_hash)
        if free:
            vid_of[c.chunk_id] = free.pop(0)
        else:
            vid_of[c.chunk_id] = next_vid
            to_add.append((next_vid, c))
            next_vid += 1
    to_remove = np.array(sorted(v for lst in pool.values() for v in lst), dtype=np.int64)

    # --- decide between patching the previous faiss index and building a new one
    n = len(ordered)
    pm = prev.manifest if prev else None
    rebuild_reason: str | None = None
    if full or pm is None:
        rebuild_reason = "full build"
    elif pm.faiss.kind == "flat" and n >= approx_threshold and _nlist_for(n) >= 2:
        rebuild_reason = f"{n} chunks ≥ {approx_threshold}: switching to IVF"
    elif pm.faiss.kind == "ivf" and n >= 4 * max(pm.faiss.trained_size, 1):
        rebuild_reason = (
            f"grown to {n} chunks since IVF training on {pm.faiss.trained_size}: retraining"
        )
    base_index: faiss.Index | None = None
    if rebuild_reason is None:
        assert prev is not None
        vec_path = prev.gen_dir / VECTORS_NAME
        try:
            base_index = _read_faiss(vec_path)
            _check_faiss(vec_path, base_index, prev.manifest)
        except (IndexCorrupt, _Vanished) as e:
            base_index = None
            rebuild_reason = f"previous faiss index unusable ({e})"
    if rebuild_reason is not None:
        report.rebuilt = True
        if rebuild_reason != "full build":
            report.notes.append(rebuild_reason)

    # --- vectors: from the cache, embedding only what it lacks
    need_chunks = ordered if base_index is None else [c for _, c in to_add]
    need: dict[str, str] = {}  # text_hash → embed_text, first occurrence wins
    for c in need_chunks:
        need.setdefault(c.text_hash, c.embed_text)
    dim = embedder.dim
    cache = _VectorCache(index_dir / CACHE_NAME, embedder.name, dim)
    try:
        vectors = cache.get_many(list(need)) if use_cache else {}
        missing = [h for h in need if h not in vectors]
        total = len(missing)
        if progress:
            progress(0, total)
        for i in range(0, total, batch_size):
            part = missing[i : i + batch_size]
            vecs = _normalize(embedder.embed_passages([need[h] for h in part]), dim, len(part))
            cache.put_many(part, vecs)  # committed now: a crash later loses at most this batch
            _crashpoint("after-batch")
            vectors.update(zip(part, vecs, strict=True))
            report.embedded_chunks += len(part)
            if progress:
                progress(min(i + batch_size, total), total)
    finally:
        cache.close()
    embedded = set(missing)
    report.reused_chunks = sum(c.text_hash not in embedded for c in ordered)
    del missing, need

    if base_index is None:
        x = (
            np.stack([vectors[c.text_hash] for c in ordered])
            if ordered
            else np.zeros((0, dim), np.float32)
        )
        ids = np.array([vid_of[c.chunk_id] for c in ordered], dtype=np.int64)
        index, finfo = _build_faiss(x, ids, dim, approx_threshold)
        del x  # the index holds its own copy; keep the writer's peak memory down
    else:
        assert pm is not None
        index, finfo = base_index, pm.faiss
        if to_remove.size:
            index.remove_ids(to_remove)
        if to_add:
            x = np.stack([vectors[c.text_hash] for _, c in to_add])
            index.add_with_ids(x, np.array([v for v, _ in to_add], dtype=np.int64))
            del x
    del vectors
    if index.ntotal != n:
        raise RuntimeError(f"internal error: faiss holds {index.ntotal} vectors for {n} chunks")
    report.faiss_kind = finfo.kind

    # --- write the generation under a temp name, then publish
    gen_id = _new_generation_id(pm)
    tmp_dir = index_dir / f"{TMP_PREFIX}{GEN_PREFIX}{gen_id}"
    final_dir = index_dir / f"{GEN_PREFIX}{gen_id}"
    tmp_dir.mkdir()
    try:
        _write_meta(tmp_dir / META_NAME, by_path, per_article, sigs, ordered, vid_of, next_vid)
        faiss.write_index(index, str(tmp_dir / VECTORS_NAME))
        if artifacts is not None:
            artifacts(list(ordered), tmp_dir, prev.gen_dir if prev else None)
        _fsync_tree(tmp_dir)
        _crashpoint("before-rename")
        files = {
            p.relative_to(tmp_dir).as_posix(): FileEntry(_sha256(p), p.stat().st_size)
            for p in sorted(tmp_dir.rglob("*"))
            if p.is_file()
        }
        os.replace(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    _fsync_dir(index_dir)
    _crashpoint("before-manifest")
    now = _now()
    manifest = Manifest(
        generation=gen_id,
        previous_generation=pm.generation if pm else None,
        model=embedder.name,
        dim=dim,
        chunker_version=chunker_version,
        articles=len(by_path),
        chunks=n,
        built_at=now if report.rebuilt or pm is None else pm.built_at,
        updated_at=now,
        faiss=finfo,
        next_vector_id=next_vid,
        files=files,
    )
    try:
        _write_manifest(index_dir, manifest)
    except BaseException:
        shutil.rmtree(final_dir, ignore_errors=True)
        raise
    _gc(index_dir, {gen_id} | ({pm.generation} if pm else set()))
    remove_damaged_caches(index_dir)
    report.generation = gen_id
    report.published = True
    report.seconds = time.monotonic() - t0
    return report
