"""Articles → passages (:class:`~qa_bot.types.Chunk`).

A passage is normally one paragraph: news paragraphs are self-contained, and an
answer shown with its whole paragraph reads well. Two adjustments:

* a very short paragraph (a ``<strong>`` sub-heading, a one-line lead-in) carries
  too little to be retrieved on its own, so it joins a neighbour;
* a paragraph too long for the model's window would be silently truncated by the
  encoder, so it is split at sentence ends (then clause marks, then a hard cut),
  and every character ends up in exactly one chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

from qa_bot.types import Article, Chunk

__all__ = [
    "CHUNKER_VERSION",
    "chunk_article",
    "chunk_corpus",
    "count_passages",
    "split_sentences",
]

#: recorded in the index manifest; bump whenever the chunks produced for the same
#: articles change, so stale indexes are rebuilt
CHUNKER_VERSION = "1"

_SENTENCE_ENDS = frozenset("。！？；!?;｡．")
_CLAUSE_ENDS = frozenset("，、,：:")
# closing quotes/brackets belong to the sentence they close: 。” stays together
_CLOSERS = frozenset("”’\"'）)」』】〕》>")

# joins short paragraphs to their neighbour inside one chunk
_PARAGRAPH_JOINER = "\n"


def _split_at(text: str, ends: frozenset[str], *, ascii_period: bool = False) -> list[str]:
    """Cut after each run of ``ends`` (plus closers and whitespace); pieces concatenate to text."""
    pieces: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        # an ASCII "." ends a sentence only before whitespace: 6.35 and 3.5亿 are numbers
        is_end = c in ends or (ascii_period and c == "." and (i + 1 == n or text[i + 1].isspace()))
        if not is_end:
            i += 1
            continue
        j = i + 1
        while j < n and (text[j] in ends or text[j] in _CLOSERS):
            j += 1
        while j < n and text[j].isspace():
            j += 1
        pieces.append(text[start:j])
        start = i = j
    if start < n:
        pieces.append(text[start:])
    return pieces


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each keeping its end punctuation; ``"".join`` gives ``text`` back."""
    return _split_at(text, _SENTENCE_ENDS, ascii_period=True)


def _longest_fit(text: str, start: int, fits: Callable[[str], bool]) -> int:
    """Length of the longest prefix of ``text[start:]`` that fits (at least 1).

    Galloping, then bisection between the last fit and the first misfit: each probe
    costs its own length, so a piece of w characters costs O(w log w). Bisecting over
    the whole remainder, as before, made every piece cost the rest of the text: a 1 MB
    line without punctuation took minutes. Same answer for a monotone ``fits``.
    """
    rest = len(text) - start
    lo, probe = 1, 2  # lo always accepted: at least one char of progress
    while probe < rest and fits(text[start : start + probe]):
        lo, probe = probe, probe * 2
    if probe >= rest:
        if fits(text[start:]):
            return rest
        probe = rest
    hi = probe  # known not to fit
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if fits(text[start : start + mid]):
            lo = mid
        else:
            hi = mid
    return lo


def _hard_cut(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Longest prefixes that fit (token counts grow with length)."""
    out: list[str] = []
    start = 0
    while start < len(text):
        n = _longest_fit(text, start, fits)
        out.append(text[start : start + n])
        start += n
    return out


def _pack(pieces: list[str], fits: Callable[[str], bool], level: int) -> list[str]:
    """Greedily pack consecutive pieces; a piece too big alone is split one level finer."""
    out: list[str] = []
    cur = ""
    for piece in pieces:
        if cur and fits(cur + piece):
            cur += piece
            continue
        if cur:
            out.append(cur)
            cur = ""
        if fits(piece):
            cur = piece
        elif level == 0:
            parts = _pack(_split_at(piece, _CLAUSE_ENDS), fits, 1)
            out.extend(parts[:-1])
            cur = parts[-1]  # the tail may still share a chunk with what follows
        else:
            parts = _hard_cut(piece, fits)
            out.extend(parts[:-1])
            cur = parts[-1]
    if cur:
        out.append(cur)
    return out


def _split_to_window(text: str, fits: Callable[[str], bool]) -> list[str]:
    if fits(text):
        return [text]
    return _pack(split_sentences(text), fits, 0)


def _group_short(paragraphs: Iterable[str], min_chars: int) -> list[str]:
    """Join paragraphs shorter than ``min_chars`` to the next one (to the previous at the end)."""
    groups: list[list[str]] = []
    pending: list[str] = []
    for para in paragraphs:
        if not para.strip():
            continue
        pending.append(para)
        # a short paragraph is mostly a sub-heading or lead-in: it belongs to what follows
        if len(para) >= min_chars:
            groups.append(pending)
            pending = []
    if pending:
        if groups:
            groups[-1].extend(pending)  # a short closing line belongs to what precedes it
        else:
            groups.append(pending)  # the whole article is short: one chunk
    return [_PARAGRAPH_JOINER.join(g) for g in groups]


def _embed_text(title: str, text: str) -> str:
    return f"{title}\n{text}"


def _passage_texts(
    article: Article,
    count_tokens: Callable[[str], int] | None,
    max_tokens: int,
    min_chars: int,
) -> Iterator[str]:
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    count = count_tokens or (lambda s: len(s) + 2)
    title = article.title

    # a title taking most of the window (the model truncates it anyway) would leave room
    # for only a few characters per chunk: budget the passage on its own instead
    prefix = title if count(_embed_text(title, "")) <= max_tokens // 2 else ""

    def fits(text: str) -> bool:
        return count(_embed_text(prefix, text)) <= max_tokens

    for unit in _group_short(article.paragraphs, min_chars):
        yield from _split_to_window(unit, fits)


def chunk_article(
    article: Article,
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 512,
    min_chars: int = 30,
) -> list[Chunk]:
    """Passages of one article in reading order.

    ``count_tokens`` is the embedder's own counter (``Embedder.count_tokens``); without
    one, ``len(text) + 2`` stands in, which over-counts for the usual Chinese tokenizers.
    """
    title = article.title
    chunks: list[Chunk] = []
    for text in _passage_texts(article, count_tokens, max_tokens, min_chars):
        ordinal = len(chunks)
        embed = _embed_text(title, text)
        chunks.append(
            Chunk(
                chunk_id=f"{article.path}#{ordinal}",
                article_path=article.path,
                ordinal=ordinal,
                title=title,
                date=article.date,
                url=article.url,
                text=text,
                embed_text=embed,
                text_hash=hashlib.sha256(embed.encode("utf-8")).hexdigest(),
            )
        )
    return chunks


def count_passages(
    article: Article,
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 512,
    min_chars: int = 30,
    limit: int | None = None,
) -> int:
    """How many chunks :func:`chunk_article` makes, without making them; stops counting
    past ``limit`` (ingest's per-post cap: a hostile post need not be cut up whole)."""
    n = 0
    for _ in _passage_texts(article, count_tokens, max_tokens, min_chars):
        n += 1
        if limit is not None and n > limit:
            break
    return n


def chunk_corpus(
    articles: Iterable[Article],
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 512,
    min_chars: int = 30,
) -> list[Chunk]:
    """All chunks of all articles, in article order then reading order."""
    out: list[Chunk] = []
    for article in articles:
        out.extend(
            chunk_article(
                article, count_tokens=count_tokens, max_tokens=max_tokens, min_chars=min_chars
            )
        )
    return out
