"""Hostile posts (issue 11): one file never stops an update, and a collapse is never
published by accident.

Small hostile files are checked in under ``tests/data/hostile/``; big, sparse,
FIFO, symlink and undecodable-name cases are made in tmp dirs. The CLI tests run
``qa-bot`` in subprocesses with the instant ``hash-bigram-256`` test embedder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import SHARED_DIR
from test_updates_cli import HASH_MODEL, Site, one_error_line, write_post

from qa_bot.chunking import chunk_article
from qa_bot.ingest import (
    CorpusError,
    IngestLimits,
    PostError,
    display_path,
    load_corpus,
    parse_bytes,
)

HOSTILE = Path(__file__).parent / "data" / "hostile"
FINEWS = SHARED_DIR / "corpus-sample" / "finews"
FM = "---\ntitle: 标题\ndate: 2022-06-01 10:00:00 +0800\n---\n"
GOOD = FM + "一段正常的正文，说明这个文件夹里还有能读的帖子。\n"
# each checked-in hostile post and a word of the reason it must be skipped with
HOSTILE_REASONS = {
    "2022-06-01-deep-div.md": "QA_BOT_MAX_NESTING_DEPTH",
    "2022-06-01-yaml-bomb.md": "QA_BOT_MAX_FRONT_MATTER_CHARS",
    "2022-06-01-yaml-recursive.md": "alias",
    "2022-06-01-yaml-deep.md": "QA_BOT_MAX_NESTING_DEPTH",
    "2022-06-01-formatting-flood.md": "QA_BOT_MAX_HTML_TAGS",
    "2022-06-01-many-attributes.md": "attributes",
    "2022-06-01-surrogate-title.md": "YAML",
    "2022-06-01-no-front-matter.md": "no front matter",
    "2022-06-01-empty-body.md": "empty body",
    "2022-06-01-latin1.md": "not UTF-8",
}
HOSTILE_GOOD = {"2022-06-01-good.md", "2022-06-01-ansi-title.md"}


def corpus_with(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    root = tmp_path / "corpus"
    root.mkdir(exist_ok=True)
    (root / "2022-06-01-good.md").write_text(GOOD, encoding="utf-8")
    for name, data in files.items():
        p = root / name
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data, encoding="utf-8")
    return root


def skip_reasons(root: Path, limits: IngestLimits | None = None) -> dict[str, str]:
    t0 = time.monotonic()
    articles, skipped = load_corpus(root, limits or IngestLimits())
    assert time.monotonic() - t0 < 30, "ingest took too long"
    assert "2022-06-01-good.md" in [a.path for a in articles]  # the rest is still read
    assert len({s.path for s in skipped}) == len(skipped)  # one line per skipped file
    return {s.path: s.reason for s in skipped}


# --------------------------------------------------------------------------- the checked-in corpus


def test_checked_in_hostile_corpus_is_skipped_with_reasons() -> None:
    articles, skipped = load_corpus(HOSTILE, IngestLimits())
    assert {a.path for a in articles} == HOSTILE_GOOD
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == set(HOSTILE_REASONS)
    for name, word in HOSTILE_REASONS.items():
        assert word in reasons[name], (name, reasons[name])
    ansi = next(a for a in articles if a.path == "2022-06-01-ansi-title.md")
    assert ansi.title == "红色 [31m标题" and "\x1b" not in ansi.title


def test_deep_nesting_under_the_limit_is_read_without_recursion() -> None:
    data = (HOSTILE / "2022-06-01-deep-div.md").read_bytes()
    art = parse_bytes(data, "deep.md", IngestLimits(max_nesting_depth=5000))
    assert art.paragraphs == ("嵌套的正文。",)


def test_yaml_bomb_is_refused_fast_and_small() -> None:
    data = (HOSTILE / "2022-06-01-yaml-bomb.md").read_bytes()
    t0 = time.monotonic()
    with pytest.raises(PostError, match="aliases"):
        parse_bytes(data, "bomb.md")
    assert time.monotonic() - t0 < 1
    # a few aliases within the budget are legal YAML and stay usable
    ok = "---\nt: &t 标题\ntitle: *t\ntags: &g [a, b]\ncategories: *g\n---\n正文。\n"
    art = parse_bytes(ok.encode(), "ok.md")
    assert (art.title, art.categories) == ("标题", ("a", "b"))


# --------------------------------------------------------------------------- sizes and time


def test_big_and_sparse_files_are_skipped_unread(tmp_path: Path) -> None:
    root = corpus_with(tmp_path, {})
    with open(root / "2022-01-05-long.md", "w", encoding="utf-8") as f:
        f.write(FM + "字" * (20 * 1024 * 1024 // 3) + "\n")  # 20 MB, no punctuation
    with open(root / "2022-01-07-sparse.md", "wb") as f:
        f.write(FM.encode())
        f.truncate(8 * 1024**3)  # 8 GB, sparse: reading it whole would need 8 GB
    reasons = skip_reasons(root)
    assert "QA_BOT_MAX_POST_BYTES" in reasons["2022-01-05-long.md"]
    assert "QA_BOT_MAX_POST_BYTES" in reasons["2022-01-07-sparse.md"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("**a " * 220_000, "QA_BOT_MAX_POST_CHUNKS"),  # the strong-emphasis rule was quadratic
        ("__a " * 220_000, "QA_BOT_MAX_POST_CHUNKS"),
        ("[a](" * 200_000, "QA_BOT_MAX_POST_CHUNKS"),  # so was the link rule
        ("![ " * 250_000, "QA_BOT_MAX_POST_CHUNKS"),
        ("(文章来源：x" * 60_000 + ")", "QA_BOT_MAX_POST_CHUNKS"),  # and the source rule
        ("字" * 300_000, "QA_BOT_MAX_POST_CHUNKS"),  # chunking a line without punctuation
        ("中" + " \n\x0b" * 250_000 + "文", None),  # soft-wrap joining
        ("# x" + " " * 900_000 + "y", None),  # the heading rule
        ("第一段。\n\n" * 3000, "QA_BOT_MAX_POST_PARAGRAPHS"),
        ("> 摘要\n\n" * 1500 + "正文" * 100_000, "QA_BOT_MAX_POST_CHUNKS"),
        ("<a " * 300_000, "QA_BOT_MAX_HTML_TAGS"),
    ],
)
def test_pathological_lines_take_linear_time(body: str, reason: str | None) -> None:
    data = (FM + body + "\n").encode()
    assert len(data) <= IngestLimits().max_post_bytes
    t0 = time.monotonic()
    if reason is None:
        parse_bytes(data, "x.md")
    else:
        with pytest.raises(PostError, match=reason):
            parse_bytes(data, "x.md")
    assert time.monotonic() - t0 < 10


def test_html_parser_is_never_given_quadratic_markup() -> None:
    attrs = "<div " + " ".join(f"a{i}" for i in range(100_000)) + ">x</div>"  # 18 s in lexbor
    t0 = time.monotonic()
    with pytest.raises(PostError, match="attributes"):
        parse_bytes((FM + attrs).encode(), "x.md")
    nested = "<div>" * 100_000  # 24 s in lexbor
    with pytest.raises(PostError, match="QA_BOT_MAX_HTML_TAGS"):
        parse_bytes((FM + nested).encode(), "x.md")
    assert time.monotonic() - t0 < 5


def test_time_limit_per_post() -> None:
    data = (FM + "正文一句。\n" * 50_000).encode()
    with pytest.raises(PostError, match="QA_BOT_MAX_POST_SECONDS"):
        parse_bytes(data, "slow.md", IngestLimits(max_post_seconds=1e-6))


def test_limits_come_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = corpus_with(tmp_path, {"2022-06-02-big.md": FM + "大" * 2000 + "\n"})
    monkeypatch.setenv("QA_BOT_MAX_POST_BYTES", "1000")
    from qa_bot.config import Settings

    _, skipped = load_corpus(root, Settings(_env_file=None).ingest_limits())
    assert [(s.path, "QA_BOT_MAX_POST_BYTES" in s.reason) for s in skipped] == [
        ("2022-06-02-big.md", True)
    ]


def test_passage_cap_matches_the_chunker() -> None:
    body = "。".join(["长句子" * 100] * 200)
    art = parse_bytes((FM + body).encode(), "x.md", IngestLimits(max_post_chunks=10_000))
    n = len(chunk_article(art))
    parse_bytes((FM + body).encode(), "x.md", IngestLimits(max_post_chunks=n))
    with pytest.raises(PostError, match="QA_BOT_MAX_POST_CHUNKS"):
        parse_bytes((FM + body).encode(), "x.md", IngestLimits(max_post_chunks=n - 1))


# --------------------------------------------------------------------------- any exception is a skip


@pytest.mark.parametrize("exc", [RecursionError("deep"), MemoryError(), KeyError("bug")])
def test_any_exception_of_one_post_is_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    import qa_bot.ingest as ingest

    root = corpus_with(tmp_path, {"2022-06-02-boom.md": FM + "炸。\n"})
    real = ingest.parse_bytes

    def flaky(data: bytes, rel: str, limits: IngestLimits | None = None):  # type: ignore[no-untyped-def]
        if "boom" in rel:
            raise exc
        return real(data, rel, limits)

    monkeypatch.setattr(ingest, "parse_bytes", flaky)
    reasons = skip_reasons(root)
    assert list(reasons) == ["2022-06-02-boom.md"] and reasons["2022-06-02-boom.md"]


def test_every_post_unreadable_is_a_corpus_error(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    for name in HOSTILE_REASONS:
        shutil.copy(HOSTILE / name, root / name)
    with pytest.raises(CorpusError, match=f"none of the {len(HOSTILE_REASONS)} posts"):
        load_corpus(root)


# --------------------------------------------------------------------------- files and names


def test_symlinks_and_special_files(tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(GOOD, encoding="utf-8")
    root = corpus_with(tmp_path, {})
    (root / "sub").mkdir()
    os.symlink(outside, root / "2022-01-08-outside.md")
    os.symlink("/etc/passwd", root / "2022-01-08-passwd.md")
    os.symlink(root / "nowhere.md", root / "2022-01-09-dangling.md")
    os.symlink(root / "2022-01-10-loop.md", root / "2022-01-10-loop.md")
    os.symlink("../2022-06-01-good.md", root / "sub" / "2022-01-12-inside.md")
    os.symlink(tmp_path, root / "linked-dir")  # a folder link is never descended
    os.mkfifo(root / "2022-01-11-fifo.md")
    (root / "2022-01-13-folder.md").mkdir()
    try:
        os.mknod(root / "2022-01-14-device.md", 0o600 | 0o020000, os.makedev(1, 3))
        device = True
    except (PermissionError, AttributeError, OSError):
        device = False
    articles, skipped = load_corpus(root, IngestLimits())
    assert [a.path for a in articles] == ["2022-06-01-good.md", "sub/2022-01-12-inside.md"]
    reasons = {s.path: s.reason for s in skipped}
    assert "outside the corpus" in reasons.pop("2022-01-08-outside.md")
    assert "outside the corpus" in reasons.pop("2022-01-08-passwd.md")
    assert "dangling" in reasons.pop("2022-01-09-dangling.md")
    assert "loop" in reasons.pop("2022-01-10-loop.md")
    assert "FIFO" in reasons.pop("2022-01-11-fifo.md")
    if device:
        assert "device" in reasons.pop("2022-01-14-device.md")
    assert reasons == {}


def test_file_names_are_shown_escaped_and_bad_ones_skipped(tmp_path: Path) -> None:
    undecodable = os.fsdecode(b"2022-01-06-bad\xff\xfe.md")
    root = corpus_with(
        tmp_path,
        {undecodable: GOOD, "2022-01-02-nl\nx\x1b[31m.md": GOOD, "2022-01-03-中文名.md": GOOD},
    )
    articles, skipped = load_corpus(root, IngestLimits())
    assert "2022-01-03-中文名.md" in [a.path for a in articles]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons == {
        "2022-01-02-nl\\x0ax\\x1b[31m.md": "file name contains control characters",
        "2022-01-06-bad\\xff\\xfe.md": "file name is not valid UTF-8",
    }
    for path in reasons:
        assert path.isprintable()
        json.dumps(path).encode("utf-8")


def test_display_path() -> None:
    assert display_path("_posts/2022-01-01-a.md") == "_posts/2022-01-01-a.md"
    assert display_path("a\\b\u202e.md") == "a\\\\b\\u202e.md"


# --------------------------------------------------------------------------- through the CLI


def hash_site(root: Path) -> Site:
    site = Site(root / "site", HASH_MODEL, root / "cache")
    site.corpus.mkdir(parents=True)
    return site


def add_hostile_files(corpus: Path) -> dict[str, str]:
    """One hostile file of each kind made here (too big or too odd to check in),
    plus the checked-in ones; returns shown name → a word of the expected reason."""
    expected = dict(HOSTILE_REASONS)
    for name in HOSTILE_REASONS:
        shutil.copy(HOSTILE / name, corpus / name)
    shutil.copy(HOSTILE / "2022-06-01-ansi-title.md", corpus / "2022-06-01-ansi-title.md")
    (corpus / os.fsdecode(b"2022-01-06-bad\xff\xfe.md")).write_text(GOOD, encoding="utf-8")
    expected["2022-01-06-bad\\xff\\xfe.md"] = "UTF-8"
    (corpus / "2022-01-02-nl\nx\x1b[31m.md").write_text(GOOD, encoding="utf-8")
    expected["2022-01-02-nl\\x0ax\\x1b[31m.md"] = "control characters"
    (corpus / "2022-01-04-strong.md").write_text(FM + "**a " * 250_000 + "\n", encoding="utf-8")
    expected["2022-01-04-strong.md"] = "QA_BOT_MAX_POST_CHUNKS"
    with open(corpus / "2022-01-05-long.md", "w", encoding="utf-8") as f:
        f.write(FM + "字" * (50 * 1024 * 1024 // 3) + "\n")
    expected["2022-01-05-long.md"] = "QA_BOT_MAX_POST_BYTES"
    with open(corpus / "2022-01-07-sparse.md", "wb") as f:
        f.write(FM.encode())
        f.truncate(8 * 1024**3)
    expected["2022-01-07-sparse.md"] = "QA_BOT_MAX_POST_BYTES"
    os.symlink("/etc/passwd", corpus / "2022-01-08-outside.md")
    expected["2022-01-08-outside.md"] = "outside the corpus"
    os.symlink(corpus / "nowhere", corpus / "2022-01-09-dangling.md")
    expected["2022-01-09-dangling.md"] = "dangling"
    os.symlink(corpus / "2022-01-10-loop.md", corpus / "2022-01-10-loop.md")
    expected["2022-01-10-loop.md"] = "loop"
    os.mkfifo(corpus / "2022-01-11-fifo.md")
    expected["2022-01-11-fifo.md"] = "FIFO"
    return expected


def check_skip_lines(err: str, expected: dict[str, str]) -> None:
    """Each hostile file named on exactly one stderr line, with its reason; no traceback."""
    assert "Traceback" not in err, err
    for name, word in expected.items():
        lines = [line for line in err.splitlines() if name in line]
        assert len(lines) == 1, (name, lines)
        assert word in lines[0], (name, lines[0])
    assert "\x1b" not in err


def test_hostile_corpus_builds_and_updates_through_the_cli(tmp_path: Path) -> None:
    site = hash_site(tmp_path)
    for name in [*HOSTILE_REASONS, *HOSTILE_GOOD]:
        shutil.copy(HOSTILE / name, site.corpus / name)
    code, out, err = site.run("index", "build")
    assert code == 0, err
    check_skip_lines(err, HOSTILE_REASONS)
    assert "built index: 2 articles" in out
    write_post(site.corpus, "2022-06-02-202206022400000009.md", "新帖", ["蓝鲸科技宣布年产能达到9万吨。"])
    u = site.update()
    assert (u["added"], u["published"]) == (1, True)
    assert {s["path"] for s in u["skipped"]} == set(HOSTILE_REASONS)
    a = site.ask_many(["蓝鲸科技年产能多少"])[0]
    assert a["sources"][0]["path"] == "2022-06-02-202206022400000009.md"


def test_shrink_guard_refuses_a_collapse(tmp_path: Path) -> None:
    site = hash_site(tmp_path)
    for i in range(10):
        write_post(site.corpus, f"2022-06-02-20220602240000010{i}.md", f"帖子{i}", [f"第{i}家公司的消息。"])
    site.ok_json("index", "build", "--json")
    gen = site.generation()
    posts = sorted(site.corpus.iterdir())
    for p in posts[:6]:  # 60% gone: a broken pull, not an editor
        p.write_text("no front matter any more\n", encoding="utf-8")
    code, out, err = site.run("index", "update")
    assert code == 2 and out == ""
    assert "--allow-shrink" in one_error_line(err) and "10" in err and "4 articles" in err
    assert site.generation() == gen  # the published index keeps answering
    assert site.ask_many(["第1家公司"])[0]["sources"]
    u = site.ok_json("index", "update", "--json", "--allow-shrink")
    assert u["published"] and u["removed"] == 6 and len(u["skipped"]) == 6
    # every post unreadable: refused even with --allow-shrink, the index still answers
    for p in posts:
        p.write_text("no front matter any more\n", encoding="utf-8")
    for flag in ([], ["--allow-shrink"]):
        code, out, err = site.run("index", "update", *flag)
        assert code == 2 and "none of the 10 posts" in one_error_line(err)
    assert site.ask_many(["第7家公司"])[0]["sources"]


def test_shrink_fraction_is_a_setting(tmp_path: Path) -> None:
    site = hash_site(tmp_path)
    for i in range(10):
        write_post(site.corpus, f"2022-06-02-20220602240000020{i}.md", f"帖子{i}", [f"第{i}家公司的消息。"])
    site.ok_json("index", "build", "--json")
    for p in sorted(site.corpus.iterdir())[:2]:
        p.unlink()
    code, _, err = site.run("index", "update", env={"QA_BOT_MAX_SHRINK_FRACTION": "0.1"})
    assert code == 2 and "QA_BOT_MAX_SHRINK_FRACTION" in one_error_line(err)
    assert site.update()["removed"] == 2  # 20% is within the default


@pytest.mark.shared
def test_finews_update_with_one_hostile_file_of_each_kind(tmp_path: Path) -> None:
    """The issue's "done when", with the test embedder (the real model: see the report)."""
    if not FINEWS.is_dir():
        pytest.skip("../shared/corpus-sample/finews not available")
    site = Site(tmp_path / "site", HASH_MODEL, tmp_path / "cache")
    shutil.copytree(FINEWS, site.corpus)
    assert site.ok_json("index", "build", "--json")["articles"] == 106
    expected = add_hostile_files(site.corpus)
    write_post(
        site.corpus,
        "2022-06-02-202206022400000042.md",
        "澜沧储能签约建设液流电池工厂 总投资27亿元",
        ["澜沧储能科技6月2日与普洱市签约，建设液流电池储能装备工厂，项目总投资27亿元，预计2024年投产。"],
    )
    t0 = time.monotonic()
    code, out, err = site.run("index", "update")
    assert code == 0, err
    assert time.monotonic() - t0 < 120
    check_skip_lines(err, expected)
    assert out.startswith("updated: +2 ")  # the good new post and the one with an ANSI title
    a = site.ask_many(["澜沧储能项目总投资多少"])[0]
    assert a["sources"][0]["path"] == "2022-06-02-202206022400000042.md"
