"""One behavioural suite for both stores (issue 12): the same commands and promises on
the local generational store and on Milvus.

Milvus runs as Milvus Lite in the test's temporary folder (a ``.db`` URI: the engine is
embedded in each ``qa-bot`` process), and, for the test with several processes at
once, as a ``milvus-lite server`` on a loopback port that the test starts and stops
(Milvus Lite lets one process at a time open its folder; processes share a server).
Nothing of pymilvus is mocked. The instant ``hash-bigram-256`` model embeds, except
in the integration test at the end, which runs the real default model.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli_command, cli_env, run_cli, start_cli

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "corpus" / "_posts" / "2021-12-28-NW202112282228830298.md"
HASH_MODEL = "hash-bigram-256"

POST = """---
layout: post
title: "{title}"
date: {date}
categories: emnews
---

{body}
"""

# a crash point of each store after it wrote new data and before it published it
UNPUBLISHED = {"local": "before-manifest", "milvus": "milvus-before-publish"}


def write_post(corpus: Path, name: str, title: str, body: str, date: str = "2022-07-01 09:00:00") -> str:
    p = corpus / "_posts" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(POST.format(title=title, date=date, body=body), encoding="utf-8")
    return f"_posts/{name}"


def factory_posts(corpus: Path, n: int, tag: str = "华岳") -> list[str]:
    """``n`` one-paragraph posts with distinct facts."""
    return [
        write_post(
            corpus,
            f"2022-07-{i % 28 + 1:02d}-{tag}{i:03d}.md",
            f"{tag}能源第{i}号生产基地正式投产",
            f"据公告，{tag}能源股份有限公司第{i}号生产基地正式投产，设计年产能{100 + i}万吨，"
            f"总投资{10 + i}.5亿元，预计年产值{200 + 3 * i}亿元。",
        )
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    """A corpus, an index (local folder or Milvus URI) and the env pointing at them."""

    def __init__(self, root: Path, kind: str, uri: str | None = None, *, layered: bool = False) -> None:
        self.root, self.kind, self.layered = root, kind, layered
        self.corpus = root / "corpus"
        self.env: dict[str, str | None] = {
            "QA_BOT_CORPUS_DIR": str(self.corpus),
            "QA_BOT_INDEX_DIR": str(root / "idx"),
            "QA_BOT_CACHE_DIR": str(root / "cache"),
            "QA_BOT_EMBEDDING_MODEL": HASH_MODEL,
            "QA_BOT_STORE": kind,
            "QA_BOT_MILVUS_URI": uri or str(root / "milvus.db"),
            "QA_BOT_MILVUS_PREFIX": None,
            "QA_BOT_MILVUS_TOKEN": None,
            "QA_BOT_USER_DICT": None,
            "QA_BOT_TOP_K": None,
            # "local-layered": every update of the local store is a delta over its base
            "QA_BOT_MAX_DELTA_FRACTION": "1" if layered else None,
        }

    def run(self, *args: str, env: dict[str, str | None] | None = None, input: str | None = None) -> tuple[int, str, str]:  # noqa: A002
        return run_cli(args, {**self.env, **(env or {})}, input=input, timeout=300, cwd=self.root)

    def ok_json(self, *args: str, env: dict[str, str | None] | None = None) -> dict:
        code, out, err = self.run(*args, env=env)
        assert code == 0, f"qa-bot {' '.join(args)} exited {code}\nstdout: {out}\nstderr: {err}"
        return json.loads(out)

    def update(self) -> dict:
        return self.ok_json("index", "update", "--json")

    def ask(self, *questions: str) -> list[dict]:
        code, out, err = self.run("ask", "--json", "--top-k", "5", input="\n".join(questions) + "\n")
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def paths(answer: dict) -> list[str]:
    return [s["path"] for s in answer["sources"]]


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module", params=["local", "local-layered", "milvus"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The bundled seed post plus 12 factory posts, built once per store (the local
    store twice: with full generations, and publishing every update as a delta)."""
    kind = request.param.split("-")[0]
    site = Site(tmp_path_factory.mktemp(request.param) / "site", kind, layered=request.param.endswith("layered"))
    (site.corpus / "_posts").mkdir(parents=True)
    shutil.copy(SEED, site.corpus / "_posts" / SEED.name)
    factory_posts(site.corpus, 12)
    b = site.ok_json("index", "build", "--json")
    assert b["articles"] == 13
    return site


@pytest.fixture()
def store(built: Site, tmp_path: Path) -> Site:
    """A copy of the built site (index, Milvus Lite folder and vector cache included)."""
    shutil.copytree(built.root, tmp_path / "site", symlinks=True)
    return Site(tmp_path / "site", built.kind, layered=built.layered)


# --------------------------------------------------------------------------- build, ask, change


def test_build_ask_add_edit_delete(store: Site) -> None:
    (a,) = store.ask("算力小镇投资多少")
    assert paths(a)[0] == f"_posts/{SEED.name}"
    stats = store.ok_json("index", "stats", "--json")
    assert (stats["articles"], stats["store"]) == (13, store.kind)

    new = write_post(store.corpus, "2022-08-01-new.md", "青石港三期码头开工", "青石港三期码头今日开工，总投资48.6亿元，设计吞吐量1200万吨。")
    r = store.update()
    assert (r["added"], r["changed"], r["removed"], r["published"]) == (1, 0, 0, True)
    assert r["embedded_chunks"] == 1  # only the new text
    (a,) = store.ask("青石港三期码头总投资多少")
    assert paths(a)[0] == new and "48.6亿元" in a["answer"]
    if store.layered:
        m = json.loads((store.root / "idx" / "MANIFEST.json").read_text(encoding="utf-8"))
        assert (m["format"], m["delta"]["articles"], m["delta"]["chunks"]) == (2, 1, 1)

    write_post(store.corpus, "2022-08-01-new.md", "青石港三期码头开工", "青石港三期码头今日开工，总投资52.3亿元，设计吞吐量1200万吨。")
    r = store.update()
    assert (r["added"], r["changed"], r["removed"]) == (0, 1, 0)
    (a,) = store.ask("青石港三期码头总投资多少")
    assert "52.3亿元" in a["answer"] and not any("48.6亿元" in s["text"] for s in a["sources"])

    (store.corpus / new).unlink()
    r = store.update()
    assert (r["added"], r["changed"], r["removed"]) == (0, 0, 1)
    (a,) = store.ask("青石港三期码头总投资多少")
    assert new not in paths(a)

    again = store.update()
    assert (again["published"], again["embedded_chunks"]) == (False, 0)
    code, out, err = store.run("index", "verify")
    assert code == 0, out + err


def edit_and_remove_two_built_posts(store: Site) -> tuple[Path, Path]:
    """The first factory post edited (a new total), the second deleted, then an update."""
    first, second = sorted((store.corpus / "_posts").glob("*华岳*.md"))[:2]
    first.write_text(first.read_text(encoding="utf-8").replace("总投资", "计划总投资7777亿元，原总投资"), encoding="utf-8")
    second.unlink()
    r = store.update()
    assert (r["added"], r["changed"], r["removed"]) == (0, 1, 1)
    return first, second


def test_edit_and_remove_posts_of_the_first_build(store: Site) -> None:
    """Changes to articles the build wrote (a layered store hides them in its base)."""
    first, second = edit_and_remove_two_built_posts(store)
    (a,) = store.ask("计划总投资7777亿元的是哪个生产基地")
    assert paths(a)[0] == f"_posts/{first.name}" and "7777亿元" in a["sources"][0]["text"]
    texts = [s["text"] for q in store.ask("华岳能源生产基地设计年产能多少") for s in q["sources"]]
    assert texts and not any(f"第{second.stem[-3:].lstrip('0') or '0'}号" in t for t in texts)
    stats = store.ok_json("index", "stats", "--json")
    assert (stats["articles"], stats["chunks"]) == (12, 12 + 13)  # the seed has 14 chunks
    code, out, err = store.run("index", "verify")
    assert code == 0, out + err


def test_an_edited_post_ranks_as_after_a_full_build(store: Site, request: pytest.FixtureRequest) -> None:
    """Its title question finds the edited post first, as a fresh build would.

    Milvus Lite scores BM25 with the statistics of each segment (its own TODO in
    milvus_lite/engine/collection.py; milvus-lite#293), so the one chunk an update writes,
    alone in a new segment, scores about a quarter of its neighbours' BM25 and drops out of
    the top 5; a Milvus server computes IDF over the whole collection at search time.
    Strict: when Milvus Lite fixes this, the test says so.
    """
    if store.kind == "milvus":
        request.applymarker(pytest.mark.xfail(strict=True, reason="Milvus Lite: BM25 statistics per segment"))
    first, _ = edit_and_remove_two_built_posts(store)
    title = first.read_text(encoding="utf-8").split('title: "')[1].split('"')[0]
    (a,) = store.ask(title + "计划总投资多少")
    assert paths(a)[0] == f"_posts/{first.name}" and "7777亿元" in a["sources"][0]["text"]


def test_full_build_reuses_vectors(store: Site) -> None:
    b = store.ok_json("index", "build", "--json")
    assert (b["articles"], b["embedded_chunks"]) == (13, 0)
    (a,) = store.ask("华岳能源第5号生产基地总投资多少")
    assert "15.5亿元" in a["answer"]


# --------------------------------------------------------------------------- crash safety


@pytest.mark.parametrize("point", ["after-batch", "unpublished"])
def test_kill_9_mid_update_keeps_the_published_version(store: Site, point: str) -> None:
    crash = UNPUBLISHED[store.kind] if point == "unpublished" else point
    before = store.ok_json("index", "stats", "--json")["generation"]
    added = factory_posts(store.corpus, 40, tag="青山")  # more than one embedding batch
    (store.corpus / "_posts" / SEED.name).unlink()

    code, out, err = store.run("index", "update", "--json", env={"QA_BOT_CRASH_AT": crash})
    assert code == -signal.SIGKILL, (code, out, err)

    assert store.ok_json("index", "stats", "--json")["generation"] == before
    code, out, err = store.run("index", "verify")
    assert code == 0, out + err
    new_a, old_a = store.ask("青山能源第7号生产基地设计年产能多少", "算力小镇投资多少")
    assert added[7] not in paths(new_a)  # nothing of the crashed update is visible
    assert paths(old_a)[0] == f"_posts/{SEED.name}"

    r = store.update()
    assert (r["added"], r["removed"], r["published"]) == (40, 1, True)
    assert store.ok_json("index", "stats", "--json")["articles"] == 52
    new_a, old_a = store.ask("青山能源第7号生产基地设计年产能多少", "算力小镇投资多少")
    assert paths(new_a)[0] == added[7]
    assert f"_posts/{SEED.name}" not in paths(old_a)
    code, out, err = store.run("index", "verify")
    assert code == 0, out + err


def test_an_update_with_nothing_to_write_after_a_crash_then_one_that_writes(store: Site) -> None:
    """What a killed update left stays invisible through an update that finds nothing
    to do, and is cleaned up by the next one that writes."""
    seed = (store.corpus / "_posts" / SEED.name).read_bytes()
    added = factory_posts(store.corpus, 40, tag="青山")
    (store.corpus / "_posts" / SEED.name).unlink()
    code, out, err = store.run("index", "update", "--json", env={"QA_BOT_CRASH_AT": UNPUBLISHED[store.kind]})
    assert code == -signal.SIGKILL, (code, out, err)
    for rel in added:
        (store.corpus / rel).unlink()
    (store.corpus / "_posts" / SEED.name).write_bytes(seed)

    r = store.update()
    assert (r["added"], r["changed"], r["removed"], r["published"]) == (0, 0, 0, False)
    code, out, err = store.run("index", "verify")
    assert code == 0, out + err
    (a,) = store.ask("算力小镇投资多少")
    assert paths(a)[0] == f"_posts/{SEED.name}"

    new = write_post(store.corpus, "2022-08-02-new.md", "青石港四期码头开工", "青石港四期码头今日开工，总投资61.2亿元。")
    r = store.update()
    assert (r["added"], r["removed"], r["published"]) == (1, 0, True)
    stats = store.ok_json("index", "stats", "--json")
    assert (stats["articles"], stats["chunks"]) == (14, 12 + 14 + 1)
    (a,) = store.ask("青石港四期码头总投资多少")
    assert paths(a)[0] == new
    code, out, err = store.run("index", "verify")
    assert code == 0, out + err


# --------------------------------------------------------------------------- processes


@pytest.fixture()
def shared_site(request: pytest.FixtureRequest, tmp_path: Path, store: Site) -> Iterator[Site]:
    """``store`` as several processes use it at once: the local folder as it is; for
    Milvus, the same index rebuilt on a ``milvus-lite server`` on a loopback port."""
    if store.kind == "local":
        yield store
        return
    port = free_port()
    data = tmp_path / "server.db"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("milvus-lite")), "server", "--data", str(data),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )
    try:
        site = Site(store.root, "milvus", uri=f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            code, out, err = site.run("index", "build", "--json")
            if code == 0:
                break
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, err
            time.sleep(0.5)
        yield site
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Asker:
    """A long-running ``qa-bot ask --json`` reading questions from a pipe."""

    def __init__(self, site: Site) -> None:
        self.proc = subprocess.Popen(
            [*cli_command(), "ask", "--json", "--top-k", "5"], env=cli_env(site.env), cwd=site.root,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8",
        )

    def ask(self, q: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(q + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else ""
        return json.loads(line)

    def close(self) -> str:
        """Ends the session (EOF), returns its stderr; kills it if it does not end."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read()


def test_two_readers_see_one_writers_update(shared_site: Site) -> None:
    site = shared_site
    readers = [Asker(site), Asker(site)]
    try:
        q = "白沙湾海上风电场总投资多少"
        for r in readers:
            assert "_posts/2022-09-01-wind.md" not in paths(r.ask(q))
        write_post(site.corpus, "2022-09-01-wind.md", "白沙湾海上风电场并网", "白沙湾海上风电场全容量并网发电，总投资63.8亿元，装机容量50万千瓦。")
        r = site.update()
        assert (r["added"], r["published"]) == (1, True)
        for reader in readers:  # their next question, no restart
            a = reader.ask(q)
            assert paths(a)[0] == "_posts/2022-09-01-wind.md" and "63.8亿元" in a["answer"]
    finally:
        errs = [r.close() for r in readers]
    assert [r.proc.returncode for r in readers] == [0, 0], errs
    assert all("Traceback" not in e for e in errs), errs


def test_second_writer_waits_or_exits_cleanly(shared_site: Site) -> None:
    site = shared_site
    factory_posts(site.corpus, 40, tag="青山")
    procs = [start_cli(["index", "update", "--json"], site.env, cwd=site.root) for _ in range(2)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        if p.returncode == 2:
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        else:
            assert p.returncode == 0, err
            reports.append(json.loads(out))
    assert reports
    assert sum(r["added"] for r in reports) == 40
    assert sum(r["published"] for r in reports) == 1
    code, out, err = site.run("index", "verify")
    assert code == 0, out + err


# --------------------------------------------------------------------------- failures


_MILVUS_DAMAGE = {
    # the published record, overwritten with garbage
    "record": "c.upsert('qa_bot_meta', [{'key': 'published', 'value': '{not json', 'v': [1.0, 0.0]}])",
    # the published chunks, gone
    "chunks": "c.drop_collection('qa_bot_g1_chunks')",
}


def _damage(site: Site, how: str) -> None:
    if site.kind == "local":
        target = {"record": "MANIFEST.json", "chunks": "gen-*/vectors.faiss"}[how]
        for f in (site.root / "idx").glob(target):
            f.write_bytes(b"\x00{not json" if how == "record" else f.read_bytes()[:100])
        return
    script = (
        f"from pymilvus import MilvusClient\nc = MilvusClient({str(site.root / 'milvus.db')!r})\n"
        "for n in c.list_collections(): c.load_collection(n)\n" + _MILVUS_DAMAGE[how]
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=cli_env(), capture_output=True)


@pytest.mark.parametrize("how", ["record", "chunks"])
def test_damaged_store_is_one_line_and_exit_2(store: Site, how: str) -> None:
    _damage(store, how)
    code, out, err = store.run("ask", "算力小镇投资多少")
    assert code == 2 and out == ""
    assert "qa-bot index build" in one_line(err)
    code, out, err = store.run("index", "verify")
    assert code == 1 and "Traceback" not in err
    b = store.ok_json("index", "build", "--json")
    assert b["articles"] == 13
    (a,) = store.ask("算力小镇投资多少")
    assert paths(a)[0] == f"_posts/{SEED.name}"


def test_unreachable_milvus_is_one_line_and_exit_2(tmp_path: Path) -> None:
    site = Site(tmp_path, "milvus", uri=f"http://127.0.0.1:{free_port()}")
    (site.corpus / "_posts").mkdir(parents=True)
    shutil.copy(SEED, site.corpus / "_posts" / SEED.name)
    for args in (("ask", "算力小镇投资多少"), ("index", "build"), ("index", "stats")):
        code, out, err = site.run(*args)
        assert code == 2 and out == "", (args, out, err)
        line = one_line(err)
        assert "cannot reach Milvus at http://127.0.0.1:" in line, line


def test_milvus_token_is_never_printed(tmp_path: Path) -> None:
    secret = "root:sEcReT-t0ken-value"
    site = Site(tmp_path, "milvus", uri=f"http://127.0.0.1:{free_port()}")
    code, out, err = site.run("index", "stats", env={"QA_BOT_MILVUS_TOKEN": secret, "QA_BOT_LOG_LEVEL": "DEBUG"})
    assert code == 2 and secret not in out + err and "sEcReT" not in out + err


def test_milvus_lite_open_in_another_process(store: Site) -> None:
    if store.kind != "milvus":
        pytest.skip("Milvus Lite only")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pymilvus import MilvusClient\n"
         f"MilvusClient({str(store.root / 'milvus.db')!r}).list_collections()\n"
         "print('open', flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        code, out, err = store.run("ask", "算力小镇投资多少")
        assert code == 2 and out == ""
        assert "open in another process" in one_line(err)
    finally:
        holder.kill()
        holder.wait()
    (a,) = store.ask("算力小镇投资多少")
    assert paths(a)[0] == f"_posts/{SEED.name}"


# --------------------------------------------------------------------------- done when


@pytest.mark.integration
def test_milvus_lite_answers_the_headline_question(tmp_path: Path, model_cache: Path) -> None:
    """The issue's done-when line: the bundled corpus, the real model, Milvus Lite."""
    shutil.copytree(REPO / "corpus", tmp_path / "corpus")
    env = {
        "QA_BOT_CORPUS_DIR": str(tmp_path / "corpus"),
        "QA_BOT_INDEX_DIR": str(tmp_path / "embeddings"),
        "QA_BOT_CACHE_DIR": str(model_cache),
        "QA_BOT_EMBEDDING_MODEL": None,
        "QA_BOT_STORE": "milvus",
        "QA_BOT_MILVUS_URI": "./milvus.db",
        "QA_BOT_MILVUS_PREFIX": None,
    }
    code, out, err = run_cli(["ask", "算力小镇投资多少"], env, timeout=600, cwd=tmp_path)
    assert code == 0, err
    assert "30.67亿元" in out.splitlines()[0]
    assert "【财经分析】杭州打造算力小镇" in out and "2021-12-28" in out
    assert "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202112282228830298" in out
    assert (tmp_path / "milvus.db").is_dir() and "Traceback" not in err


# --------------------------------------------------------------------------- one process


def test_open_reader_keeps_its_version(store: Site) -> None:
    """A reader answers from the version it opened while updates are published (the bot
    between two questions); a new reader sees the update. In one process: Milvus Lite."""
    import numpy as np

    from qa_bot.config import Settings
    from qa_bot.embedding import HashEmbedder
    from qa_bot.index import open_store
    from qa_bot.service import QAService

    settings = Settings(**{k: v for k, v in store.env.items() if v is not None})
    emb = HashEmbedder(dim=256)
    service = QAService(settings, embedder=emb, query_encoder=emb)
    st = open_store(settings)
    try:
        old = st.open_reader(model=emb.name, dim=emb.dim)
        before = (old.version, old.chunk_count, len(old.articles()))
        q = "青石港三期码头总投资多少"
        qv = np.asarray(emb.embed_queries([q]), dtype=np.float32)
        new = write_post(
            store.corpus, "2022-08-01-new.md", "青石港三期码头开工", "青石港三期码头今日开工，总投资48.6亿元。",
            date="2022-08-01 09:00:00",
        )
        (store.corpus / "_posts" / SEED.name).unlink()
        report, _ = service.update()
        assert (report.added, report.removed, report.published) == (1, 1, True)
        assert st.published_version() not in (None, before[0])

        assert (old.version, old.chunk_count, len(old.articles())) == before
        assert all(c.article_path != new for c, _ in old.dense_search(qv, 20)[0])
        assert all(c.article_path != new for c, _ in old.lexical_search(q, 20))
        seed = [c.chunk_id for c in old.all_chunks() if c.article_path == f"_posts/{SEED.name}"]
        assert seed and set(old.sentence_vectors(seed)) == set(seed)
        assert len(old.chunks_by_ids(seed)) == len(seed)

        with st.open_reader(model=emb.name, dim=emb.dim) as fresh:
            assert fresh.version == st.published_version()
            assert fresh.lexical_search(q, 5)[0][0].article_path == new
            assert not fresh.chunks_by_ids(seed) and not fresh.sentence_vectors(seed)
            assert [a.path for a in fresh.latest_articles(1)] == [new]
        old.close()
    finally:
        if store.kind == "milvus":
            st.close()  # type: ignore[attr-defined]  # the Lite folder, for later processes
