"""Folders in the cache that are built once and then only read: the converted embedder,
the merged reader."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["build_once"]


def build_once(target: Path, is_complete: Callable[[], bool], build: Callable[[Path], None]) -> Path:
    """``target``, built by ``build(tmp)`` unless ``is_complete()`` already says it is there.

    Safe across threads and processes: a file lock serializes builders, the folder is
    built under a temporary name beside the target (``build`` writes its completeness
    marker last) and renamed into place, so a half-built folder is never returned.
    """
    from filelock import FileLock

    if is_complete():
        return target
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(parent / f"{target.name}.lock")):
        if is_complete():  # another process finished while we waited
            return target
        # Holding the lock we are the only writer, so anything left under these names
        # is debris from an interrupted run.
        for stale in parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; the cache may be shared
        try:
            build(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
