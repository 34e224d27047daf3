"""A full or read-only disk is one line and exit 2, never damage: the vector cache stays,
the published index keeps answering, and the next update on a healthy disk goes on.
The index lives on a small tmpfs the test mounts (skipped where mounting is not allowed)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_updates_cli import HASH_MODEL, NEW_POSTS, Site, write_post

from qa_bot.index import CACHE_NAME


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _site(root: Path, cache: Path) -> Site:
    site = Site(root, HASH_MODEL, cache)
    site.corpus.mkdir(parents=True)
    for name, title, paras, _q, _f in NEW_POSTS[:3]:
        write_post(site.corpus, name, title, paras)
    site.ok_json("index", "build", "--json")
    return site


def _fill(disk: Path) -> None:
    with (disk / "filler").open("wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * (1 << 16))
            fh.flush()


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_disk_full_is_one_line_and_keeps_the_cache(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "48m") as disk:
        site = _site(disk / "site", tmp_path / "cache")
        for name, title, paras, _q, _f in NEW_POSTS[3:]:
            write_post(site.corpus, name, title, paras * 40)
        _fill(disk)  # a pull brought new posts, then the disk filled up
        code, out, err = site.run("index", "update")
        assert code == 2, err
        line = _one_line(err).replace(str(tmp_path), "")  # the path names the test
        assert re.search(r"disk|space|full", line, re.I) and "keeps answering" in line, line
        assert not list(site.index.glob(f"{CACHE_NAME}.damaged-*"))
        # the published index still answers
        code, out, err = site.run("ask", "--json", NEW_POSTS[0][3])
        assert code == 0, err and json.loads(out)["sources"]
        (disk / "filler").unlink()
        report = site.update()
        assert report["published"] is True and report["added"] == len(NEW_POSTS) - 3


def test_read_only_index_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "48m") as disk:
        site = _site(disk / "site", tmp_path / "cache")
        write_post(site.corpus, *NEW_POSTS[3][:3])
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code, out, err = site.run("index", "update")
        assert code == 2, err
        assert "read-only" in _one_line(err).replace(str(tmp_path), "").lower()
        code, out, err = site.run("ask", "--json", NEW_POSTS[0][3])
        assert code == 0, err


def test_a_damaged_cache_is_set_aside_and_removed_after_a_good_update(tmp_path: Path) -> None:
    site = _site(tmp_path / "site", tmp_path / "cache")
    (site.index / CACHE_NAME).write_bytes(b"this is not an sqlite file" * 100)
    for suffix in ("-wal", "-shm"):
        (site.index / f"{CACHE_NAME}{suffix}").unlink(missing_ok=True)
    write_post(site.corpus, *NEW_POSTS[3][:3])
    code, out, err = site.run("index", "update", "--json")
    assert code == 0, err
    assert "unreadable" in err
    assert json.loads(out)["published"] is True
    assert not list(site.index.glob(f"{CACHE_NAME}.damaged-*"))
