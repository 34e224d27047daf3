"""A reader of one published version of the Milvus store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...lexical import ChineseTokenizer
from ...types import Chunk
from ..store import ArticleInfo, ChunkSentences
from ._conn import Target, calls
from ._schema import (
    ARTICLE_FIELDS,
    CHUNK_FIELDS,
    HIT_FIELDS,
    Names,
    live,
    quoted,
    row_article,
    row_chunk,
    sentence_key,
)
from ._state import Published

_IDS_PER_QUERY = 200  # ids per ``in [...]`` filter
_KEYS_PER_GET = 500
_MAX_KEYS = 200_000  # remembered sentence keys (a few MB); forgotten all at once past it
_PAGE = 1000


def scan(client: Any, target: Target, collection: str, flt: str, fields: list[str]) -> list[dict[str, Any]]:
    """Every row matching ``flt``: one query on Milvus Lite, pages on a server (which
    caps one query's window at 16,384 rows; Lite lacks the iterator's timestamp call)."""
    if target.lite_path is not None:
        return list(client.query(collection, filter=flt, output_fields=fields))
    it = client.query_iterator(collection, batch_size=_PAGE, filter=flt, output_fields=fields)
    rows: list[dict[str, Any]] = []
    try:
        while batch := it.next():
            rows.extend(batch)
    finally:
        it.close()
    return rows


class MilvusReader:
    """Answers from version ``pub`` only: every search and lookup filters on its rows
    (born ≤ seq < died), so updates published meanwhile are invisible to it."""

    def __init__(self, client: Any, target: Target, names: Names, pub: Published) -> None:
        self._client, self._target, self._pub = client, target, pub
        self._chunks, self._sentences, self._articles = names.generation(pub.gen)
        self._live = live(pub.seq)
        self._tokenizer: ChineseTokenizer | None = None
        self._article_list: list[ArticleInfo] | None = None
        self._keys: dict[str, tuple[str, int]] = {}  # chunk_id → (row key, sentences)
        self._lock = threading.Lock()

    # -- identity -------------------------------------------------------------
    @property
    def version(self) -> str:
        return self._pub.version

    @property
    def layout_version(self) -> str:
        return self._pub.layout_version

    @property
    def chunk_count(self) -> int:
        return self._pub.chunks

    @property
    def tokenizer(self) -> ChineseTokenizer:
        """jieba with the user words the chunks were analyzed with (the follow-up memory
        and the off-topic check segment questions like the BM25 analyzer)."""
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = ChineseTokenizer(self._pub.user_words)
            return self._tokenizer

    # -- search ---------------------------------------------------------------
    def dense_search(self, qvecs: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        q = np.asarray(qvecs, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self._pub.dim:
            raise ValueError(f"query vectors must be (n, {self._pub.dim}), got {q.shape}")
        if k <= 0 or not len(q) or not self._pub.chunks:
            return [[] for _ in range(len(q))]
        with calls(self._target, self._chunks):
            res = self._client.search(
                self._chunks, q.tolist(), anns_field="dense", limit=k, filter=self._live,
                output_fields=HIT_FIELDS, search_params={"metric_type": "IP"},
            )
        return [[(self._hit(h["entity"]), float(h["distance"])) for h in hits] for hits in res]

    def _hit(self, row: dict[str, Any]) -> Chunk:
        """The chunk of a search hit; its sentence rows' keys are remembered for the rerank."""
        with self._lock:
            if len(self._keys) > _MAX_KEYS:
                self._keys.clear()
            self._keys[row["chunk_id"]] = (row["pk"], int(row["n_sent"]))
        return row_chunk(row)

    def lexical_search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """BM25 by Milvus's function over the jieba analyzer (question words and
        punctuation are stop words, as in ``qa_bot.lexical``)."""
        if k <= 0 or not query.strip() or not self._pub.chunks:
            return []
        with calls(self._target, self._chunks):
            res = self._client.search(
                self._chunks, [query], anns_field="bm25", limit=k, filter=self._live,
                output_fields=HIT_FIELDS, search_params={"metric_type": "BM25"},
            )
        # Milvus Lite reports BM25 as a negative distance (smaller sorts first); a server
        # as the positive score
        hits = [(self._hit(h["entity"]), abs(float(h["distance"]))) for h in res[0]]
        return [(c, s) for c, s in hits if s > 0]

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, ChunkSentences]:
        """By key: the rerank asks for hits of this reader's searches, whose keys it
        remembers (a filter on the sentences collection costs ~200 ms in Milvus Lite at
        10k chunks, a lookup by key ~20 ms)."""
        ids = list(dict.fromkeys(chunk_ids))
        with self._lock:
            unknown = [cid for cid in ids if cid not in self._keys]
        if unknown:
            self.chunks_by_ids(unknown)  # remembers their keys
        with self._lock:
            keys = {cid: self._keys[cid] for cid in ids if cid in self._keys}
        pks = [sentence_key(pk, i) for pk, n in keys.values() for i in range(n)]
        rows: list[dict[str, Any]] = []
        with calls(self._target, self._sentences):
            for i in range(0, len(pks), _KEYS_PER_GET):
                rows += self._client.get(
                    self._sentences, ids=pks[i : i + _KEYS_PER_GET],
                    output_fields=["chunk_id", "start", "end", "vec"],
                )
        grouped: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            grouped.setdefault(r["chunk_id"], []).append(r)
        out: dict[str, ChunkSentences] = {}
        for cid, rs in grouped.items():
            rs.sort(key=lambda r: r["start"])
            out[cid] = ChunkSentences(
                tuple((int(r["start"]), int(r["end"])) for r in rs),
                np.asarray([r["vec"] for r in rs], dtype=np.float32),
            )
        return out

    # -- lookups ----------------------------------------------------------------
    def chunks_by_ids(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        ids = list(dict.fromkeys(chunk_ids))
        with calls(self._target, self._chunks):
            for i in range(0, len(ids), _IDS_PER_QUERY):
                part = ids[i : i + _IDS_PER_QUERY]
                for r in self._client.query(
                    self._chunks, filter=f"chunk_id in {quoted(part)} and {self._live}",
                    output_fields=HIT_FIELDS,
                ):
                    c = self._hit(r)
                    out[c.chunk_id] = c
        return out

    def all_chunks(self) -> list[Chunk]:
        with calls(self._target, self._chunks):
            rows = scan(self._client, self._target, self._chunks, self._live, CHUNK_FIELDS)
        return sorted((row_chunk(r) for r in rows), key=lambda c: (c.article_path, c.ordinal, c.chunk_id))

    def _all_articles(self) -> list[ArticleInfo]:
        # a version never changes: read its article list once (the bot's /latest asks often)
        with self._lock:
            if self._article_list is None:
                with calls(self._target, self._articles):
                    rows = scan(self._client, self._target, self._articles, self._live, ARTICLE_FIELDS)
                self._date_keys = {r["article_path"]: r["date_key"] for r in rows}
                self._article_list = sorted((row_article(r) for r in rows), key=lambda a: a.path)
            return self._article_list

    def articles(self) -> list[ArticleInfo]:
        return list(self._all_articles())

    def latest_articles(self, n: int) -> list[ArticleInfo]:
        arts = self._all_articles()
        keys = self._date_keys
        # newest first by UTC date key, then by path; undated last (as the local store)
        dated = sorted((a for a in arts if keys[a.path]), key=lambda a: a.path)
        dated.sort(key=lambda a: keys[a.path], reverse=True)
        undated = [a for a in arts if not keys[a.path]]
        return (dated + undated)[: max(n, 0)]

    def close(self) -> None:
        """Nothing to release: the client is shared by every reader of this target."""

    def __enter__(self) -> MilvusReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
