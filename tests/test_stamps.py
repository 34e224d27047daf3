"""File stamps: an incremental update reads only posts whose size or mtime changed
since the published version (real files, real index, HashEmbedder)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_service import SEED, write_post

from qa_bot.config import Settings
from qa_bot.embedding import HashEmbedder
from qa_bot.ingest import scan_corpus
from qa_bot.ingest.stamps import RACY_SECONDS, STAMPS_NAME, FileStamp
from qa_bot.service import QAService

HOUR_NS = 3600 * 10**9


def age(path: Path, seconds: float = 3600) -> None:
    """Date a file back, as a post written long before the update is."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def disguise(path: Path, text: str) -> None:
    """Replace a file's bytes with others of the same size, keeping its mtime."""
    st = path.stat()
    data = text.encode("utf-8")
    data = (data * (st.st_size // len(data) + 1))[: st.st_size]
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture()
def site(tmp_path: Path) -> tuple[QAService, Path]:
    corpus = tmp_path / "corpus"
    (corpus / "_posts").mkdir(parents=True)
    (corpus / "_posts" / SEED.name).write_bytes(SEED.read_bytes())
    write_post(corpus, "2021-12-08-1.md", "离岸人民币兑美元升至2018年以来最高水平", "离岸人民币兑美元升至6.3512，为2018年以来最高水平。")
    for p in (corpus / "_posts").iterdir():
        age(p)
    s = Settings(QA_BOT_CORPUS_DIR=corpus, QA_BOT_INDEX_DIR=tmp_path / "idx", QA_BOT_READER="off")
    emb = HashEmbedder(dim=64)
    svc = QAService(s, embedder=emb, query_encoder=emb)
    svc.update(full=True)
    return svc, corpus


def test_scan_reads_only_files_whose_stamp_differs(tmp_path: Path) -> None:
    a = write_post(tmp_path, "2022-01-01-a.md", "甲", "第一篇。")
    b = write_post(tmp_path, "2022-01-02-b.md", "乙", "第二篇。")
    sa, sb = a.stat(), b.stat()
    stamps = {
        "_posts/2022-01-01-a.md": FileStamp(sa.st_size, sa.st_mtime_ns, "h-a", 1),
        "_posts/2022-01-02-b.md": FileStamp(sb.st_size, sb.st_mtime_ns - HOUR_NS, "h-b", 1),
    }
    disguise(a, "not a post at all")  # same size and mtime: not read, so not noticed
    scan = scan_corpus(tmp_path, stamps=stamps)
    assert set(scan.unchanged) == {"_posts/2022-01-01-a.md"}
    assert [x.path for x in scan.articles] == ["_posts/2022-01-02-b.md"]
    assert set(scan.stats) == {"_posts/2022-01-02-b.md"}
    assert [x.path for x in scan_corpus(tmp_path).articles] == ["_posts/2022-01-02-b.md"]
    assert [s.path for s in scan_corpus(tmp_path).skipped] == ["_posts/2022-01-01-a.md"]  # read: broken


def test_a_touched_but_unchanged_file_is_not_parsed(tmp_path: Path) -> None:
    from qa_bot.ingest import file_hash

    a = write_post(tmp_path, "2022-01-01-a.md", "甲", "第一篇。")
    st = a.stat()
    stamps = {"_posts/2022-01-01-a.md": FileStamp(st.st_size, st.st_mtime_ns - HOUR_NS, file_hash(a.read_bytes()), 1)}
    scan = scan_corpus(tmp_path, stamps=stamps)  # a checkout rewrote it with the same bytes
    assert scan.articles == [] and scan.unchanged["_posts/2022-01-01-a.md"].mtime_ns == st.st_mtime_ns
    a.write_text(a.read_text(encoding="utf-8").replace("第一篇", "第二篇"), encoding="utf-8")
    assert [x.path for x in scan_corpus(tmp_path, stamps=stamps).articles] == ["_posts/2022-01-01-a.md"]


def test_update_reads_new_and_edited_posts_only(site: tuple[QAService, Path]) -> None:
    svc, corpus = site
    seed = corpus / "_posts" / SEED.name
    other = corpus / "_posts" / "2021-12-08-1.md"
    disguise(seed, "乱码")  # unchanged stamp: this update does not read it
    write_post(corpus, "2022-01-05-new.md", "印度央行维持利率不变", "印度央行将关键利率维持在4.00%不变。")
    other.write_text(other.read_text(encoding="utf-8").replace("6.3512", "6.3600"), encoding="utf-8")
    report, skipped = svc.update()
    assert skipped == []
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 0, 1)
    assert report.total_articles == 3 and report.published
    assert "30.67亿元" in (svc.ask("算力小镇投资多少").answer or "")  # still the indexed text
    # a full build reads every file: the disguised one is now a broken post
    report, skipped = svc.update(full=True, allow_shrink=True)
    assert [s.path for s in skipped] == [f"_posts/{SEED.name}"] and report.removed == 1


def test_removed_posts_are_removed(site: tuple[QAService, Path]) -> None:
    svc, corpus = site
    (corpus / "_posts" / "2021-12-08-1.md").unlink()
    report, _ = svc.update(allow_shrink=True)
    assert (report.removed, report.unchanged, report.total_articles) == (1, 1, 1)
    assert report.total_chunks == svc.stats().chunks


def test_fresh_files_are_not_stamped(site: tuple[QAService, Path]) -> None:
    svc, corpus = site
    write_post(corpus, "2022-01-05-new.md", "新文章", "刚写好的内容。")
    svc.update()
    files = json.loads((svc.settings.index_dir / STAMPS_NAME).read_text(encoding="utf-8"))["files"]
    # written less than RACY_SECONDS before the scan: its mtime may still change unseen
    assert "_posts/2022-01-05-new.md" not in files and f"_posts/{SEED.name}" in files
    assert RACY_SECONDS >= 1
    # so the next update reads it again, and finds it unchanged
    report, _ = svc.update()
    assert not report.published and report.unchanged == 3


def test_stamps_of_another_version_are_ignored(site: tuple[QAService, Path]) -> None:
    svc, corpus = site
    path = svc.settings.index_dir / STAMPS_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["version"] = "000000-other"
    path.write_text(json.dumps(raw), encoding="utf-8")
    disguise(corpus / "_posts" / SEED.name, "乱码")
    report, skipped = svc.update(allow_shrink=True)
    assert [s.path for s in skipped] == [f"_posts/{SEED.name}"] and report.removed == 1
