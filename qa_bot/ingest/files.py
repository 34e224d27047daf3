"""Finding the post files of a corpus and reading each one under a byte cap.

Symlinks are followed only to regular files inside the corpus; anything else that is
named like a post (FIFO, device, socket, dangling or looping link, a link leaving the
corpus) becomes a skip naming it. File names are data from strangers: they are shown
escaped, and names that cannot be stored or shown safely are skipped.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from qa_bot.ingest.limits import PostError

POST_SUFFIX = ".md"
# bidi overrides and isolates reorder what a terminal shows (a name could pose as another)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class Candidate:
    """A directory entry named like a post. ``rel`` may hold surrogate escapes."""

    rel: str  # POSIX path relative to the corpus root, as the OS gave it
    fspath: str  # where it is; a str, not a Path: an update of a 70k-post archive
    # lists every post but reads only the changed ones, and 70k Path objects cost a second

    @property
    def path(self) -> Path:
        return Path(self.fspath)

    @property
    def shown(self) -> str:
        return display_path(self.rel)


def _escape_char(c: str) -> str:
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if c == "\\":
        return "\\\\"  # so that an escape in the output is never ambiguous
    if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"
    return c


def display_path(rel: str) -> str:
    """``rel`` safe for a terminal, a log line or JSON: undecodable bytes and control
    characters (newline, ANSI escape, bidi overrides) escaped as ``\\xNN``/``\\uNNNN``."""
    if rel.isprintable() and "\\" not in rel:
        return rel  # the usual case, and linear either way
    return "".join(_escape_char(c) for c in rel)


def name_problem(rel: str) -> str | None:
    """Why a post with this path cannot be indexed, or None."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI for c in rel):
        return "file name contains control characters"
    return None


def find_candidates(root: Path) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Entries named ``*.md`` under ``root`` (hidden folders and files excluded), sorted,
    plus (shown path, reason) for folders that could not be listed.

    An iterative walk over ``os.scandir``: it never follows a directory symlink (a loop
    or a link out of the corpus), and a deep tree cannot exhaust the stack.
    """
    found: list[Candidate] = []
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            problems.append((display_path(rel or "."), f"unreadable folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .git, editor backups and the like are not posts
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((entry.path, child))
            elif entry.name.endswith(POST_SUFFIX):
                found.append(Candidate(child, entry.path))
    found.sort(key=lambda c: c.rel)
    return found, problems


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _resolve_link(path: Path, root_real: Path) -> Path:
    """The target of a symlink, if it is inside the corpus."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        raise PostError("dangling symlink") from None
    except RuntimeError:  # Python < 3.13 on a loop
        raise PostError("symlink loop") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PostError("symlink loop") from None
        raise PostError(f"symlink cannot be resolved: {exc.strerror or exc}") from None
    if not target.is_relative_to(root_real):
        raise PostError("symlink points outside the corpus")
    return target


def _check_regular(st: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise PostError(f"not a regular file ({_kind(st.st_mode)})")
    if st.st_size > max_bytes:
        raise PostError(f"larger than {max_bytes} bytes (limit QA_BOT_MAX_POST_BYTES)")


def read_capped(cand: Candidate, root_real: Path, max_bytes: int) -> bytes:
    """The file's bytes, never more than ``max_bytes`` (a bigger file is a PostError).

    The type is checked before opening (opening a FIFO blocks, a device may act) and
    again on the open descriptor, so a file swapped in between is caught too.
    """
    path = cand.path
    try:
        if path.is_symlink():
            path = _resolve_link(path, root_real)
        _check_regular(path.stat(follow_symlinks=False), max_bytes)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PostError(f"unreadable: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb", buffering=0) as fh:
        _check_regular(os.fstat(fd), max_bytes)
        return _read_at_most(fh, max_bytes)


def _read_at_most(fh, max_bytes: int) -> bytes:  # type: ignore[no-untyped-def]
    parts: list[bytes] = []
    total = 0
    try:
        while total <= max_bytes:
            part = fh.read(min(_READ_CHUNK, max_bytes + 1 - total))
            if not part:
                break
            parts.append(part)
            total += len(part)
    except OSError as exc:
        raise PostError(f"unreadable: {exc.strerror or exc}") from exc
    if total > max_bytes:  # grew after the size check
        raise PostError(f"larger than {max_bytes} bytes (limit QA_BOT_MAX_POST_BYTES)")
    return b"".join(parts)

