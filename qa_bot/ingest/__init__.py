"""Parse a folder of Jekyll posts into :class:`~qa_bot.types.Article` objects.

The posts come from a scraper and are messy: Markdown flash items and long HTML
articles, stock-link tags splitting words, K-line images, hidden paragraphs,
``> digest`` lines repeating the lead, three footer styles, and the odd malformed
file. They also come by ``git pull`` from people we do not control, so each post is
parsed under :class:`IngestLimits`, and *any* failure of one post (a PostError, but
also RecursionError, MemoryError or a bug) becomes a :class:`~qa_bot.types.Skipped`
with the file and the reason: one file never stops an update, and is never silent.

Modules: ``files`` (walking, symlinks, capped reads, file names), ``frontmatter``
(YAML under an alias budget, dates), ``markdown`` (linear-time line rules), ``body``
(HTML walk, paragraphs, digests, source).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from qa_bot.chunking import count_passages
from qa_bot.ingest.body import (
    extract_source,
    fresh_digests,
    markup_to_paragraphs,
    split_body_lines,
)
from qa_bot.ingest.files import Candidate, display_path, find_candidates, name_problem, read_capped
from qa_bot.ingest.frontmatter import (
    load_front_matter,
    normalize_date,
    split_front_matter,
    str_tuple,
)
from qa_bot.ingest.limits import CorpusError, Deadline, IngestLimits, PostError
from qa_bot.ingest.stamps import FileStamp, matches
from qa_bot.types import Article, Skipped

log = logging.getLogger(__name__)
# one line per skipped post; callers that list the skips themselves silence it
skip_log = logging.getLogger(f"{__name__}.skipped")

__all__ = [
    "CorpusError",
    "CorpusScan",
    "IngestLimits",
    "PostError",
    "display_path",
    "file_hash",
    "load_corpus",
    "parse_bytes",
    "parse_post",
    "log_skips",
    "scan_corpus",
]

#: a fallback title (empty ``title:``) is cut to this many characters
FALLBACK_TITLE_CHARS = 40
#: a reason shown to the user is cut to this many characters
_MAX_REASON_CHARS = 300


def file_hash(data: bytes) -> str:
    """sha256 hex of the raw file bytes (so any edit, even whitespace, re-indexes)."""
    return hashlib.sha256(data).hexdigest()


_SENTENCE_END = re.compile(r"[。！？!?；;]")


def _fallback_title(paragraphs: list[str]) -> str:
    first = paragraphs[0]
    m = _SENTENCE_END.search(first)
    sentence = first[: m.end()] if m else first
    if len(sentence) > FALLBACK_TITLE_CHARS:
        sentence = sentence[: FALLBACK_TITLE_CHARS - 1].rstrip() + "…"
    return sentence


def _clean_title(raw: object) -> str:
    if raw is None:
        return ""
    text = str(raw)
    if not text.isprintable():
        # no control characters: an ANSI escape in a title would reach terminals and chats
        text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return " ".join(text.split())


def _check_storable(article: Article) -> None:
    """Every text must be valid UTF-8: SQLite and JSON refuse lone surrogates (which
    YAML's ``\\ud800`` escape produces), and would fail the whole update, not this post."""
    texts = [article.path, article.title, article.url or "", article.source or "", article.date or ""]
    for text in [*texts, *article.categories, *article.tags, *article.paragraphs]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise PostError("contains characters that are not valid Unicode text") from None


def _check_passages(article: Article, limits: IngestLimits) -> None:
    n = count_passages(article, limit=limits.max_post_chunks)
    if n > limits.max_post_chunks:
        raise PostError(
            f"more than {limits.max_post_chunks} passages (limit QA_BOT_MAX_POST_CHUNKS)"
        )


def _paragraphs(body: str, limits: IngestLimits, deadline: Deadline) -> tuple[list[str], str | None, str | None]:
    content_lines, digest_lines, url = split_body_lines(body, deadline)
    paragraphs, source = extract_source(markup_to_paragraphs(content_lines, limits, deadline))
    digests, digest_source = extract_source(markup_to_paragraphs(digest_lines, limits, deadline))
    paragraphs[:0] = fresh_digests(digests, paragraphs, deadline)
    if len(paragraphs) > limits.max_post_paragraphs:
        raise PostError(
            f"more than {limits.max_post_paragraphs} paragraphs (limit QA_BOT_MAX_POST_PARAGRAPHS)"
        )
    return paragraphs, url, source or digest_source


def parse_bytes(data: bytes, rel_path: str, limits: IngestLimits | None = None) -> Article:
    """Parse one post's raw bytes; ``rel_path`` becomes :attr:`Article.path`."""
    limits = limits or IngestLimits()
    deadline = Deadline(limits.max_post_seconds)
    if len(data) > limits.max_post_bytes:
        raise PostError(f"larger than {limits.max_post_bytes} bytes (limit QA_BOT_MAX_POST_BYTES)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PostError("not UTF-8") from exc
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")

    raw_meta, body = split_front_matter(text)
    meta = load_front_matter(raw_meta, limits)
    paragraphs, url, source = _paragraphs(body, limits, deadline)
    if not paragraphs:
        raise PostError("empty body after cleaning")

    title = _clean_title(meta.get("title"))
    article = Article(
        path=rel_path,
        title=title or _clean_title(_fallback_title(paragraphs)),
        date=normalize_date(meta.get("date")),
        categories=str_tuple(meta.get("categories", meta.get("category"))),
        tags=str_tuple(meta.get("tags", meta.get("tag"))),
        url=url,
        source=source,
        paragraphs=tuple(paragraphs),
        content_hash=file_hash(data),
    )
    _check_storable(article)
    deadline.check()
    _check_passages(article, limits)
    return article


def parse_post(path: Path, rel_path: str, limits: IngestLimits | None = None) -> Article:
    """Parse one post file. Raises :class:`PostError` with a user-facing reason."""
    limits = limits or IngestLimits()
    root = Path(path).parent.resolve()
    data = read_capped(Candidate(rel_path, os.fspath(path)), root, limits.max_post_bytes)
    return parse_bytes(data, rel_path, limits)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PostError):
        reason = exc.reason
    elif isinstance(exc, RecursionError):
        reason = "nested too deeply to parse"
    elif isinstance(exc, MemoryError):
        reason = "ran out of memory while parsing"
    else:  # a bug, but one post's bug: the others are still indexed
        reason = f"could not be parsed ({type(exc).__name__}: {exc})"
    reason = display_path(" ".join(reason.split()))
    return reason if len(reason) <= _MAX_REASON_CHARS else reason[: _MAX_REASON_CHARS - 1] + "…"


def _read_post(cand: Candidate, root_real: Path, limits: IngestLimits) -> bytes:
    problem = name_problem(cand.rel)
    if problem:
        raise PostError(problem)
    return read_capped(cand, root_real, limits.max_post_bytes)


@dataclass
class CorpusScan:
    """What ``scan_corpus`` found: the posts it read, what it skipped, and the posts it
    did not read because their stamps say they are unchanged."""

    articles: list[Article]  # read and parsed, sorted by path
    skipped: list[Skipped]
    unchanged: dict[str, FileStamp]  # path → its stamp (size and mtime matched)
    #: path → os.lstat of each parsed regular file, taken before reading it (its next stamp)
    stats: dict[str, os.stat_result] = field(default_factory=dict)


def scan_corpus(
    corpus_dir: Path | str | os.PathLike[str],
    limits: IngestLimits | None = None,
    stamps: Mapping[str, FileStamp] | None = None,
) -> CorpusScan:
    """All posts under ``corpus_dir`` (recursively), except regular files whose size and
    mtime match their stamp (``qa_bot.ingest.stamps``): those are not read; nor parsed
    are stamped files read again whose bytes are still the stamped ones.

    Raises :class:`CorpusError` when there is no post, or when not one post could be
    ingested (publishing that would remove every answer).
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.exists():
        raise CorpusError(f"corpus directory not found: {corpus_dir}")
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus path is not a directory: {corpus_dir}")
    limits = limits or IngestLimits()
    candidates, problems = find_candidates(corpus_dir)
    if not candidates:
        raise CorpusError(f"no .md posts found under {corpus_dir}")
    root_real = corpus_dir.resolve()
    scan = CorpusScan([], [Skipped(path=p, reason=r) for p, r in problems], {})
    for cand in candidates:
        st = _regular_stat(cand.fspath)
        stamp = stamps.get(cand.rel) if stamps and st is not None else None
        if stamp is not None and st is not None and matches(stamp, st):
            scan.unchanged[cand.rel] = stamp
            continue
        try:
            data = _read_post(cand, root_real, limits)
            if stamp is not None and st is not None and file_hash(data) == stamp.content_hash:
                # touched, not changed (a checkout, a copy): the published article as it is
                scan.unchanged[cand.rel] = replace(stamp, size=st.st_size, mtime_ns=st.st_mtime_ns)
                continue
            scan.articles.append(parse_bytes(data, cand.rel, limits))
        except Exception as exc:  # noqa: BLE001 - any failure of one post is that post's skip
            log.debug("skipping %s", cand.shown, exc_info=not isinstance(exc, PostError))
            scan.skipped.append(Skipped(path=cand.shown, reason=_reason(exc)))
            continue
        if st is not None:
            scan.stats[cand.rel] = st
    if not scan.articles and not scan.unchanged:
        first = scan.skipped[0]
        raise CorpusError(
            f"none of the {len(candidates)} posts under {corpus_dir} could be read "
            f"(first: {first.path}: {first.reason})"
        )
    return scan


def _regular_stat(path: str) -> os.stat_result | None:
    """lstat of a regular file; None for links and the rest (never stamped)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def load_corpus(
    corpus_dir: Path | str | os.PathLike[str], limits: IngestLimits | None = None
) -> tuple[list[Article], list[Skipped]]:
    """All posts under ``corpus_dir`` (recursively), sorted by path, plus what was skipped
    (``scan_corpus`` without stamps: every file is read)."""
    scan = scan_corpus(corpus_dir, limits)
    return scan.articles, scan.skipped


def log_skips(skipped: Iterable[Skipped]) -> None:
    """One warning line per skipped post, for callers that do not print the skips
    themselves (the watcher, the bot's /reindex); ``load_corpus`` only returns them."""
    for sk in skipped:
        skip_log.warning("skipping %s: %s", sk.path, sk.reason)
