"""Layered generations of the local store (issue 12 item 7): an update of a few posts
publishes delta/ over hard links to the base's files, and reads like a full rewrite.
HashEmbedder only; the behavioural suite also runs on layered updates
(test_store_contract.py, "local-layered")."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_index import Corpus

from qa_bot.embedding import HashEmbedder
from qa_bot.index import IndexCorrupt, LocalStore, SearchArtifacts, update_store, verify_index
from qa_bot.index import checksums as checksums_mod
from qa_bot.index.generations import gen_dir, read_manifest


def _corpus(n: int) -> Corpus:
    c = Corpus()
    for i in range(n):
        c.add(f"_posts/2022-01-{i % 28 + 1:02d}-a{i:03d}.md", seed=i + 1, day=i % 28 + 1)
    return c


def _store(idx: Path, fraction: float) -> LocalStore:
    return LocalStore(idx, artifacts=SearchArtifacts(), max_delta_fraction=fraction)


def _edit(corpus: Corpus) -> tuple[str, str, str]:
    """Add a post, change one paragraph of a built post, remove another built post."""
    corpus.add("_posts/2022-02-01-new.md", seed=5000, day=1)
    path = sorted(corpus.docs)[3]
    title, paras, date = corpus.docs[path]
    corpus.docs[path] = (title, [paras[0], "青石港三期码头今日开工总投资四十八亿元", *paras[2:]], date)
    gone = sorted(corpus.docs)[7]
    del corpus.docs[gone]
    return "_posts/2022-02-01-new.md", path, gone


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[LocalStore, LocalStore, Corpus, HashEmbedder]:
    """The same corpus and edit published twice: layered, and as full generations."""
    corpus, emb = _corpus(40), HashEmbedder(dim=64)
    layered, full = _store(tmp_path / "layered", 0.5), _store(tmp_path / "full", 0.0)
    for s in (layered, full):
        update_store(s, *corpus.build(), emb)
    return layered, full, corpus, emb


def test_a_layered_update_reads_like_a_full_rewrite(pair) -> None:  # type: ignore[no-untyped-def]
    layered, full, corpus, emb = pair
    before = read_manifest(layered.index_dir)
    new, edited, gone = _edit(corpus)
    for s in (layered, full):
        update_store(s, *corpus.build(), emb)
    m = read_manifest(layered.index_dir)
    assert m.delta is not None and (m.delta.articles, m.delta.hidden_articles) == (2, 2)
    assert read_manifest(full.index_dir).delta is None
    # the base's big files are the previous generation's, not copies
    for name in ("vectors.faiss", "meta.sqlite", "lexical/chunk_ids.json", "sentences/vectors.npy"):
        a = os.stat(gen_dir(layered.index_dir, m.generation) / name)
        b = os.stat(gen_dir(layered.index_dir, before.generation) / name)
        assert a.st_ino == b.st_ino
    assert verify_index(layered.index_dir) == [] and verify_index(full.index_dir) == []

    with layered.open_reader() as lr, full.open_reader() as fr:
        assert lr.chunk_count == fr.chunk_count == m.chunks
        assert lr.articles() == fr.articles()
        assert lr.latest_articles(5) == fr.latest_articles(5)
        assert [c.chunk_id for c in lr.all_chunks()] == [c.chunk_id for c in fr.all_chunks()]
        ids = [c.chunk_id for c in fr.all_chunks()]
        assert lr.chunks_by_ids(ids) == fr.chunks_by_ids(ids)
        assert not lr.chunks_by_ids([f"{gone}#0"]) and not lr.sentence_vectors([f"{gone}#0"])
        assert set(lr.sentence_vectors(ids)) == set(ids)
        qv = emb.embed_queries([corpus.docs[p][1][1] for p in (new, edited, sorted(corpus.docs)[0])])
        for lh, fh in zip(lr.dense_search(qv, 10), fr.dense_search(qv, 10), strict=True):
            assert [round(s, 5) for _, s in lh] == [round(s, 5) for _, s in fh]
            cut = round(lh[-1][1], 5)  # equal scores may come in either order
            assert sorted((round(s, 5), c.chunk_id) for c, s in lh if round(s, 5) > cut) == sorted(
                (round(s, 5), c.chunk_id) for c, s in fh if round(s, 5) > cut)
        for q in ("青石港三期码头开工", corpus.docs[new][1][2][:12], corpus.docs[sorted(corpus.docs)[1]][1][0][:12]):
            lhits, fhits = lr.lexical_search(q, 5), fr.lexical_search(q, 5)
            assert lhits[0][0].chunk_id == fhits[0][0].chunk_id
            # scored with the base's statistics: close to a rebuilt BM25, not equal
            assert lhits[0][1] == pytest.approx(fhits[0][1], rel=0.1)
            assert all(c.article_path != gone for c, _ in lhits)


def test_the_delta_is_compacted_past_its_fraction(tmp_path: Path) -> None:
    corpus, emb = _corpus(40), HashEmbedder(dim=64)  # 160 chunks; 5% is 8
    store = _store(tmp_path / "idx", 0.05)
    update_store(store, *corpus.build(), emb)
    corpus.add("_posts/2022-02-01-n1.md", seed=7001)
    r = update_store(store, *corpus.build(), emb)
    m = read_manifest(store.index_dir)
    assert m.delta is not None and m.delta.chunks == 4 and not r.rebuilt
    corpus.add("_posts/2022-02-02-n2.md", seed=7002)
    corpus.add("_posts/2022-02-03-n3.md", seed=7003)
    update_store(store, *corpus.build(), emb)  # 12 delta chunks > 8: a full generation again
    m = read_manifest(store.index_dir)
    assert m.delta is None and m.chunks == 172
    assert not (gen_dir(store.index_dir, m.generation) / "delta").exists()
    assert verify_index(store.index_dir) == []
    with store.open_reader() as r:
        assert {a.path for a in r.articles()} == set(corpus.docs)


def test_a_damaged_delta_is_never_served(pair) -> None:  # type: ignore[no-untyped-def]
    layered, _, corpus, emb = pair
    old = layered.open_reader()
    _edit(corpus)
    update_store(layered, *corpus.build(), emb)
    m = read_manifest(layered.index_dir)
    vec = gen_dir(layered.index_dir, m.generation) / "delta" / "vectors.npy"
    data = bytearray(vec.read_bytes())
    data[-8:] = b"\xff" * 8
    vec.write_bytes(bytes(data))
    assert any("delta/vectors.npy" in p and "checksum" in p for p in verify_index(layered.index_dir))
    with pytest.raises(IndexCorrupt):
        _store(layered.index_dir, 0.5).open_reader()
    assert old.dense_search(emb.embed_queries(["标题3"]), 3)[0]  # the open reader keeps answering
    old.close()


def test_readers_of_one_base_share_its_faiss_index_and_bm25(pair) -> None:  # type: ignore[no-untyped-def]
    layered, _, corpus, emb = pair
    first = layered.open_reader()
    _edit(corpus)
    update_store(layered, *corpus.build(), emb)
    with layered.open_reader() as second:
        assert second.version != first.version
        assert second.snapshot.vectors.base is first.snapshot.vectors.base
        assert second.snapshot.vectors.delta is not None and first.snapshot.vectors.delta is None
        assert second.lexical_index is not None and first.lexical_index is not None
        assert second.lexical_index.bm25 is first.lexical_index.bm25
        # the shared base is not changed by the newer reader: the old one answers as before
        assert first.chunk_count == first.snapshot.vectors.ntotal
    first.close()


def test_a_long_running_store_hashes_the_base_once(pair, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    layered, _, corpus, emb = pair
    layered.open_reader().close()  # verifies (hashes) every file of the base
    hashed: list[Path] = []
    real = checksums_mod.sha256_file
    monkeypatch.setattr(checksums_mod, "sha256_file", lambda p: (hashed.append(Path(p)), real(p))[1])
    _edit(corpus)
    update_store(layered, *corpus.build(), emb)
    with layered.open_reader() as r:
        assert r.chunk_count == read_manifest(layered.index_dir).chunks
    rel = {"/".join(p.relative_to(layered.index_dir).parts[1:]) for p in hashed}  # without gen-<id>/
    assert rel and all(name.startswith("delta/") for name in rel), sorted(rel)


def test_delta_bm25_ranks_a_new_post_like_a_rebuild(pair) -> None:  # type: ignore[no-untyped-def]
    """New posts are what readers ask about: their BM25 scores must not be those of a
    corpus of five documents."""
    layered, full, corpus, emb = pair
    corpus.add("_posts/2022-02-05-port.md", seed=9001)
    title, paras, date = corpus.docs["_posts/2022-02-05-port.md"]
    corpus.docs["_posts/2022-02-05-port.md"] = (title, ["青石港三期码头今日开工", *paras[1:]], date)
    for s in (layered, full):
        update_store(s, *corpus.build(), emb)
    with layered.open_reader() as lr, full.open_reader() as fr:
        ls = dict((c.chunk_id, s) for c, s in lr.lexical_search("青石港码头开工", 3))
        fs = dict((c.chunk_id, s) for c, s in fr.lexical_search("青石港码头开工", 3))
    cid = "_posts/2022-02-05-port.md#0"
    assert cid in ls and ls[cid] == pytest.approx(fs[cid], rel=0.1)
    assert np.isfinite(list(ls.values())).all()
