"""The index package surface and the Store interface, on the local store (real FAISS,
SQLite, BM25 files in a temp folder; HashEmbedder vectors, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from api_helpers import assert_all_is_exact
from test_index import CountingEmbedder, make_article

from qa_bot.config import Settings
from qa_bot.index import (
    CachedVectors,
    IndexOutdated,
    LocalStore,
    SearchArtifacts,
    ShrinkRefused,
    StaleChanges,
    Store,
    StoreReader,
    StoreUnavailable,
    open_store,
    update_store,
)
from qa_bot.index.changes import build_change_set, diff_articles, validate_corpus
from qa_bot.types import Article, Chunk

NEWS = {
    "_posts/a.md": ("杭州打造算力小镇", ["中国(杭州)算力小镇位于杭州市临平区，占地面积138亩。", "该小镇计划于2021-2023年内投资约30.67亿元。其中特色产业项目投资占比100%。"], "2021-12-28T19:27:59+08:00"),
    "_posts/b.md": ("离岸人民币兑美元升至2018年以来最高水平", ["离岸人民币兑美元升至6.3512，为2018年以来最高水平。"], "2021-12-08T10:46:18+08:00"),
    "_posts/c.md": ("印度央行维持利率不变", ["印度央行将关键利率维持在4.00%不变，符合市场预期。"], "2022-01-02T09:00:00+08:00"),
}


def corpus(docs: dict[str, tuple[str, list[str], str]] = NEWS) -> tuple[list[Article], list[Chunk]]:
    arts: list[Article] = []
    chunks: list[Chunk] = []
    for path, (title, paras, date) in docs.items():
        a, cs = make_article(path, title, paras, date)
        arts.append(a)
        chunks.extend(cs)
    return arts, chunks


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "idx", artifacts=SearchArtifacts())


def test_index_public_api_is_exactly_all() -> None:
    import qa_bot.index as package

    assert_all_is_exact(package)


def test_local_store_and_reader_implement_the_protocols(store: LocalStore) -> None:
    emb = CountingEmbedder()
    update_store(store, *corpus(), emb, layout_version="L1")
    assert isinstance(store, Store) and store.kind == "local"
    with store.open_reader(model=emb.name, dim=emb.dim, layout_version="L1") as reader:
        assert isinstance(reader, StoreReader)
        assert reader.version == store.published_version() and reader.layout_version == "L1"


def test_reader_answers_through_the_interface(store: LocalStore) -> None:
    emb = CountingEmbedder()
    rep = update_store(store, *corpus(), emb, layout_version="L1")
    assert rep.published and rep.total_chunks == 4 and rep.embedded_chunks == 4
    with store.open_reader(model=emb.name, dim=emb.dim) as reader:
        assert reader.chunk_count == 4
        lex = reader.lexical_search("算力小镇投资多少", 10)
        assert lex and lex[0][0].article_path == "_posts/a.md"
        assert [s for _, s in lex] == sorted((s for _, s in lex), reverse=True)
        assert reader.lexical_search("比特币", 10) == []
        q = emb.embed_passages(["印度央行维持利率不变\n印度央行将关键利率维持在4.00%不变，符合市场预期。"])
        assert reader.dense_search(q, 1)[0][0][0].article_path == "_posts/c.md"
        sents = reader.sentence_vectors(["_posts/a.md#1", "nope"])
        assert set(sents) == {"_posts/a.md#1"}
        assert len(sents["_posts/a.md#1"].spans) == 2 and sents["_posts/a.md#1"].vectors.shape == (2, emb.dim)
        assert [a.path for a in reader.latest_articles(2)] == ["_posts/c.md", "_posts/a.md"]
        assert [a.path for a in reader.articles()] == sorted(NEWS)
        assert [c.chunk_id for c in reader.all_chunks()][:2] == ["_posts/a.md#0", "_posts/a.md#1"]
        assert "算力小镇" in "".join(reader.tokenizer.words("算力小镇投资多少"))
    st = store.stats()
    assert (st.kind, st.articles, st.chunks, st.layout_version) == ("local", 3, 4, "L1")
    assert st.to_json()["generation"] == st.version and store.verify() == []


def test_another_layout_is_refused_before_its_files_are_read(store: LocalStore) -> None:
    update_store(store, *corpus(), CountingEmbedder(), layout_version="L1")
    with pytest.raises(IndexOutdated):
        store.open_reader(layout_version="L2")


def test_change_set_carries_only_what_changed(store: LocalStore) -> None:
    emb = CountingEmbedder()
    update_store(store, *corpus(), emb, layout_version="L1")
    built = len(emb.embedded)  # chunks and sentences
    docs = dict(NEWS)
    docs["_posts/d.md"] = ("新文章", ["一段新的内容。"], "2022-02-01T09:00:00+08:00")
    del docs["_posts/b.md"]
    docs["_posts/c.md"] = (NEWS["_posts/c.md"][0], ["印度央行宣布降息。"], NEWS["_posts/c.md"][2])
    corp = validate_corpus(*corpus(docs))
    with store.writer_lock(5):
        state = store.current_state()
        diff = diff_articles(corp, state.signatures)
        with CachedVectors(store.vector_cache_path(), emb) as source:
            cs = build_change_set(corp, diff, state, emb, source, full=False, layout_version="L1")
    assert [d.article.path for d in cs.added] == ["_posts/d.md"]
    assert [d.article.path for d in cs.changed] == ["_posts/c.md"]
    assert cs.removed == ("_posts/b.md",) and cs.unchanged == ("_posts/a.md",) and cs.kept == ()
    assert cs.base_version == store.published_version() and cs.total_chunks == 4
    for d in (*cs.added, *cs.changed):
        assert d.vectors.shape == (len(d.chunks), emb.dim)
        assert np.allclose(np.linalg.norm(d.vectors, axis=1), 1.0, atol=1e-5)
    assert len(emb.embedded) == built + 2  # only the two new chunk texts


def test_a_change_set_of_a_superseded_version_is_refused(store: LocalStore) -> None:
    emb = CountingEmbedder()
    update_store(store, *corpus(), emb, layout_version="L1")
    docs = {**NEWS, "_posts/d.md": ("新文章", ["一段新的内容。"], "2022-02-01T09:00:00+08:00")}
    corp = validate_corpus(*corpus(docs))
    state = store.current_state()
    with CachedVectors(store.vector_cache_path(), emb) as source:
        stale = build_change_set(
            corp, diff_articles(corp, state.signatures), state, emb, source, full=False, layout_version="L1"
        )
        published = update_store(store, *corpus(docs), emb, layout_version="L1").generation
        with pytest.raises(StaleChanges):
            store.apply(stale, source)
    assert store.published_version() == published


def test_apply_refuses_a_shrink_itself(store: LocalStore) -> None:
    emb = CountingEmbedder()
    update_store(store, *corpus(), emb, layout_version="L1")
    one = validate_corpus(*corpus({"_posts/a.md": NEWS["_posts/a.md"]}))
    before = store.published_version()
    with store.writer_lock(5), CachedVectors(store.vector_cache_path(), emb) as source:
        state = store.current_state()
        cs = build_change_set(one, diff_articles(one, state.signatures), state, emb, source, full=False, layout_version="L1")
        with pytest.raises(ShrinkRefused):
            store.apply(cs, source, max_shrink_fraction=0.5, lock_timeout=0)  # re-entrant: no wait
        assert store.apply(cs, source, allow_shrink=True, lock_timeout=0).published
    assert store.published_version() != before and store.stats().articles == 1


def test_open_store_chooses_by_setting(tmp_path: Path) -> None:
    local = open_store(Settings(index_dir=tmp_path / "idx", store="local"))
    assert isinstance(local, LocalStore) and local.location == str(tmp_path / "idx")
    assert local.published_version() is None
    try:
        milvus = open_store(Settings(index_dir=tmp_path / "idx", store="milvus"))
    except StoreUnavailable as e:  # an installation without the Milvus store
        assert "QA_BOT_STORE=milvus" in str(e) and "\n" not in str(e)
    else:
        assert milvus.kind == "milvus"


def test_unknown_store_setting_lists_the_choices(tmp_path: Path) -> None:
    from conftest import run_cli

    code, out, err = run_cli(["index", "stats"], env={"QA_BOT_STORE": "faiss"}, cwd=tmp_path)
    assert code == 2 and out == ""
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert "QA_BOT_STORE" in line and "'local'" in line and "'milvus'" in line


def test_unchanged_chunks_keep_their_sentence_rows_without_the_cache(store: LocalStore) -> None:
    emb = CountingEmbedder()
    update_store(store, *corpus(), emb, layout_version="L1")
    with store.open_reader() as reader:
        before = reader.sentence_vectors(["_posts/a.md#1"])["_posts/a.md#1"]
        before = (before.spans, np.array(before.vectors))
    for p in store.index_dir.glob(f"{store.vector_cache_path().name}*"):
        p.unlink()  # whatever an update needs of unchanged chunks, it must not be the cache
    docs = {**NEWS, "_posts/d.md": ("新文章", ["第一句。第二句。"], "2022-02-01T09:00:00+08:00")}
    emb.embedded.clear()
    rep = update_store(store, *corpus(docs), emb, layout_version="L1")
    assert rep.published and not rep.rebuilt
    assert sorted(emb.embedded) == sorted(["新文章\n第一句。第二句。", "第一句。", "第二句。"])
    with store.open_reader() as reader:
        after = reader.sentence_vectors(["_posts/a.md#1", "_posts/d.md#0"])
        assert after["_posts/a.md#1"].spans == before[0]
        assert np.array_equal(np.array(after["_posts/a.md#1"].vectors), before[1])
        assert len(after["_posts/d.md#0"].spans) == 2
