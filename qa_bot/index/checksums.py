"""Checksums of a generation's files: which files differ from the manifest, and which
were already checked (by this process, or by an earlier one through the cache folder)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .generations import Manifest, Vanished

__all__ = ["VerifiedFiles", "check_files", "sha256_file"]

log = logging.getLogger(__name__)


class VerifiedFiles:
    """The files whose sha256 has been checked, by inode, size and mtime.

    A layered generation hard-links its base's files, so a long-running process (the
    bot, ``qa-bot watch``) hashes a 1 GB base once instead of on every update and
    reload; any write to a file changes its mtime, so a damaged file is still caught.

    With ``path`` (a file in the cache folder) the checks outlive the process, as git's
    index does for its stat data: hashing a 100k-chunk index took 1 s of a one-shot
    ``qa-bot ask``'s 4 s cold start, on every run. A file is remembered there only once
    its mtime is ``RACY_S`` old, so a write within the clock's granularity of the check
    cannot hide behind an unchanged mtime. ``qa-bot index verify`` always hashes.
    """

    RACY_S = 2.0
    MAX_REMEMBERED = 4096

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._seen: set[tuple[int, int, int, int, str]] = set()
        self._by_file: dict[str, list[Any]] = self._read(path) if path is not None else {}
        self._seen.update(tuple(v) for v in self._by_file.values())  # type: ignore[misc]
        self._dirty = False

    @staticmethod
    def _read(path: Path) -> dict[str, list[Any]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {str(k): list(v) for k, v in data["files"].items() if len(v) == 5}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # missing or damaged: hash again, which rewrites it

    @staticmethod
    def _key(st: os.stat_result, sha256: str) -> tuple[int, int, int, int, str]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, sha256)

    def known(self, st: os.stat_result, sha256: str) -> bool:
        return self._key(st, sha256) in self._seen

    def add(self, st: os.stat_result, sha256: str, file: Path | None = None) -> None:
        key = self._key(st, sha256)
        self._seen.add(key)
        if self.path is not None and file is not None and time.time_ns() - st.st_mtime_ns > self.RACY_S * 1e9:
            self._by_file[str(file.resolve())] = list(key)
            self._dirty = True

    def save(self) -> None:
        """Write the remembered checks (best effort: a read-only cache only costs time)."""
        if self.path is None or not self._dirty:
            return
        kept = dict(list(self._by_file.items())[-self.MAX_REMEMBERED :])
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"files": kept}), encoding="utf-8")
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as e:
            log.debug("could not remember verified files in %s: %s", self.path, e)
            with contextlib.suppress(OSError):
                tmp.unlink()


def check_files(
    gen_dir: Path,
    m: Manifest,
    verify: bool,
    *,
    vanished_ok: bool = True,
    memo: VerifiedFiles | None = None,
) -> Iterator[tuple[Path, str]]:
    """Yield (file, problem) for listed files whose size or sha256 differs (files in
    ``memo`` are not hashed again)."""
    for name, ent in sorted(m.files.items()):
        p = gen_dir / name
        try:
            st = p.stat()
            size = st.st_size
        except FileNotFoundError:
            if not vanished_ok and not gen_dir.exists():
                raise Vanished() from None
            yield p, "missing"
            continue
        if size != ent.size:
            yield (
                p,
                f"size {size} bytes, manifest says {ent.size}"
                + (" (truncated)" if size < ent.size else ""),
            )
            continue
        if verify and not (memo is not None and memo.known(st, ent.sha256)):
            try:
                digest = sha256_file(p)
            except FileNotFoundError:
                if not vanished_ok:
                    raise Vanished() from None
                yield p, "missing"
                continue
            except OSError as e:
                yield p, f"unreadable: {e.strerror or e}"
                continue
            if digest != ent.sha256:
                yield p, "checksum mismatch (file altered)"
            elif memo is not None:
                memo.add(st, digest, p)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
