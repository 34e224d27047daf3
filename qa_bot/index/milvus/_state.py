"""The published record of the Milvus store: one JSON row of the meta collection."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import IndexCorrupt
from ._conn import Target, calls, ensure_loaded
from ._schema import Names

PUBLISHED_KEY = "published"
FORMAT = 1


@dataclass(frozen=True)
class Published:
    """What readers trust: the version, and which rows and collections make it up."""

    version: str  # opaque to readers, new on every publish
    seq: int  # rows with born ≤ seq < died make up this version
    gen: int  # the generation of collections holding them
    prev_seq: int  # the version before, still readable by readers that have not switched
    prev_gen: int
    model: str
    dim: int
    layout_version: str
    articles: int
    chunks: int
    sentences: int
    built_at: str
    updated_at: str
    #: the analyzer's user dictionary (title compounds), fixed per generation
    user_words: tuple[str, ...] = field(default_factory=tuple)
    format: int = FORMAT

    def to_json(self) -> str:
        d = asdict(self)
        d["user_words"] = list(self.user_words)
        return json.dumps(d, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Published:
        d = json.loads(raw)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"unknown format {d.get('format') if isinstance(d, dict) else d!r}")
        d["user_words"] = tuple(d.get("user_words", ()))
        p = cls(**d)
        ints = (p.seq, p.gen, p.prev_seq, p.prev_gen, p.dim, p.articles, p.chunks, p.sentences)
        if not all(isinstance(x, int) and x >= 0 for x in ints) or p.seq == 0:
            raise ValueError("bad numbers")
        return p


def read_published(client: Any, target: Target, names: Names) -> Published | None:
    """The published record, None when nothing was ever published (no meta row).
    Raises IndexCorrupt when the row is unreadable, MilvusUnavailable when unreachable."""
    where = f"{target.location} {names.meta}"
    with calls(target, names.meta):
        if not client.has_collection(names.meta):
            return None
        ensure_loaded(client, target, names.meta)
        rows = client.query(names.meta, ids=[PUBLISHED_KEY], output_fields=["value"])
    if not rows:
        return None
    try:
        return Published.from_json(rows[0]["value"])
    except (ValueError, TypeError, KeyError) as e:
        raise IndexCorrupt(where, f"bad published record: {str(e).splitlines()[0][:200]}") from None


def write_published(client: Any, target: Target, names: Names, pub: Published) -> None:
    """The publish: one row write, atomic for readers."""
    with calls(target, names.meta):
        client.upsert(names.meta, [{"key": PUBLISHED_KEY, "value": pub.to_json(), "v": [1.0, 0.0]}])


def row_value(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rows:
        return None
    try:
        d = json.loads(rows[0]["value"])
    except (ValueError, KeyError):
        return None
    return d if isinstance(d, dict) else None
