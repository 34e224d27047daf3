"""Sentence vectors: a second, finer dense signal for reranking and answer choice.

A paragraph vector blurs a passage's several statements together; readers' paraphrased
questions ("正式名字" for "全称", "中产人群" for "中等收入群体") usually match ONE
sentence far better than the paragraph. So every chunk's sentences are embedded too
(vectors cached by content like chunk vectors), stored per generation as a float16
matrix that readers memory-map: only the rows of the few candidate chunks of a
question are ever touched, so a 100k-chunk index adds almost nothing to RSS.

Measured on the dev sets (README "Answer quality"): reranking the top 20 fused passages
by their best sentence similarity lifts finews passage_hit@3 from 0.86 to 0.96 and CMRC
passage_hit@1 from 0.96 to 0.99.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .chunking import split_sentences
from .types import Chunk

SENTENCE_DIR = "sentences"
DELTA_DIR = "delta"  # a layered generation's own share (qa_bot.index.layers)
FORMAT = 1


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank sentence of ``text`` (end punctuation included)."""
    out = []
    pos = 0
    for s in split_sentences(text):
        if s.strip():
            out.append((pos, pos + len(s)))
        pos += len(s)
    return out or [(0, len(text))]


def sentence_key(text: str) -> str:
    # distinct from chunk text hashes, which cover "title\ntext"
    return hashlib.sha256(("sentence\0" + text).encode()).hexdigest()


@dataclass(frozen=True)
class ChunkSentences:
    """The sentences of one chunk: character spans into ``chunk.text`` and one unit
    vector per span (``vectors`` is (len(spans), dim) float32, or float16 from a store
    that keeps them so). What ``score_sentences`` scores; stores hand them out through
    ``StoreReader.sentence_vectors`` (qa_bot.index.store)."""

    spans: tuple[tuple[int, int], ...]
    vectors: np.ndarray


def write_sentence_vectors(
    gen_dir: Path, chunks: Sequence[Chunk], sentences: Sequence[ChunkSentences], dim: int
) -> int:
    """Write ``<gen_dir>/sentences/`` for ``chunks`` (in index row order) and their
    sentences (from ``VectorSource.sentence_vectors``); returns the sentence count."""
    if len(sentences) != len(chunks):
        raise ValueError(f"{len(sentences)} sentence sets for {len(chunks)} chunks")
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(s.spans) for s in sentences], out=offsets[1:])
    n = int(offsets[-1])
    out = gen_dir / SENTENCE_DIR
    out.mkdir(parents=True, exist_ok=True)
    # filled row block by row block: one float32 copy of every sentence vector at once
    # would double the writer's peak memory on a large corpus
    mat = np.empty((n, dim), np.float16)
    for i, s in enumerate(sentences):
        mat[offsets[i] : offsets[i + 1]] = s.vectors
    spans = [span for s in sentences for span in s.spans]
    np.save(out / "vectors.npy", mat)
    np.save(out / "offsets.npy", offsets)
    np.save(out / "spans.npy", np.asarray(spans, dtype=np.int32).reshape(-1, 2))
    (out / "meta.json").write_text(
        json.dumps(
            {
                "format": FORMAT,
                "chunk_ids": [c.chunk_id for c in chunks],
                "sentences": n,
                "dim": dim,
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return n


@dataclass
class SentenceScores:
    """Per-sentence cosine similarities of one question with one chunk."""

    spans: list[tuple[int, int]]
    sims: np.ndarray

    @property
    def best(self) -> float:
        return float(self.sims.max()) if self.sims.size else 0.0


class SentenceVectors:
    """Memory-mapped sentence vectors of one generation."""

    def __init__(self, gen_dir: Path) -> None:
        d = gen_dir / SENTENCE_DIR
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{d}: unknown sentence vector format {meta.get('format')}")
        self._row = {cid: i for i, cid in enumerate(meta["chunk_ids"])}
        self._vectors = np.load(d / "vectors.npy", mmap_mode="r")
        self._offsets = np.load(d / "offsets.npy")
        self._spans = np.load(d / "spans.npy")
        if len(self._offsets) != len(self._row) + 1 or self._offsets[-1] != len(self._vectors):
            raise ValueError(f"{d}: sentence vectors and chunks disagree")

    def get(self, chunk_ids: Sequence[str]) -> dict[str, ChunkSentences]:
        """The sentences of these chunks (unknown ids left out); vectors stay float16
        views of the memory map, so only these rows are read."""
        out: dict[str, ChunkSentences] = {}
        for cid in chunk_ids:
            row = self._row.get(cid)
            if row is None:
                continue
            a, b = int(self._offsets[row]), int(self._offsets[row + 1])
            spans = tuple((int(x), int(y)) for x, y in self._spans[a:b])
            out[cid] = ChunkSentences(spans, self._vectors[a:b])
        return out

    def scores(self, chunk_id: str, qvec: np.ndarray) -> SentenceScores | None:
        found = self.get([chunk_id]).get(chunk_id)
        return None if found is None else score_sentences(found, qvec)


def score_sentences(sentences: ChunkSentences, qvec: np.ndarray) -> SentenceScores:
    """Cosine of the question vector with each sentence (rows are unit vectors)."""
    sims = np.asarray(sentences.vectors, dtype=np.float32) @ np.asarray(qvec, dtype=np.float32)
    return SentenceScores(list(sentences.spans), sims)


HIDDEN_FILE = "hidden.json"


def write_hidden(delta_dir: Path, hidden: Sequence[str]) -> None:
    """Record the base chunks a layered generation's delta/ hides."""
    (delta_dir / SENTENCE_DIR / HIDDEN_FILE).write_text(json.dumps(sorted(hidden), ensure_ascii=False), encoding="utf-8")


class LayeredSentences:
    """The sentence vectors of a layered generation (qa_bot.index.layers): delta/'s
    chunks first, the base's for the rest unless delta/ hides them."""

    def __init__(self, base: SentenceVectors, delta: SentenceVectors, hidden: frozenset[str]) -> None:
        self._base, self._delta, self._hidden = base, delta, hidden

    def get(self, chunk_ids: Sequence[str]) -> dict[str, ChunkSentences]:
        out = self._delta.get(chunk_ids)
        out.update(self._base.get([c for c in chunk_ids if c not in out and c not in self._hidden]))
        return out

    def scores(self, chunk_id: str, qvec: np.ndarray) -> SentenceScores | None:
        found = self.get([chunk_id]).get(chunk_id)
        return None if found is None else score_sentences(found, qvec)


SentenceSource = SentenceVectors | LayeredSentences


def open_sentences(gen_dir: Path) -> SentenceSource:
    """The sentence vectors of the generation in ``gen_dir``, layered or not."""
    base = SentenceVectors(gen_dir)
    delta_dir = gen_dir / DELTA_DIR
    if (delta_dir / SENTENCE_DIR).is_dir():
        hidden = json.loads((delta_dir / SENTENCE_DIR / HIDDEN_FILE).read_text(encoding="utf-8"))
        return LayeredSentences(base, SentenceVectors(delta_dir), frozenset(hidden))
    return base
