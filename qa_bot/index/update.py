"""The local store's ``apply``: a change set becomes a new published generation.

The steps, each a function below: load the previous generation; merge its unchanged
articles with the change set into the new generation's rows; assign vector ids
(a chunk whose (chunk_id, text_hash) is unchanged keeps its id, a freed id whose text
reappears — a rename, a move — is reused as is, other chunks get new ids); choose
between patching the previous faiss index (remove_ids/add_with_ids) and building a
new one; collect the vectors that needs; write and publish the generation.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from ..lexical import LexicalIndex
from ..sentences import SentenceVectors
from ..types import Chunk
from .changes import check_shrink
from .checksums import VerifiedFiles, check_files
from .delta import DeltaPlan, DeltaUnavailable, plan_delta, publish_delta, vectors_for
from .errors import IndexCorrupt, IndexMissing, ModelMismatch, StaleChanges
from .faiss_index import build_faiss, rebuild_reason
from .generations import (
    META_NAME,
    VECTORS_NAME,
    FaissInfo,
    FileEntry,
    Manifest,
    Vanished,
    gc,
    gen_dir,
    read_manifest,
)
from .layers import read_vectors
from .publish import ARTICLE_ROW_COLS, ArticleRow, now_iso, publish, write_generation, write_meta
from .snapshot import CHUNK_COLS, ROW_ORDER, open_generation_meta, row_chunk
from .store import ChangeSet, PublishedState, UpdateReport, VectorSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewGeneration:
    """The generation being written, as an ``Artifacts`` writer sees it."""

    chunks: list[Chunk]  # in row order
    dir: Path  # write here: the files are checksummed with the rest before publishing
    previous_dir: Path | None  # the published generation, whose files may be reused
    vectors: VectorSource
    full: bool  # a full build: derive everything afresh
    dim: int
    #: chunks that are in the previous generation with the same text (their derived
    #: data there can be copied instead of computed)
    same: frozenset[str] = frozenset()
    #: a layered generation (qa_bot.index.layers): ``dir`` holds the base's files
    #: already, ``chunks`` are delta/'s, and these base chunks are hidden
    hidden: frozenset[str] | None = None

    @property
    def layered(self) -> bool:
        return self.hidden is not None


class Artifacts(Protocol):
    """Extra files of each generation, derived from its chunks (BM25, sentence vectors)."""

    #: can write the delta/ share of a layered generation (``NewGeneration.layered``)
    supports_layers: bool

    def write(self, gen: NewGeneration) -> None: ...

    def load(self, gen_dir: Path) -> tuple[LexicalIndex | None, SentenceVectors | None]:
        """What a reader of the generation searches besides faiss (None: nothing)."""
        ...


# --------------------------------------------------------------------------- previous generation


@dataclass
class Previous:
    """What an update needs of the published generation."""

    manifest: Manifest
    gen_dir: Path
    sigs: dict[str, str]  # article path → signature
    vids: dict[str, tuple[int, str]]  # chunk_id → (vid, text_hash)
    text_hash_of_vid: dict[int, str]


@dataclass(frozen=True)
class Loaded:
    """The published generation as an update sees it: usable (``previous``), or not
    (``problem``, with the manifest when that much was readable), or absent."""

    previous: Previous | None = None
    manifest: Manifest | None = None
    problem: str | None = None

    def state(self) -> PublishedState:
        m, prev = self.manifest, self.previous
        return PublishedState(
            version=prev.manifest.generation if prev else None,
            model=m.model if m else None,
            dim=m.dim if m else None,
            layout_version=m.chunker_version if m else None,
            signatures=prev.sigs if prev else {},
            problem=self.problem,
        )


def load_previous(index_dir: Path, memo: VerifiedFiles | None = None) -> Loaded:
    try:
        m = read_manifest(index_dir)
    except IndexMissing:
        return Loaded()
    except IndexCorrupt as e:
        return Loaded(problem=str(e))
    gdir = gen_dir(index_dir, m.generation)
    problems = list(check_files(gdir, m, verify=True, memo=memo))
    if problems:
        p, why = problems[0]
        return Loaded(manifest=m, problem=f"{p}: {why}")
    try:
        conn = open_generation_meta(gdir, m)
    except (IndexCorrupt, Vanished) as e:
        return Loaded(manifest=m, problem=str(e) or f"{gdir} vanished")
    try:
        sigs = dict(conn.execute("SELECT path, sig FROM articles"))
        vids: dict[str, tuple[int, str]] = {}
        by_vid: dict[int, str] = {}
        for cid, vid, th in conn.execute("SELECT chunk_id, vid, text_hash FROM chunks"):
            vids[cid] = (vid, th)
            by_vid[vid] = th
    except sqlite3.DatabaseError as e:
        return Loaded(manifest=m, problem=f"{gdir / META_NAME}: {e}")
    finally:
        conn.close()
    return Loaded(Previous(m, gdir, sigs, vids, by_vid), m)


def _unchanged_rows(prev: Previous, paths: Sequence[str]) -> tuple[list[ArticleRow], list[Chunk]]:
    """The rows of these articles and their chunks, as the previous generation has them."""
    wanted = set(paths)
    conn = open_generation_meta(prev.gen_dir, prev.manifest)
    try:
        arts = [
            ArticleRow.from_row(r)
            for r in conn.execute(f"SELECT {ARTICLE_ROW_COLS} FROM articles")
            if r[0] in wanted
        ]
        chunks = [
            row_chunk(r)
            for r in conn.execute(f"SELECT {CHUNK_COLS} FROM chunks ORDER BY {ROW_ORDER}")
            if r[1] in wanted
        ]
    except sqlite3.DatabaseError as e:
        raise IndexCorrupt(prev.gen_dir / META_NAME, f"unreadable: {e}") from e
    finally:
        conn.close()
    if len(arts) != len(wanted):
        raise IndexCorrupt(prev.gen_dir / META_NAME, "articles of the change set are missing")
    return arts, chunks


# --------------------------------------------------------------------------- the new generation's rows


@dataclass
class Rows:
    """The new generation: article rows, chunks in row order, and the vectors the
    change set carries (chunk_id → vector)."""

    articles: list[ArticleRow]
    ordered: list[Chunk]
    given: dict[str, np.ndarray] = field(default_factory=dict)


def merge_rows(prev: Previous | None, changes: ChangeSet) -> Rows:
    carried = [*changes.added, *changes.changed, *changes.kept]
    articles = [ArticleRow.of(d.article, len(d.chunks), d.signature) for d in carried]
    chunks = [c for d in carried for c in d.chunks]
    given = {c.chunk_id: v for d in carried for c, v in zip(d.chunks, d.vectors, strict=True)}
    if not changes.full and changes.unchanged:
        if prev is None:
            raise StaleChanges(changes.base_version, None)
        old_articles, old_chunks = _unchanged_rows(prev, changes.unchanged)
        articles += old_articles
        chunks += old_chunks
    chunks.sort(key=lambda c: (c.article_path, c.ordinal, c.chunk_id))
    if len(chunks) != changes.total_chunks:
        raise ValueError(f"change set has {len(chunks)} chunks, says {changes.total_chunks}")
    return Rows(articles, chunks, given)


# --------------------------------------------------------------------------- vector ids


@dataclass
class VectorIds:
    vid_of: dict[str, int]  # chunk_id → vector id in the new generation
    to_add: list[tuple[int, Chunk]]  # new ids and their chunks
    to_remove: np.ndarray  # ids of the previous generation that are gone
    next_vid: int
    same: frozenset[str]  # chunk ids whose (chunk_id, text_hash) the previous generation has


def assign_vector_ids(ordered: Sequence[Chunk], prev: Previous | None) -> VectorIds:
    old_vids = prev.vids if prev else {}
    next_vid = prev.manifest.next_vector_id if prev else 0
    vid_of: dict[str, int] = {}
    for c in ordered:
        old = old_vids.get(c.chunk_id)
        if old is not None and old[1] == c.text_hash:
            vid_of[c.chunk_id] = old[0]
    same = frozenset(vid_of)
    kept = set(vid_of.values())
    # a freed id whose text reappears elsewhere (rename, move) is reused: same vector
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
    return VectorIds(vid_of, to_add, to_remove, next_vid, same)


# --------------------------------------------------------------------------- faiss: patch or rebuild


def _base_index(prev: Previous) -> tuple[faiss.Index | None, str | None]:
    """The previous faiss index to patch, or why it cannot be."""
    try:
        conn = open_generation_meta(prev.gen_dir, prev.manifest)
        try:
            index = read_vectors(prev.gen_dir, prev.manifest, conn)
        finally:
            conn.close()
    except (IndexCorrupt, Vanished) as e:
        return None, f"previous faiss index unusable ({e})"
    return index, None


def vector_index(
    rows: Rows,
    ids: VectorIds,
    prev: Previous | None,
    source: VectorSource,
    *,
    dim: int,
    full: bool,
    approx_threshold: int,
    report: UpdateReport,
) -> tuple[faiss.Index, FaissInfo]:
    n = len(rows.ordered)
    pm = prev.manifest if prev else None
    reason = rebuild_reason(pm.faiss if pm else None, n, approx_threshold, full=full)
    base: faiss.Index | None = None
    if reason is None:
        assert prev is not None
        base, reason = _base_index(prev)
    if reason is not None:
        report.rebuilt = True
        if reason != "full build":
            report.notes.append(reason)
        x = vectors_for(rows.ordered, rows.given, source, dim)
        vids = np.array([ids.vid_of[c.chunk_id] for c in rows.ordered], dtype=np.int64)
        index, finfo = build_faiss(x, vids, dim, approx_threshold)
        del x  # the index holds its own copy; keep the writer's peak memory down
    else:
        assert pm is not None and base is not None
        index, finfo = base, pm.faiss
        if ids.to_remove.size:
            index.remove_ids(ids.to_remove)
        if ids.to_add:
            x = vectors_for([c for _, c in ids.to_add], rows.given, source, dim)
            index.add_with_ids(x, np.array([v for v, _ in ids.to_add], dtype=np.int64))
    if index.ntotal != n:
        raise RuntimeError(f"internal error: faiss holds {index.ntotal} vectors for {n} chunks")
    return index, finfo


# --------------------------------------------------------------------------- apply


def _report(changes: ChangeSet) -> UpdateReport:
    return UpdateReport(
        added=len(changes.added),
        changed=len(changes.changed),
        removed=len(changes.removed),
        unchanged=len(changes.unchanged),
        total_chunks=changes.total_chunks,
        total_articles=changes.total_articles,
    )


def _check_base(index_dir: Path, loaded: Loaded, changes: ChangeSet) -> None:
    prev = loaded.previous
    base = prev.manifest.generation if prev else None
    if base != changes.base_version:
        raise StaleChanges(changes.base_version, base)
    m = loaded.manifest
    if m is not None and not changes.full and (m.model, m.dim) != (changes.model, changes.dim):
        raise ModelMismatch(index_dir, m.model, m.dim, changes.model, changes.dim)


def apply_changes(
    index_dir: Path,
    loaded: Loaded,
    changes: ChangeSet,
    source: VectorSource,
    *,
    artifacts: Artifacts | None,
    approx_threshold: int,
    shrink_guard: tuple[bool, float],
    max_delta_fraction: float = 0.0,
) -> UpdateReport:
    """Publish ``changes`` as a new generation (the caller holds the writer lock and
    loaded the published generation): a delta over the published one when it is small
    enough (``max_delta_fraction`` of the base's chunks; 0: never), else in full."""
    _check_base(index_dir, loaded, changes)
    prev = loaded.previous
    pm = prev.manifest if prev else None
    # leftovers of crashed writers (temp dirs, generations renamed but never published) go
    # first; without a readable manifest we cannot tell which generations matter, keep them
    gc(index_dir, {pm.generation, pm.previous_generation or ""} if pm else None)
    report = _report(changes)
    # a new chunker or artifact version must publish a new generation even when no post changed
    same_layout = pm is not None and pm.chunker_version == changes.layout_version
    if pm is not None and same_layout and not changes.full and not changes.touches_articles:
        report.generation, report.faiss_kind = pm.generation, pm.faiss.kind
        return report
    check_shrink(pm.articles if pm else 0, changes.total_articles, *shrink_guard)
    layers_ok = artifacts is None or artifacts.supports_layers
    if prev is not None and same_layout and not changes.full and layers_ok and max_delta_fraction > 0:
        try:
            _apply_delta(index_dir, prev, changes, source, artifacts, approx_threshold, max_delta_fraction, report)
            return report
        except DeltaUnavailable as e:
            log.info("writing a full generation: %s", e)
    rows = merge_rows(prev, changes)
    ids = assign_vector_ids(rows.ordered, prev)
    index, finfo = vector_index(
        rows,
        ids,
        prev,
        source,
        dim=changes.dim,
        full=changes.full,
        approx_threshold=approx_threshold,
        report=report,
    )
    report.faiss_kind = finfo.kind

    def write_files(tmp_dir: Path) -> None:
        write_meta(tmp_dir / META_NAME, rows.articles, rows.ordered, ids.vid_of, ids.next_vid)
        faiss.write_index(index, str(tmp_dir / VECTORS_NAME))
        if artifacts is not None:
            previous_dir = prev.gen_dir if prev else None
            ordered = list(rows.ordered)
            gen = NewGeneration(ordered, tmp_dir, previous_dir, source, changes.full, changes.dim, ids.same)
            artifacts.write(gen)

    gen_id, final_dir, files = write_generation(index_dir, pm, write_files)
    manifest = _manifest(gen_id, files, pm, changes, rows, ids, finfo, rebuilt=report.rebuilt)
    publish(index_dir, manifest, final_dir)
    report.generation = gen_id
    report.published = True
    return report


def _apply_delta(
    index_dir: Path,
    prev: Previous,
    changes: ChangeSet,
    source: VectorSource,
    artifacts: Artifacts | None,
    approx_threshold: int,
    max_fraction: float,
    report: UpdateReport,
) -> None:
    plan = plan_delta(prev.gen_dir, prev.manifest, changes, prev.vids,
                      max_fraction=max_fraction, approx_threshold=approx_threshold)
    given = {c.chunk_id: v for d in (*changes.added, *changes.changed)
             for c, v in zip(d.chunks, d.vectors, strict=True)}

    def write_artifacts(tmp_dir: Path, p: DeltaPlan) -> None:
        assert artifacts is not None
        artifacts.write(NewGeneration(p.chunks, tmp_dir, prev.gen_dir, source, False, changes.dim,
                                      p.same, hidden=p.hidden_chunk_ids))

    publish_delta(index_dir, prev.gen_dir, prev.manifest, changes, plan,
                  lambda chunks: vectors_for(chunks, given, source, changes.dim),
                  write_artifacts if artifacts is not None else None, report)


def _manifest(
    gen_id: str,
    files: dict[str, FileEntry],
    pm: Manifest | None,
    changes: ChangeSet,
    rows: Rows,
    ids: VectorIds,
    finfo: FaissInfo,
    *,
    rebuilt: bool,
) -> Manifest:
    now = now_iso()
    return Manifest(
        generation=gen_id,
        previous_generation=pm.generation if pm else None,
        model=changes.model,
        dim=changes.dim,
        chunker_version=changes.layout_version,
        articles=len(rows.articles),
        chunks=len(rows.ordered),
        built_at=now if rebuilt or pm is None else pm.built_at,
        updated_at=now,
        faiss=finfo,
        next_vector_id=ids.next_vid,
        files=files,
    )
