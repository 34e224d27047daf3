"""Collections of the Milvus store, and rows ↔ the project's types.

Under a prefix P (``QA_BOT_MILVUS_PREFIX``)::

    P_meta                 one row "published" (the published version, as JSON) and, on
                           a server, the writers' lease row "writer"
    P_g<N>_chunks          one row per chunk version: the chunk's fields, its passage
                           vector (dense), and BM25 over jieba (a Milvus function of
                           embed_text, so Milvus keeps the term statistics)
    P_g<N>_sentences       one row per sentence of a chunk version: span and vector, for
                           the sentence rerank (readers on other machines have no vector
                           cache, so the vectors live in Milvus like the chunks')
    P_g<N>_articles        one row per article version: record, signature, date key

Every row carries ``born`` and ``died``: the versions (sequence numbers) it was written
in and superseded in (``ALIVE`` while current). A reader of version G sees exactly the
rows with born ≤ G < died, so an update writes new rows born G+1, marks superseded ones
died G+1, and publishes G+1 with one write of the meta row. A full build writes a new
generation N+1 of the three collections instead; the meta row names the generation, so
one write switches all three (an alias switches one collection at a time).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...lexical import QUESTION_STOPWORDS
from ...types import Article, Chunk
from ..store import ArticleInfo

#: ``died`` of a row no version has superseded yet
ALIVE = 2**62
#: long enough for any path (bytes; Milvus counts VARCHAR lengths in bytes)
KEY_LEN = 4096
TEXT_LEN = 65535
#: Lite's jieba analyzer keeps punctuation as tokens; the project's BM25 drops it
_PUNCTUATION = list("，。！？、；：“”‘’（）《》【】—…·,.!?;:()[]{}<>\"'%/\\|-_+=*&^$#@~`")

CHUNK_FIELDS = [
    "chunk_id", "article_path", "ordinal", "title", "date", "url", "text", "embed_text", "text_hash",
]
#: what searches return: the chunk, and its row key and sentence count, which name its
#: sentence rows (``<pk>#<i>``): fetched by key, the cheap lookup in Milvus Lite
HIT_FIELDS = [*CHUNK_FIELDS, "pk", "n_sent"]
ARTICLE_FIELDS = [
    "article_path", "title", "date", "date_key", "url", "source", "categories", "tags",
    "content_hash", "n_chunks", "sig",
]


@dataclass(frozen=True)
class Names:
    prefix: str

    @property
    def meta(self) -> str:
        return f"{self.prefix}_meta"

    def chunks(self, gen: int) -> str:
        return f"{self.prefix}_g{gen}_chunks"

    def sentences(self, gen: int) -> str:
        return f"{self.prefix}_g{gen}_sentences"

    def articles(self, gen: int) -> str:
        return f"{self.prefix}_g{gen}_articles"

    def generation(self, gen: int) -> tuple[str, str, str]:
        return self.chunks(gen), self.sentences(gen), self.articles(gen)

    def gen_of(self, collection: str) -> int | None:
        """The generation of one of this prefix's collections, else None."""
        head = f"{self.prefix}_g"
        if not collection.startswith(head):
            return None
        num, _, kind = collection[len(head) :].partition("_")
        return int(num) if num.isdigit() and kind in ("chunks", "sentences", "articles") else None


def live(seq: int) -> str:
    """Filter of the rows version ``seq`` sees."""
    return f"born <= {seq} and died > {seq}"


def quoted(values: Sequence[str]) -> str:
    """A Milvus filter list literal of strings."""
    return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def analyzer_params(user_words: Sequence[str]) -> dict[str, Any]:
    """jieba ``cut_for_search`` with the corpus's title compounds, without question
    words and punctuation: what ``qa_bot.lexical`` does for the local store. ``_default_``
    keeps jieba's own dictionary on a Milvus server (a ``dict`` replaces it otherwise)."""
    return {
        "tokenizer": {"type": "jieba", "mode": "search", "dict": ["_default_", *user_words]},
        "filter": [
            "lowercase",
            {"type": "stop", "stop_words": sorted(QUESTION_STOPWORDS) + _PUNCTUATION},
        ],
    }


def _versioned(schema: Any, datatype: Any) -> None:
    schema.add_field("pk", datatype.VARCHAR, is_primary=True, max_length=KEY_LEN)
    schema.add_field("article_path", datatype.VARCHAR, max_length=KEY_LEN)
    schema.add_field("born", datatype.INT64)
    schema.add_field("died", datatype.INT64)


def create_meta(client: Any, names: Names) -> None:
    from pymilvus import DataType, MilvusClient

    if client.has_collection(names.meta):
        return
    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
    s.add_field("value", DataType.VARCHAR, max_length=TEXT_LEN)
    # Milvus wants a vector field in every collection; this one is never searched
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    ip = client.prepare_index_params()
    ip.add_index("v", index_type="FLAT", metric_type="IP")
    client.create_collection(names.meta, schema=s, index_params=ip, consistency_level="Strong")


def create_generation(client: Any, names: Names, gen: int, dim: int, user_words: Sequence[str]) -> None:
    """The three collections of generation ``gen`` (dropped first if a crashed build left them)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    for name in names.generation(gen):
        if client.has_collection(name):
            client.drop_collection(name)
    s = MilvusClient.create_schema(auto_id=False)
    _versioned(s, DataType)
    for f in ("chunk_id", "title", "url", "text_hash"):
        s.add_field(f, DataType.VARCHAR, max_length=KEY_LEN)
    s.add_field("date", DataType.VARCHAR, max_length=64)
    s.add_field("ordinal", DataType.INT64)
    s.add_field("n_sent", DataType.INT64)
    s.add_field("text", DataType.VARCHAR, max_length=TEXT_LEN)
    s.add_field(
        "embed_text", DataType.VARCHAR, max_length=TEXT_LEN, enable_analyzer=True,
        analyzer_params=analyzer_params(user_words),
    )
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(
        Function(name="bm25", function_type=FunctionType.BM25,
                 input_field_names=["embed_text"], output_field_names=["bm25"])
    )
    ip = client.prepare_index_params()
    ip.add_index("dense", index_type="FLAT", metric_type="IP")
    ip.add_index("bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(names.chunks(gen), schema=s, index_params=ip, consistency_level="Strong")

    s = MilvusClient.create_schema(auto_id=False)
    _versioned(s, DataType)
    s.add_field("chunk_id", DataType.VARCHAR, max_length=KEY_LEN)
    s.add_field("start", DataType.INT64)
    s.add_field("end", DataType.INT64)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="IP")
    client.create_collection(names.sentences(gen), schema=s, index_params=ip, consistency_level="Strong")

    s = MilvusClient.create_schema(auto_id=False)
    _versioned(s, DataType)
    for f in ("title", "url", "source", "categories", "tags"):
        s.add_field(f, DataType.VARCHAR, max_length=TEXT_LEN if f == "title" else KEY_LEN)
    for f in ("date", "date_key", "content_hash", "sig"):
        s.add_field(f, DataType.VARCHAR, max_length=128)
    s.add_field("n_chunks", DataType.INT64)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    ip = client.prepare_index_params()
    ip.add_index("v", index_type="FLAT", metric_type="IP")
    client.create_collection(names.articles(gen), schema=s, index_params=ip, consistency_level="Strong")


# --------------------------------------------------------------------------- rows


def chunk_row(c: Chunk, vec: Any, seq: int, n_sent: int) -> dict[str, Any]:
    return {
        "pk": f"{seq}:{c.chunk_id}", "born": seq, "died": ALIVE, "chunk_id": c.chunk_id,
        "n_sent": n_sent,
        "article_path": c.article_path, "ordinal": c.ordinal, "title": c.title,
        "date": c.date or "", "url": c.url or "", "text": c.text, "embed_text": c.embed_text,
        "text_hash": c.text_hash, "dense": [float(x) for x in vec],
    }


def row_chunk(r: dict[str, Any]) -> Chunk:
    return Chunk(
        chunk_id=r["chunk_id"], article_path=r["article_path"], ordinal=int(r["ordinal"]),
        title=r["title"], date=r["date"] or None, url=r["url"] or None, text=r["text"],
        embed_text=r["embed_text"], text_hash=r["text_hash"],
    )


def sentence_rows(c: Chunk, spans: Sequence[tuple[int, int]], vecs: Any, seq: int) -> list[dict[str, Any]]:
    return [
        {
            "pk": sentence_key(f"{seq}:{c.chunk_id}", i), "born": seq, "died": ALIVE, "chunk_id": c.chunk_id,
            "article_path": c.article_path, "start": int(a), "end": int(b),
            "vec": [float(x) for x in v],
        }
        for i, ((a, b), v) in enumerate(zip(spans, vecs, strict=True))
    ]


def sentence_key(chunk_pk: str, i: int) -> str:
    """The key of sentence ``i`` of the chunk row ``chunk_pk`` (both are written together)."""
    return f"{chunk_pk}#{i}"


def article_row(a: Article, sig: str, n_chunks: int, date_key: str | None, seq: int) -> dict[str, Any]:
    return {
        "pk": f"{seq}:{a.path}", "born": seq, "died": ALIVE, "article_path": a.path,
        "title": a.title, "date": a.date or "", "date_key": date_key or "", "url": a.url or "",
        "source": a.source or "", "categories": json.dumps(list(a.categories), ensure_ascii=False),
        "tags": json.dumps(list(a.tags), ensure_ascii=False), "content_hash": a.content_hash,
        "n_chunks": n_chunks, "sig": sig, "v": [1.0, 0.0],
    }


def row_article(r: dict[str, Any]) -> ArticleInfo:
    return ArticleInfo(
        path=r["article_path"], title=r["title"], date=r["date"] or None, url=r["url"] or None,
        source=r["source"] or None, content_hash=r["content_hash"], n_chunks=int(r["n_chunks"]),
        categories=tuple(json.loads(r["categories"])), tags=tuple(json.loads(r["tags"])),
    )
