"""Checking and describing the local store's published generation (``index verify``
and ``index stats``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checksums import check_files
from .errors import BUILD_HINT, IndexProblem
from .generations import Vanished, dir_size, gen_dir, manifest_stats, read_manifest
from .snapshot import load_snapshot
from .store import StoreStats


def verify_index(index_dir: str | os.PathLike[str]) -> list[str]:
    """Problems with the published index, one line each; empty means OK."""
    index_dir = Path(index_dir)
    try:
        m = read_manifest(index_dir)
    except IndexProblem as e:
        return [str(e)]
    gdir = gen_dir(index_dir, m.generation)
    if not gdir.is_dir():
        return [f"generation directory {gdir} is missing: {BUILD_HINT}"]
    problems = [f"{p}: {why}" for p, why in check_files(gdir, m, verify=True)]
    listed = set(m.files)
    for p in sorted(gdir.rglob("*")):
        if p.is_file() and p.relative_to(gdir).as_posix() not in listed:
            problems.append(f"{p}: not listed in the manifest")
    if problems:
        return problems  # don't parse files that failed their checksum
    try:
        snap = load_snapshot(gdir, m, verify=False)
    except (IndexProblem, Vanished) as e:
        return [str(e)]
    with snap:
        return snap.consistency_problems()


def local_stats(index_dir: Path) -> StoreStats:
    """Counts, model, sizes and dates of the published index (IndexMissing/IndexCorrupt)."""
    m = read_manifest(index_dir)
    # everything under index_dir: previous generation and vector cache included
    return manifest_stats(m, gen_dir(index_dir, m.generation), dir_size(index_dir))


def index_stats(index_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``local_stats`` as the JSON object ``qa-bot index stats --json`` prints."""
    return local_stats(Path(index_dir)).to_json()
