"""The local store's files: the manifest, its generations, and their clean-up.

Modelled on txtai's embeddings (one index object, upsert/delete, one persisted
layout), but built for a long-running reader (the Telegram bot) that must never
see a half-written index, and for cheap incremental updates.

Layout of ``<index_dir>`` (default ``embeddings/``)::

    MANIFEST.json            the published pointer; replaced atomically
                             (write tmp, fsync, os.replace, fsync dir)
    gen-<id>/meta.sqlite     articles + chunks of this generation (immutable once published)
    gen-<id>/vectors.faiss   IndexIDMap2(IndexFlatIP), or IndexIVFFlat past APPROX_THRESHOLD;
                             ids are the chunks' stable int64 vector ids (chunks.vid)
    gen-<id>/lexical/        BM25 over jieba (qa_bot.lexical), gen-<id>/sentences/ sentence
                             vectors (qa_bot.sentences): the local store's artifacts
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

Every file of a generation (artifacts included) is listed with its sha256 and size,
and checked (``checksums``) before anything in it is trusted. Writers keep the current and the
previous generation; older ones are deleted (``gc``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import IndexCorrupt, IndexMissing
from .store import StoreStats

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: a generation layered as its base's files plus a delta/ segment (qa_bot.index.delta);
#: written only when there is a delta, so a store that never layers stays readable by
#: earlier versions
DELTA_FORMAT_VERSION = 2

MANIFEST_NAME = "MANIFEST.json"
LOCK_NAME = ".lock"
CACHE_NAME = "vector_cache.sqlite"
META_NAME = "meta.sqlite"
VECTORS_NAME = "vectors.faiss"
# in the cache folder, not the index: a reader may not write the index folder
VERIFIED_FILES_NAME = "verified-files.json"
DELTA_DIR = "delta"
DELTA_META_NAME = f"{DELTA_DIR}/meta.sqlite"
DELTA_VECTORS_NAME = f"{DELTA_DIR}/vectors.npy"
GEN_PREFIX = "gen-"
TMP_PREFIX = ".tmp-"

_GEN_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class Vanished(Exception):
    """A generation file disappeared while opening (a writer garbage-collected it)."""


def gen_dir(index_dir: Path, generation: str) -> Path:
    return index_dir / f"{GEN_PREFIX}{generation}"


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
class DeltaInfo:
    """A layered generation: the files of ``base_generation`` (hard links) hold most
    chunks; ``delta/`` holds the articles written since, and the base articles it hides."""

    base_generation: str
    articles: int  # articles in delta/
    chunks: int  # chunks in delta/
    hidden_articles: int  # base articles that delta/ removes or replaces


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
    delta: DeltaInfo | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": DELTA_FORMAT_VERSION if self.delta else FORMAT_VERSION,
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
        if self.delta is not None:
            out["delta"] = asdict(self.delta)
        return out

    @classmethod
    def from_json(cls, raw: Any) -> Manifest:
        """Parse and validate; raises ValueError/KeyError/TypeError on anything off."""
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        fmt = raw["format"]
        if fmt not in (FORMAT_VERSION, DELTA_FORMAT_VERSION):
            raise ValueError(
                f"format {fmt!r}, this qa-bot reads formats {FORMAT_VERSION} and {DELTA_FORMAT_VERSION}"
            )
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
        delta = _delta_info(raw, files) if fmt == DELTA_FORMAT_VERSION else None
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
            delta=delta,
        )


def _delta_info(raw: dict[str, Any], files: dict[str, FileEntry]) -> DeltaInfo:
    d = _typed(raw["delta"], dict)
    base = _typed(d["base_generation"], str)
    if not _GEN_ID_RE.match(base):
        raise ValueError(f"bad base generation id {base!r}")
    for required in (DELTA_META_NAME, DELTA_VECTORS_NAME):
        if required not in files:
            raise ValueError(f"{required} not listed")
    return DeltaInfo(base, _nonneg(d["articles"]), _nonneg(d["chunks"]), _nonneg(d["hidden_articles"]))


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


def read_manifest(index_dir: Path) -> Manifest:
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
        return read_manifest(Path(index_dir)).generation
    except IndexMissing:
        return None



# --------------------------------------------------------------------------- writing and clean-up


def gc(index_dir: Path, keep: set[str] | None) -> None:
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


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform/filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def write_manifest(index_dir: Path, m: Manifest) -> None:
    tmp = index_dir / f"{MANIFEST_NAME}.{os.getpid()}.tmp"
    data = json.dumps(m.to_json(), ensure_ascii=False, indent=2).encode("utf-8")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / MANIFEST_NAME)
    fsync_dir(index_dir)


def new_generation_id(prev: Manifest | None) -> str:
    seq = 1
    if prev is not None:
        head = prev.generation.split("-", 1)[0]
        seq = int(head) + 1 if head.isdigit() else 1
    # random suffix: an unpublished dir from a crashed run can never collide
    return f"{seq:06d}-{secrets.token_hex(3)}"


def crashpoint(name: str) -> None:
    """Fault injection for the crash-safety tests: ``QA_BOT_CRASH_AT=<name>`` makes the
    process kill itself (SIGKILL, like ``kill -9``) at that point of an update."""
    if os.environ.get("QA_BOT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)




# --------------------------------------------------------------------------- stats


def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return total


def manifest_stats(m: Manifest, generation_dir: Path, total_size_bytes: int | None = None) -> StoreStats:
    """The published generation's stats as the manifest records them; ``total_size_bytes``
    (everything in the index folder) is given by callers that measured it."""
    details: dict[str, str | int | None] = {
        "faiss_kind": m.faiss.kind,
        "nlist": m.faiss.nlist,
        "nprobe": m.faiss.nprobe,
        "dir": str(generation_dir),
    }
    if total_size_bytes is not None:
        details["total_size_bytes"] = total_size_bytes
    if m.delta is not None:  # a layered generation (qa_bot.index.layers)
        details.update(base_generation=m.delta.base_generation, delta_chunks=m.delta.chunks,
                       delta_hidden_articles=m.delta.hidden_articles)
    return StoreStats(
        kind="local",
        version=m.generation,
        articles=m.articles,
        chunks=m.chunks,
        model=m.model,
        dim=m.dim,
        layout_version=m.chunker_version,
        built_at=m.built_at,
        last_update=m.updated_at,
        size_bytes=sum(e.size for e in m.files.values()),
        details=details,
    )
