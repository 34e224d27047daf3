"""Checksums checked by one process are remembered for the next (``VerifiedFiles`` with a
path): a one-shot ``qa-bot ask`` no longer hashes the whole index, and a file changed since
is still caught."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_index import Corpus

from qa_bot.embedding import HashEmbedder
from qa_bot.index import IndexCorrupt, LocalStore, SearchArtifacts, update_store
from qa_bot.index import checksums as checksums_mod
from qa_bot.index.generations import gen_dir, read_manifest


def _published(tmp_path: Path) -> Path:
    corpus = Corpus()
    for i in range(6):
        corpus.add(f"_posts/2022-01-{i + 1:02d}-a{i}.md", seed=i + 1, day=i + 1)
    idx = tmp_path / "idx"
    update_store(LocalStore(idx, artifacts=SearchArtifacts()), *corpus.build(), HashEmbedder(dim=32))
    return idx


def _age(idx: Path, seconds: float) -> None:
    """Files as if written ``seconds`` ago: only files past the racy window are remembered."""
    then = time.time() - seconds
    for p in gen_dir(idx, read_manifest(idx).generation).rglob("*"):
        if p.is_file():
            os.utime(p, (then, then))


def _open(idx: Path, memo: Path) -> None:
    LocalStore(idx, artifacts=SearchArtifacts(), verified_files=memo).open_reader().close()


@pytest.fixture()
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = checksums_mod.sha256_file
    monkeypatch.setattr(checksums_mod, "sha256_file", lambda p: (calls.append(Path(p)), real(p))[1])
    return calls


def test_a_second_process_does_not_hash_files_the_first_verified(tmp_path: Path, hashed: list[Path]) -> None:
    idx, memo = _published(tmp_path), tmp_path / "cache" / "verified-files.json"
    _age(idx, 60)
    _open(idx, memo)
    n_files = len(read_manifest(idx).files)
    assert len(hashed) == n_files and memo.is_file()
    hashed.clear()
    _open(idx, memo)  # a new store: nothing in memory, the file remembers
    assert hashed == []


def test_a_file_changed_after_it_was_remembered_is_caught(tmp_path: Path) -> None:
    idx, memo = _published(tmp_path), tmp_path / "verified-files.json"
    _age(idx, 60)
    _open(idx, memo)
    victim = gen_dir(idx, read_manifest(idx).generation) / "meta.sqlite"
    data = bytearray(victim.read_bytes())
    data[200] ^= 0xFF  # same size, other bytes: only the checksum can tell
    victim.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum mismatch"):
        _open(idx, memo)


def test_files_written_just_now_are_hashed_again(tmp_path: Path, hashed: list[Path]) -> None:
    """Inside the racy window a write could keep the mtime the check saw."""
    idx, memo = _published(tmp_path), tmp_path / "verified-files.json"
    _open(idx, memo)
    first = len(hashed)
    _open(idx, memo)
    assert len(hashed) == 2 * first


@pytest.mark.parametrize("content", ["{not json", '{"files": 7}', '{"files": {"x": [1, 2]}}'])
def test_a_damaged_memo_means_hashing_again(tmp_path: Path, hashed: list[Path], content: str) -> None:
    idx, memo = _published(tmp_path), tmp_path / "verified-files.json"
    _age(idx, 60)
    memo.write_text(content)
    _open(idx, memo)
    assert len(hashed) == len(read_manifest(idx).files)
    assert len(json.loads(memo.read_text())["files"]) == len(hashed)


def test_an_unwritable_memo_only_costs_time(tmp_path: Path) -> None:
    idx = _published(tmp_path)
    _age(idx, 60)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    _open(idx, blocker / "verified-files.json")  # its folder cannot be made: still opens
