"""Writing a local generation and publishing it.

A generation is written under a temp name (``.tmp-gen-<id>``), fsynced, checksummed,
renamed into place, and only then published by replacing MANIFEST.json; a crash at
any point leaves the previous manifest, and so the previous generation, in force
(the next writer removes the debris). ``QA_BOT_CRASH_AT`` names the points the
crash tests kill the writer at.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..types import Article, Chunk
from .checksums import sha256_file
from .generations import (
    FORMAT_VERSION,
    GEN_PREFIX,
    TMP_PREFIX,
    FileEntry,
    Manifest,
    crashpoint,
    fsync_dir,
    fsync_tree,
    gc,
    new_generation_id,
    write_manifest,
)

ARTICLE_ROW_COLS = (
    "path, title, date, date_key, url, source, categories, tags, content_hash, n_chunks, sig"
)


@dataclass(frozen=True)
class ArticleRow:
    """A row of meta.sqlite's ``articles`` table, columns in table order."""

    path: str
    title: str
    date: str | None
    date_key: str | None  # ``date`` in UTC, for sorting by recency
    url: str | None
    source: str | None
    categories: str  # JSON list
    tags: str  # JSON list
    content_hash: str
    n_chunks: int
    sig: str

    @classmethod
    def of(cls, a: Article, n_chunks: int, sig: str) -> ArticleRow:
        return cls(
            a.path,
            a.title,
            a.date,
            date_key(a.date),
            a.url,
            a.source,
            json.dumps(list(a.categories), ensure_ascii=False),
            json.dumps(list(a.tags), ensure_ascii=False),
            a.content_hash,
            n_chunks,
            sig,
        )

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> ArticleRow:
        return cls(*r)

    def row(self) -> tuple[Any, ...]:
        # dataclasses.astuple deep-copies field by field: seconds for 70k articles
        return (
            self.path, self.title, self.date, self.date_key, self.url, self.source,
            self.categories, self.tags, self.content_hash, self.n_chunks, self.sig,
        )


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def date_key(date: str | None) -> str | None:
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


def write_meta(
    path: Path,
    articles: Sequence[ArticleRow],
    ordered: Sequence[Chunk],
    vid_of: Mapping[str, int],
    next_vid: int,
) -> None:
    """Write meta.sqlite of a new generation: its articles, and its chunks in row order
    (``seq``) with their vector ids."""
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
                [a.row() for a in sorted(articles, key=lambda a: a.path)],
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


def write_generation(
    index_dir: Path,
    previous: Manifest | None,
    write_files: Callable[[Path], None],
    *,
    known: Mapping[str, FileEntry] | None = None,
) -> tuple[str, Path, dict[str, FileEntry]]:
    """Write a new generation with ``write_files(dir)`` and rename it into place
    (not yet published). Returns its id, final dir and the checksums of its files;
    ``known`` entries (hard links to published files) are taken as they are."""
    gen_id = new_generation_id(previous)
    tmp_dir = index_dir / f"{TMP_PREFIX}{GEN_PREFIX}{gen_id}"
    final_dir = index_dir / f"{GEN_PREFIX}{gen_id}"
    tmp_dir.mkdir()
    try:
        write_files(tmp_dir)
        fsync_tree(tmp_dir)
        crashpoint("before-rename")
        files = {}
        for p in sorted(tmp_dir.rglob("*")):
            if p.is_file():
                name, size = p.relative_to(tmp_dir).as_posix(), p.stat().st_size
                ent = (known or {}).get(name)
                files[name] = ent if ent is not None and ent.size == size else FileEntry(sha256_file(p), size)
        os.replace(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    fsync_dir(index_dir)
    crashpoint("before-manifest")
    return gen_id, final_dir, files


def publish(index_dir: Path, manifest: Manifest, final_dir: Path) -> None:
    """Make ``manifest`` the published one; then only it and its previous generation
    are kept."""
    try:
        write_manifest(index_dir, manifest)
    except BaseException:
        shutil.rmtree(final_dir, ignore_errors=True)
        raise
    gc(index_dir, {manifest.generation} | ({manifest.previous_generation} if manifest.previous_generation else set()))
