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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .types import Chunk

LEXICAL_DIR = "lexical"
TOKENS_FILE = "tokens.jsonl"
USERDICT_FILE = "userdict.txt"
TOKENIZER_VERSION = "1"

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


class ChineseTokenizer:
    """jieba segmentation with the corpus's user words.

    By default it shares jieba's process-wide tokenizer, which the answer extractor also
    uses: loading jieba's dictionary costs about a second, and the words added here only
    ever grow (see module docstring), so sharing them keeps both segmentations alike.
    ``private=True`` gives an isolated tokenizer (tests).
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
        if user_dict_file is not None:
            self._jieba.load_userdict(str(user_dict_file))
        self.add_words(user_words)

    def add_words(self, words: Iterable[str]) -> None:
        for w in words:
            if w and w not in self.user_words:
                self.user_words.add(w)
                # a high frequency so the compound wins over its parts
                self._jieba.add_word(w, freq=2000)

    def tokens(self, text: str) -> list[str]:
        """Lower-cased search tokens of ``text`` (compounds and their parts)."""
        return [t.lower() for t in self._jieba.cut_for_search(text) if _is_token(t)]

    def query_tokens(self, text: str) -> list[str]:
        toks = [t for t in self.tokens(text) if t not in QUESTION_STOPWORDS]
        return toks

    def words(self, text: str) -> list[str]:
        """Plain segmentation (no overlapping sub-words)."""
        return [t for t in self._jieba.cut(text) if _is_token(t)]


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
class LexicalIndex:
    """A loaded BM25 index over the chunks of one generation, in index row order."""

    bm25: object
    tokenizer: ChineseTokenizer
    chunk_ids: list[str]  # BM25 document i is the chunk with chunk_ids[i]

    @property
    def n_docs(self) -> int:
        return len(self.chunk_ids)

    def scores(self, query: str) -> tuple[np.ndarray, list[str]]:
        toks = self.tokenizer.query_tokens(query)
        vocab = self.bm25.vocab_dict  # type: ignore[attr-defined]
        known = [t for t in toks if t in vocab]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float32), toks
        return np.asarray(self.bm25.get_scores(known), dtype=np.float32), toks  # type: ignore[attr-defined]

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
                # for people reading the file: counted on a build from scratch and carried by
                # updates (counting every token of 100k chunks took seconds of each update)
                "top_terms": top_terms if top_terms is not None else _top_terms(corpus_tokens),
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return {"tokenized": tokenized, "reused": len(chunks) - tokenized, "user_words": len(words)}


def load_lexical(gen_dir: Path, *, user_dict_file: Path | None = None) -> LexicalIndex:
    bm25s = _import_bm25s()

    d = gen_dir / LEXICAL_DIR
    meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    words = (d / USERDICT_FILE).read_text(encoding="utf-8").split()
    tokenizer = ChineseTokenizer(words, user_dict_file)
    chunk_ids = json.loads((d / "chunk_ids.json").read_text(encoding="utf-8"))
    if int(meta["docs"]) != len(chunk_ids):
        raise ValueError(f"{d}: BM25 index and chunk list disagree")
    bm25 = bm25s.BM25.load(str(d / "bm25"), show_progress=False) if chunk_ids else bm25s.BM25()
    return LexicalIndex(bm25=bm25, tokenizer=tokenizer, chunk_ids=chunk_ids)
