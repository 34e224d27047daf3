"""File stamps: which posts are byte-for-byte what the published index was built from,
known without reading them.

Parsing every post dominated small updates of a large archive (70k posts: about a
minute, for five new ones). After each update the service records, for every post it
indexed, the file's size and modification time (ns) with its content hash and chunk
count, tied to the published version and layout. The next update reads and parses
only files whose size or mtime differ; the others are unchanged articles of that
version (git, rsync and editors all change the mtime of a file they rewrite).

A stamp is only trusted for the exact version and layout it was written with, and a
file modified in the last ``RACY_SECONDS`` before the scan is never stamped (its
mtime could still change within the clock's granularity: git's "racy" rule), so a
stamp can only make an update re-read a file, never miss a change. ``index build``
ignores them.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qa_bot.types import Chunk

if TYPE_CHECKING:
    from qa_bot.ingest import CorpusScan

log = logging.getLogger(__name__)

STAMPS_FORMAT = 1
#: the stamps file, in the index folder (beside the store's files, not part of them)
STAMPS_NAME = "file_stamps.json"
RACY_SECONDS = 2.0


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int
    content_hash: str
    n_chunks: int


def stamp_of(st: os.stat_result, content_hash: str, n_chunks: int) -> FileStamp:
    return FileStamp(st.st_size, st.st_mtime_ns, content_hash, n_chunks)


def matches(stamp: FileStamp, st: os.stat_result) -> bool:
    return stamp.size == st.st_size and stamp.mtime_ns == st.st_mtime_ns


def load_stamps(path: Path, version: str | None, layout: str, corpus: str) -> dict[str, FileStamp] | None:
    """The stamps written for ``version``, ``layout`` and ``corpus`` (a resolved folder),
    or None (none, another version, unreadable: then every file is read)."""
    if version is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        key = (raw["format"], raw["version"], raw["layout"], raw["corpus"])
        if key != (STAMPS_FORMAT, version, layout, corpus):
            return None
        return {p: FileStamp(*v) for p, v in raw["files"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring file stamps %s: %s", path, e)
        return None


def save_stamps(
    path: Path,
    version: str,
    layout: str,
    corpus: str,
    stamps: Mapping[str, FileStamp],
    scan_started: float,
) -> None:
    """Write the stamps of ``version`` atomically, leaving out racy ones."""
    limit = int((scan_started - RACY_SECONDS) * 1e9)
    files = {
        p: [s.size, s.mtime_ns, s.content_hash, s.n_chunks]
        for p, s in sorted(stamps.items())
        if s.mtime_ns < limit
    }
    data = {"format": STAMPS_FORMAT, "version": version, "layout": layout, "corpus": corpus, "files": files}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:  # only a cache: the next update reads every file
        log.warning("could not write file stamps %s: %s", path, e)
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Stamps:
    """The stamps of one published version."""

    version: str
    files: dict[str, FileStamp]


class StampBook:
    """The stamps file of one index, for one layout and corpus folder."""

    def __init__(self, path: Path, layout: str, corpus: Path) -> None:
        self.path, self.layout, self.corpus = path, layout, Path(corpus)
        # stamps of one folder only: the same names in another corpus are other files
        self._key = str(self.corpus.resolve())

    def load(self, version: str | None) -> Stamps | None:
        files = load_stamps(self.path, version, self.layout, self._key)
        return None if files is None or version is None else Stamps(version, files)

    def save(
        self, version: str, scan: CorpusScan, chunks: Sequence[Chunk], scan_started: float
    ) -> None:
        """Stamps of every post of ``version``: those read by ``scan`` (with their chunk
        counts) and those it did not read."""
        n_chunks = Counter(c.article_path for c in chunks)
        stamps = dict(scan.unchanged)
        for a in scan.articles:
            st = scan.stats.get(a.path)
            if st is not None:
                stamps[a.path] = stamp_of(st, a.content_hash, n_chunks[a.path])
        save_stamps(self.path, version, self.layout, self._key, stamps, scan_started)
