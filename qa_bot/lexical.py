"""Lexical search: jieba ``cut_for_search`` tokens scored with BM25 (bm25s).

The BM25 index is an artifact of each index generation (``<gen>/lexical/``), so a
reader never tokenizes the corpus at start-up. Tokens are cached per chunk text hash
and carried from one generation to the next: an incremental update tokenizes only
new text.

The user dictionary is derived from the corpus (compound key terms of titles such as
算力小镇 that jieba would split) and only ever grows across incremental updates, so
cached tokens of old chunks stay valid; a full build derives it afresh.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .types import Chunk

LEXICAL_DIR = "lexical"
TOKENS_FILE = "tokens.jsonl"
USERDICT_FILE = "userdict.txt"
TOKENIZER_VERSION = "1"
DELTA_DIR = "delta"  # a layered generation's own share (qa_bot.index.layers)
DELTA_DOCS_FILE = "docs.json"
HIDDEN_FILE = "hidden.json"

_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORDLIKE = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)
_TITLE_SPLIT = re.compile(r"[\s【】\[\]（）()“”\"'‘’《》<>：:，,。！!？?、；;—\-|｜·]+")

# Question words and particles carry no topic; keeping them would make every
# question match every sentence that happens to contain 多少 or 什么.
QUESTION_STOPWORDS = frozenset(
    """
    多少 几 多大 多高 多长 多久 什么 啥 哪 哪些 哪个 哪家 哪位 哪款 哪只 哪天 哪年 哪里 哪儿 谁 吗 呢 吧 啊 呀
    是否 是不是 有没有 为什么 为何 为啥 怎么 怎样 如何 何时 什么时候 啥时候 几月 几号 的 了 是 在 和 与 及
    有 被 把 给 对 从 到 也 都 就 还 又 而 或 那 这 那个 这个 它 其 该 此 我 你 他 她 们 咱们 我们 大概 大约
    一下 一个 叫 叫做 请问 知道 到底 现在 目前 一般 会 能 要 说 这次 那次 那份 这份 那篇 那家 那位 那边 这边
    时候 后来 当时 最初 之前 之后 以后 然后 多少钱 大家 自己
    """.split()
)


def _is_token(tok: str) -> bool:
    return bool(_WORDLIKE.search(tok))


class WordCutter(Protocol):
    """What the answer extractor segments with (``ChineseTokenizer``, or a stand-in)."""

    def cut(self, text: str) -> tuple[str, ...]:
        """Every word of ``text`` in order, punctuation included: the pieces add up to
        ``text``, so callers can measure offsets by them."""
        ...


class PosTagger(Protocol):
    """What the follow-up memory finds a question's nouns with."""

    def tag(self, text: str) -> list[tuple[str, str]]:
        """``(word, jieba part-of-speech flag)`` for every word of ``text``."""
        ...


class ChineseTokenizer:
    """jieba segmentation with the corpus's user words.

    By default it wraps jieba's process-wide tokenizer: loading jieba's dictionary costs
    about a second, and the words added here only ever grow (see module docstring), so
    every instance (the index's, the answer extractor's, the follow-up memory's) cuts a
    question alike. ``private=True`` gives an isolated tokenizer (tests).
    """

    def __init__(
        self,
        user_words: Iterable[str] = (),
        user_dict_file: Path | None = None,
        *,
        private: bool = False,
    ) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer() if private else jieba.dt
        self._jieba.initialize()
        self.user_words: set[str] = set()
        # the extractor cuts the same question words and list heads over and over
        self._cut = functools.lru_cache(maxsize=4096)(self._cut_uncached)
        self._tagger: Any = None  # jieba.posseg.POSTokenizer, made on first tag()
        self._tagger_lock = threading.Lock()
        if user_dict_file is not None:
            self._jieba.load_userdict(str(user_dict_file))
        self.add_words(user_words)

    def add_words(self, words: Iterable[str]) -> None:
        added = False
        for w in words:
            if w and w not in self.user_words:
                self.user_words.add(w)
                # a high frequency so the compound wins over its parts
                self._jieba.add_word(w, freq=2000)
                added = True
        if added:
            self._cut.cache_clear()  # a new compound changes how texts cut

    def tokens(self, text: str) -> list[str]:
        """Lower-cased search tokens of ``text`` (compounds and their parts)."""
        return [t.lower() for t in self._jieba.cut_for_search(text) if _is_token(t)]

    def query_tokens(self, text: str) -> list[str]:
        toks = [t for t in self.tokens(text) if t not in QUESTION_STOPWORDS]
        return toks

    def words(self, text: str) -> list[str]:
        """Plain segmentation (no overlapping sub-words)."""
        return [t for t in self._jieba.cut(text) if _is_token(t)]

    def cut(self, text: str) -> tuple[str, ...]:
        """Plain segmentation keeping punctuation and spaces (``WordCutter``)."""
        return self._cut(text)

    def _cut_uncached(self, text: str) -> tuple[str, ...]:
        return tuple(self._jieba.lcut(text))

    def tag(self, text: str) -> list[tuple[str, str]]:
        """Part-of-speech tags over the same segmentation and user words (``PosTagger``)."""
        return [(w.word, w.flag) for w in self._pos_tokenizer().lcut(text)]

    def _pos_tokenizer(self) -> Any:
        with self._tagger_lock:
            if self._tagger is None:
                import jieba
                import jieba.posseg

                # jieba.posseg.dt already wraps jieba.dt: another would read the tag table again
                shared = self._jieba is jieba.dt
                self._tagger = jieba.posseg.dt if shared else jieba.posseg.POSTokenizer(self._jieba)
            return self._tagger


@functools.cache
def default_tokenizer() -> ChineseTokenizer:
    """The tokenizer of callers given none (made on first use, so that importing the
    answer modules does not load jieba's dictionary). Private: an index's user words,
    which go into jieba's shared dictionary, would otherwise change how every later
    caller given no tokenizer cuts."""
    return ChineseTokenizer(private=True)


@functools.cache
def _pristine_jieba():  # type: ignore[no-untyped-def]
    """A jieba tokenizer without user words (loaded once per process, on index updates)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    return tk


def derive_user_words(chunks: Sequence[Chunk]) -> set[str]:
    """Compound key terms of titles that jieba splits but the corpus uses as a unit.

    A pair or triple of adjacent title words (3–8 CJK characters together) becomes a
    word when it occurs at least twice in the article's own text, e.g. 算力+小镇.
    """
    # Segment with jieba's own dictionary only: the shared tokenizer already holds
    # compounds added for earlier generations (or other corpora), which would hide them
    # from this derivation and make its result depend on what ran before.
    pristine = _pristine_jieba()
    by_article: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_article.setdefault(c.article_path, []).append(c)
    found: set[str] = set()
    for article_chunks in by_article.values():
        title = article_chunks[0].title
        body = "".join(c.text for c in article_chunks)
        for seg in _TITLE_SPLIT.split(title):
            if len(seg) < 3:
                continue
            words = [w for w in pristine.cut(seg) if _is_token(w)]
            for n in (2, 3):
                for i in range(len(words) - n + 1):
                    cand = "".join(words[i : i + n])
                    if (
                        3 <= len(cand) <= 8
                        and len(_CJK.findall(cand)) == len(cand)
                        and body.count(cand) + title.count(cand) >= 2
                    ):
                        found.add(cand)
    return found


@dataclass
class DeltaDocs:
    """The BM25 documents of a layered generation's delta/ (qa_bot.index.layers),
    scored with the base's statistics: their own would be those of a handful of posts,
    under which every word is rare and new posts would rank unlike old ones."""

    chunk_ids: list[str]
    lengths: np.ndarray  # tokens per document
    postings: dict[str, list[tuple[int, int]]]  # token → (document, term frequency)
    hidden_rows: np.ndarray  # base documents delta/ hides
    base_avg_len: float

    @classmethod
    def of(cls, chunk_ids: list[str], docs: Sequence[list[str]], hidden_rows: np.ndarray, base_avg_len: float) -> DeltaDocs:
        postings: dict[str, list[tuple[int, int]]] = {}
        for i, toks in enumerate(docs):
            for t, tf in Counter(toks).items():
                postings.setdefault(t, []).append((i, tf))
        lengths = np.array([len(t) for t in docs], dtype=np.float32)
        return cls(chunk_ids, lengths, postings, hidden_rows, base_avg_len)

    def scores(self, toks: Sequence[str], bm25: object) -> np.ndarray:
        """BM25 (bm25s' "lucene" variant, the base's k1 and b) of each document for
        ``toks``, document frequencies counted over base and delta together."""
        out = np.zeros(len(self.chunk_ids), dtype=np.float32)
        vocab = getattr(bm25, "vocab_dict", None) or {}
        indptr = bm25.scores["indptr"] if vocab else None  # type: ignore[attr-defined]
        n_base = int(bm25.scores["num_docs"]) if vocab else 0  # type: ignore[attr-defined]
        k1, b = float(getattr(bm25, "k1", 1.5)), float(getattr(bm25, "b", 0.75))
        n = n_base + len(self.chunk_ids)
        norm = k1 * (1 - b + b * self.lengths / max(self.base_avg_len, 1.0))
        for t in toks:
            post = self.postings.get(t)
            if not post:
                continue
            tid = vocab.get(t)
            df = len(post) + (int(indptr[tid + 1] - indptr[tid]) if tid is not None else 0)
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            for doc, tf in post:
                out[doc] += idf * tf / (tf + norm[doc])
        return out


@dataclass
class LexicalIndex:
    """A loaded BM25 index over the chunks of one generation, in index row order
    (a layered generation: the base's documents, then ``delta``'s)."""

    bm25: object
    tokenizer: ChineseTokenizer
    chunk_ids: list[str]  # BM25 document i is the chunk with chunk_ids[i]
    delta: DeltaDocs | None = None

    @property
    def n_docs(self) -> int:
        return len(self.chunk_ids)

    def scores(self, query: str) -> tuple[np.ndarray, list[str]]:
        toks = self.tokenizer.query_tokens(query)
        n_base = self.n_docs - (len(self.delta.chunk_ids) if self.delta else 0)
        vocab = getattr(self.bm25, "vocab_dict", None) or {}
        known = [t for t in toks if t in vocab]
        if known:
            base = np.asarray(self.bm25.get_scores(known), dtype=np.float32)  # type: ignore[attr-defined]
        else:
            base = np.zeros(n_base, dtype=np.float32)
        if self.delta is None:
            return base, toks
        base[self.delta.hidden_rows] = 0
        return np.concatenate([base, self.delta.scores(toks, self.bm25)]), toks

    def top(self, query: str, k: int) -> list[tuple[str, float]]:
        """Up to ``k`` (chunk_id, BM25 score) with a positive score, best first."""
        if not self.n_docs or k <= 0:
            return []
        scores, _ = self.scores(query)
        if not scores.size or float(scores.max()) <= 0:
            return []
        n = min(k, scores.size)
        best = [int(i) for i in np.argpartition(-scores, n - 1)[:n] if scores[i] > 0]
        best.sort(key=lambda i: -scores[i])
        return [(self.chunk_ids[i], float(scores[i])) for i in best]


def _import_bm25s():  # type: ignore[no-untyped-def]
    import bm25s

    # bm25s sets its own logger to DEBUG at import; its progress chatter is not for users
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _read_tokens(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            out[rec["h"]] = rec["t"]
    return out


def _top_terms(corpus_tokens: Sequence[list[str]]) -> list[str]:
    return [t for t, _ in Counter(t for ts in corpus_tokens for t in ts).most_common(5)]


def build_lexical(
    chunks: Sequence[Chunk],
    gen_dir: Path,
    prev_gen_dir: Path | None,
    *,
    user_dict_file: Path | None = None,
) -> dict[str, int]:
    """Write ``<gen_dir>/lexical/``: user dictionary, token cache, BM25 index.

    Called by the index writer (its ``artifacts`` hook) with the chunks in row order.
    Returns counts for logging: how many chunk texts were tokenized afresh.
    """
    bm25s = _import_bm25s()

    out_dir = gen_dir / LEXICAL_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    prev_dir = prev_gen_dir / LEXICAL_DIR if prev_gen_dir is not None else None

    prev_words: set[str] = set()
    prev_tokens: dict[str, list[str]] = {}
    top_terms: list[str] | None = None
    if prev_dir is not None and (prev_dir / USERDICT_FILE).exists():
        meta = json.loads((prev_dir / "meta.json").read_text(encoding="utf-8"))
        if meta.get("tokenizer_version") == TOKENIZER_VERSION:
            prev_words = set((prev_dir / USERDICT_FILE).read_text(encoding="utf-8").split())
            prev_tokens = _read_tokens(prev_dir / TOKENS_FILE)
            top_terms = meta.get("top_terms")

    tokenizer = ChineseTokenizer(prev_words, user_dict_file)
    # words of articles whose every text was in the previous generation are in its
    # dictionary already (it only grows): derive from the others only, the same result
    # for a fraction of the segmentation (70k titles took a quarter of a small update)
    fresh = {c.article_path for c in chunks if c.text_hash not in prev_tokens}
    new_words = derive_user_words([c for c in chunks if c.article_path in fresh]) - prev_words
    tokenizer.add_words(new_words)
    # Only a growing dictionary keeps old tokens meaningful; see module docstring.
    words = sorted(prev_words | new_words)

    corpus_tokens: list[list[str]] = []
    tokenized = 0
    seen: dict[str, list[str]] = {}
    for c in chunks:
        toks = seen.get(c.text_hash) or prev_tokens.get(c.text_hash)
        if toks is None:
            toks = tokenizer.tokens(c.embed_text)
            tokenized += 1
        seen[c.text_hash] = toks
        corpus_tokens.append(toks)

    (out_dir / "chunk_ids.json").write_text(
        json.dumps([c.chunk_id for c in chunks], ensure_ascii=False), encoding="utf-8"
    )
    (out_dir / USERDICT_FILE).write_text("\n".join(words) + "\n", encoding="utf-8")
    with (out_dir / TOKENS_FILE).open("w", encoding="utf-8") as f:
        for h, toks in seen.items():
            f.write(json.dumps({"h": h, "t": toks}, ensure_ascii=False) + "\n")
    bm25 = bm25s.BM25()
    if corpus_tokens:
        bm25.index(corpus_tokens, show_progress=False)
        bm25.save(str(out_dir / "bm25"), show_progress=False)
    (out_dir / "meta.json").write_text(
        json.dumps(
            {
                "tokenizer_version": TOKENIZER_VERSION,
                "docs": len(corpus_tokens),
                "user_words": len(words),
                "avg_doc_len": float(np.mean([len(t) for t in corpus_tokens])) if corpus_tokens else 0.0,
                # for people reading the file: counted on a build from scratch and carried by
                # updates (counting every token of 100k chunks took seconds of each update)
                "top_terms": top_terms if top_terms is not None else _top_terms(corpus_tokens),
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return {"tokenized": tokenized, "reused": len(chunks) - tokenized, "user_words": len(words)}


BM25_DIR = "bm25"
BM25_KEY_FILE = "data.csc.index.npy"  # bm25s' largest file: what identifies a saved index


def read_bm25(path: Path) -> object:
    return _import_bm25s().BM25.load(str(path), show_progress=False)


def load_lexical(
    gen_dir: Path,
    *,
    user_dict_file: Path | None = None,
    load_bm25: Callable[[Path], object] = read_bm25,
) -> LexicalIndex:
    """The BM25 index of the generation in ``gen_dir`` (layered: with delta/'s documents);
    ``load_bm25`` may hand out the one a previous generation over the same base loaded."""
    bm25s = _import_bm25s()

    d = gen_dir / LEXICAL_DIR
    meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    chunk_ids = json.loads((d / "chunk_ids.json").read_text(encoding="utf-8"))
    if int(meta["docs"]) != len(chunk_ids):
        raise ValueError(f"{d}: BM25 index and chunk list disagree")
    bm25 = load_bm25(d / BM25_DIR) if chunk_ids else bm25s.BM25()
    dd = gen_dir / DELTA_DIR / LEXICAL_DIR
    delta = _load_delta(dd, len(chunk_ids)) if dd.is_dir() else None
    # delta/'s dictionary holds the base's words and any added since
    words = ((dd if delta else d) / USERDICT_FILE).read_text(encoding="utf-8").split()
    tokenizer = ChineseTokenizer(words, user_dict_file)
    if delta is not None:
        chunk_ids = chunk_ids + delta.chunk_ids
    return LexicalIndex(bm25=bm25, tokenizer=tokenizer, chunk_ids=chunk_ids, delta=delta)


def _load_delta(dd: Path, n_base: int) -> DeltaDocs:
    meta = json.loads((dd / "meta.json").read_text(encoding="utf-8"))
    chunk_ids = json.loads((dd / "chunk_ids.json").read_text(encoding="utf-8"))
    docs = json.loads((dd / DELTA_DOCS_FILE).read_text(encoding="utf-8"))
    hidden = np.asarray(json.loads((dd / HIDDEN_FILE).read_text(encoding="utf-8")), dtype=np.int64)
    if len(docs) != len(chunk_ids) or int(meta["base_docs"]) != n_base or (hidden.size and hidden.max() >= n_base):
        raise ValueError(f"{dd}: delta BM25 documents and the base disagree")
    return DeltaDocs.of(chunk_ids, docs, hidden, float(meta["base_avg_doc_len"]))


def build_lexical_delta(
    chunks: Sequence[Chunk],
    gen_dir: Path,
    prev_gen_dir: Path | None,
    hidden: Collection[str],
    *,
    user_dict_file: Path | None = None,
) -> dict[str, int]:
    """Write ``<gen_dir>/delta/lexical/`` for delta/'s ``chunks`` of a layered generation
    whose base's lexical/ is in ``gen_dir`` already; ``hidden``: base chunks not live.

    Only delta/'s documents are tokenized (or carried from the previous generation's
    delta/); the base's BM25 stays as it is and scores delta/'s documents (DeltaDocs).
    """
    base_dir = gen_dir / LEXICAL_DIR
    out_dir = gen_dir / DELTA_DIR / LEXICAL_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    base_meta = json.loads((base_dir / "meta.json").read_text(encoding="utf-8"))
    words = set((base_dir / USERDICT_FILE).read_text(encoding="utf-8").split())
    prev_tokens: dict[str, list[str]] = {}
    avg_len = base_meta.get("avg_doc_len")
    prev_dd = prev_gen_dir / DELTA_DIR / LEXICAL_DIR if prev_gen_dir is not None else None
    if prev_dd is not None and prev_dd.is_dir():  # the same base: its files are ours
        words |= set((prev_dd / USERDICT_FILE).read_text(encoding="utf-8").split())
        prev_meta = json.loads((prev_dd / "meta.json").read_text(encoding="utf-8"))
        avg_len = prev_meta["base_avg_doc_len"]
        prev_ids = json.loads((prev_dd / "chunk_ids.json").read_text(encoding="utf-8"))
        prev_docs = json.loads((prev_dd / DELTA_DOCS_FILE).read_text(encoding="utf-8"))
        hashes = json.loads((prev_dd / "text_hashes.json").read_text(encoding="utf-8"))
        prev_tokens = dict(zip(hashes, prev_docs, strict=True)) if len(prev_ids) == len(hashes) else {}
    if avg_len is None:  # a base written before avg_doc_len was recorded
        lengths = [len(t) for t in _read_tokens(base_dir / TOKENS_FILE).values()]
        avg_len = float(np.mean(lengths)) if lengths else 0.0
    tokenizer = ChineseTokenizer(words, user_dict_file)
    fresh = {c.article_path for c in chunks if c.text_hash not in prev_tokens}
    new_words = derive_user_words([c for c in chunks if c.article_path in fresh]) - words
    tokenizer.add_words(new_words)
    docs = [prev_tokens.get(c.text_hash) or tokenizer.tokens(c.embed_text) for c in chunks]
    base_ids = json.loads((base_dir / "chunk_ids.json").read_text(encoding="utf-8"))
    hidden_rows = [i for i, cid in enumerate(base_ids) if cid in hidden]

    def dump(name: str, obj: object) -> None:
        (out_dir / name).write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")

    dump("chunk_ids.json", [c.chunk_id for c in chunks])
    dump("text_hashes.json", [c.text_hash for c in chunks])
    dump(DELTA_DOCS_FILE, docs)
    dump(HIDDEN_FILE, hidden_rows)
    (out_dir / USERDICT_FILE).write_text("\n".join(sorted(words | new_words)) + "\n", encoding="utf-8")
    dump("meta.json", {"tokenizer_version": TOKENIZER_VERSION, "docs": len(docs), "base_docs": len(base_ids),
                       "base_avg_doc_len": avg_len, "user_words": len(words | new_words)})
    return {"tokenized": len(fresh), "hidden": len(hidden_rows)}
