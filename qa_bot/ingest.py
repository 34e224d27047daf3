"""Parse a folder of Jekyll posts into :class:`~qa_bot.types.Article` objects.

The posts come from a scraper and are messy: Markdown flash items and long HTML
articles, stock-link tags splitting words, K-line images, hidden paragraphs,
``> digest`` lines repeating the lead, three footer styles, and the odd malformed
file. Every rule below exists because a real post needed it; a bad file becomes a
:class:`~qa_bot.types.Skipped` with a reason, never a crash and never silence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml
from selectolax.lexbor import LexborHTMLParser, LexborNode

from qa_bot.types import Article, Skipped

log = logging.getLogger(__name__)

__all__ = [
    "CorpusError",
    "PostError",
    "file_hash",
    "load_corpus",
    "parse_bytes",
    "parse_post",
]

#: a fallback title (empty ``title:``) is cut to this many characters
FALLBACK_TITLE_CHARS = 40


class PostError(Exception):
    """One post cannot be ingested; ``reason`` is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CorpusError(Exception):
    """The corpus as a whole is unusable (missing dir, no posts)."""


def file_hash(data: bytes) -> str:
    """sha256 hex of the raw file bytes (so any edit, even whitespace, re-indexes)."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- front matter

_FENCE = re.compile(r"^---[ \t]*$")


def _split_front_matter(text: str) -> tuple[str, str]:
    lines = text.split("\n")
    i = 0
    # some posts start with a blank line before the opening fence
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines) or not _FENCE.match(lines[i]):
        raise PostError("no front matter (file must start with a '---' line)")
    for j in range(i + 1, len(lines)):
        if _FENCE.match(lines[j]):
            return "\n".join(lines[i + 1 : j]), "\n".join(lines[j + 1 :])
    raise PostError("no front matter (closing '---' line missing)")


# libyaml's parser when PyYAML was built with it: ten times faster on large corpora
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that leaves timestamps as text.

    PyYAML turns dates into datetimes only when they match its own pattern (not
    "+0800") and raises a bare ValueError on "2021-13-45"; one parser for all dates
    is simpler and never crashes.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(raw: str) -> dict[str, Any]:
    try:
        meta = yaml.load(raw, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise PostError(f"invalid YAML front matter: {first[0] if first else exc}") from exc
    if meta is None:
        return {}  # an empty front matter is legal Jekyll
    if not isinstance(meta, dict):
        raise PostError(f"front matter is not a mapping (got {type(meta).__name__})")
    return meta


_DATE = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def _normalize_date(value: Any) -> str | None:
    """ISO 8601, keeping the offset only when the post gave one; None when unusable."""
    if not isinstance(value, str):
        return None  # e.g. YAML reading a bare "+0700" as an octal number
    m = _DATE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    try:
        if hour is None:
            return dt.date(int(year), int(month), int(day)).isoformat()
        tzinfo = None
        if tz:
            if tz == "Z":
                tzinfo = dt.timezone.utc
            else:
                digits = tz[1:].replace(":", "")
                delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                tzinfo = dt.timezone(-delta if tz[0] == "-" else delta)
        stamp = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tzinfo,
        )
    except ValueError:
        return None  # 2021-13-45 and friends
    return stamp.isoformat()


def _str_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # Jekyll splits a string of categories/tags on whitespace
        return tuple(value.split())
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if v is not None and str(v).strip())
    return (str(value),)


# --------------------------------------------------------------------------- body: lines

# the article link Jekyll renders as an autolink; "<>" is the scraper's "no link"
_URL_LINE = re.compile(r"^\s*<((?:https?|ftp)://[^<>\s]*)?>\s*$")
# "[返回东财滚动新闻](../emnews/)", "[返回首页](../)", or both on one line joined by "｜";
# the seed even has a stray character after the last link
_FOOTER_LINE = re.compile(r"^\s*\[返回[^\]]*\]\([^)]*\)")
_DIGEST_LINE = re.compile(r"^ {0,3}>\s?(.*)$")


def _split_body_lines(body: str) -> tuple[list[str], list[str], str | None]:
    """(content lines, digest lines, url). Footer and URL lines are consumed.

    A removed line leaves a blank one behind in each stream, so paragraph (and
    blockquote) boundaries survive.
    """
    content: list[str] = []
    digest: list[str] = []
    url: str | None = None
    for line in body.split("\n"):
        if m := _URL_LINE.match(line):
            url = m.group(1) or None
        elif _FOOTER_LINE.match(line):
            pass
        elif m := _DIGEST_LINE.match(line):
            digest.append(m.group(1))
            content.append("")
            continue
        else:
            content.append(line)
            digest.append("")
            continue
        content.append("")
        digest.append("")
    return content, digest, url


# --------------------------------------------------------------------------- body: markup

_HTML_LINE = re.compile(r"^\s*<(?:[A-Za-z][\w-]*|/[A-Za-z]|!--)")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
# CJK text puts emphasis right against letters (第二段*强调*), so only ASCII
# alphanumerics guard against "3*5*2"
_MD_EM = re.compile(r"(?<![A-Za-z0-9*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![A-Za-z0-9*])")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def _strip_markdown_line(line: str) -> str:
    if _HTML_LINE.match(line):
        return line  # HTML is handled by the parser; don't touch its attributes
    if m := _MD_HEADING.match(line):
        line = m.group(1)
    line = _MD_IMAGE.sub("", line)
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_STRONG.sub(r"\2", line)
    return _MD_EM.sub(r"\1", line)


# "<1%" and "a<b。" are text, not tags: escape every "<" that cannot start markup, so
# no parser version can swallow what follows it
_BARE_LT = re.compile(r"<(?!/?[A-Za-z][A-Za-z0-9-]*(?:[\s/>]|$)|!)")

_BLOCK_TAGS = frozenset(
    {
        "p", "div", "center", "section", "article", "header", "footer", "blockquote",
        "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd",
        "table", "tr", "td", "th", "pre", "figure", "figcaption", "hr",
    }
)  # fmt: skip
_DROP_TAGS = frozenset(
    {"img", "script", "style", "noscript", "iframe", "video", "audio", "svg", "head", "title"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def _is_hidden(node: LexborNode) -> bool:
    attrs = node.attributes
    if "hidden" in attrs:
        return True
    return bool(_HIDDEN_STYLE.search(attrs.get("style") or ""))


class _Collector:
    """Walks the parsed body, cutting paragraphs at block elements and blank lines."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self._buf: list[str] = []

    def flush(self) -> None:
        text = "".join(self._buf)
        self._buf.clear()
        # top-level text is Markdown: blank lines separate its paragraphs
        for part in re.split(r"\n[ \t\u3000]*\n", text):
            if cleaned := _clean_paragraph(part):
                self.paragraphs.append(cleaned)

    def walk(self, node: LexborNode) -> None:
        child = node.child
        while child is not None:
            tag = child.tag
            if tag == "-text":
                # no separator: stock-link <span>/<a> tags split words mid-sentence
                self._buf.append(child.text_content or "")
            elif tag == "br":
                self._buf.append("\n")
            elif tag is None or tag.startswith("-") or tag in _DROP_TAGS or _is_hidden(child):
                pass  # comments (<!-- EM_StockImg -->), images, hidden paragraphs
            elif tag in _BLOCK_TAGS:
                self.flush()
                self.walk(child)
                self.flush()
            else:
                self.walk(child)
            child = child.next


_CJK = r"\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_CJK_NEWLINE = re.compile(rf"(?<=[{_CJK}])\s*\n\s*(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")


def _clean_paragraph(text: str) -> str:
    # a line break inside Chinese text is a soft wrap, not a word gap
    text = _CJK_NEWLINE.sub("", text)
    return _SPACES.sub(" ", text).strip()


def _markup_to_paragraphs(lines: list[str]) -> list[str]:
    source = "\n".join(_strip_markdown_line(line) for line in lines)
    if not source.strip():
        return []
    tree = LexborHTMLParser(_BARE_LT.sub("&lt;", source))
    collector = _Collector()
    if tree.body is not None:
        collector.walk(tree.body)
    collector.flush()
    return collector.paragraphs


# --------------------------------------------------------------------------- body: content rules

_SOURCE = re.compile(r"[（(]\s*文章来源\s*[:：]\s*([^）)]+?)\s*[）)]\s*$")
_IMAGE_CREDIT = re.compile(r"^图片来源\s*[:：]")
_TRAILING_PAREN = re.compile(r"[（(][^（）()]{1,30}[）)]\s*$")
_NON_WORD = re.compile(r"[\W_]+")


def _extract_source(paragraphs: list[str]) -> tuple[list[str], str | None]:
    kept: list[str] = []
    source: str | None = None
    for para in paragraphs:
        m = _SOURCE.search(para)
        if m:
            source = m.group(1).strip()
            para = para[: m.start()].strip()
        # the credit line of an image we dropped says nothing on its own
        if para and not _IMAGE_CREDIT.match(para):
            kept.append(para)
    if source:
        # Kept as text too: readers ask where a story was first published, and the
        # chunker joins this short line to the last paragraph.
        kept.append(f"（文章来源：{source}）")
    return kept, source


def _norm_for_compare(text: str) -> str:
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text)).lower()


def _digest_is_repeated(digest: str, paragraphs: list[str]) -> bool:
    body = _norm_for_compare("".join(paragraphs))
    # the digest often ends with the outlet in brackets, "（上海证券报）", which the body lacks
    candidates = (digest, _TRAILING_PAREN.sub("", digest), digest.rstrip("…. "))
    return any((c := _norm_for_compare(cand)) and c in body for cand in candidates)


_SENTENCE_END = re.compile(r"[。！？!?；;]")


def _fallback_title(paragraphs: list[str]) -> str:
    first = paragraphs[0]
    m = _SENTENCE_END.search(first)
    sentence = first[: m.end()] if m else first
    if len(sentence) > FALLBACK_TITLE_CHARS:
        sentence = sentence[: FALLBACK_TITLE_CHARS - 1].rstrip() + "…"
    return sentence


# --------------------------------------------------------------------------- public API


def parse_bytes(data: bytes, rel_path: str) -> Article:
    """Parse one post's raw bytes; ``rel_path`` becomes :attr:`Article.path`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PostError("not UTF-8") from exc
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")

    raw_meta, body = _split_front_matter(text)
    meta = _load_yaml(raw_meta)

    content_lines, digest_lines, url = _split_body_lines(body)
    paragraphs, source = _extract_source(_markup_to_paragraphs(content_lines))
    digests, digest_source = _extract_source(_markup_to_paragraphs(digest_lines))
    # a digest repeating the lead must not be indexed twice; one saying something new stays
    fresh = [d for d in digests if not _digest_is_repeated(d, paragraphs)]
    paragraphs[:0] = fresh
    source = source or digest_source
    if not paragraphs:
        raise PostError("empty body after cleaning")

    title_raw = meta.get("title")
    title = _SPACES.sub(" ", str(title_raw)).strip() if title_raw is not None else ""
    return Article(
        path=rel_path,
        title=title or _fallback_title(paragraphs),
        date=_normalize_date(meta.get("date")),
        categories=_str_tuple(meta.get("categories", meta.get("category"))),
        tags=_str_tuple(meta.get("tags", meta.get("tag"))),
        url=url,
        source=source,
        paragraphs=tuple(paragraphs),
        content_hash=file_hash(data),
    )


def parse_post(path: Path, rel_path: str) -> Article:
    """Parse one post file. Raises :class:`PostError` with a user-facing reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PostError(f"unreadable: {exc.strerror or exc}") from exc
    return parse_bytes(data, rel_path)


def _post_files(corpus_dir: Path) -> list[tuple[str, Path]]:
    found = []
    for p in corpus_dir.rglob("*.md"):
        rel = p.relative_to(corpus_dir)
        # .git, editor backups and the like are not posts
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        found.append((rel.as_posix(), p))
    return sorted(found)


def load_corpus(corpus_dir: Path) -> tuple[list[Article], list[Skipped]]:
    """All posts under ``corpus_dir`` (recursively), sorted by path, plus what was skipped."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.exists():
        raise CorpusError(f"corpus directory not found: {corpus_dir}")
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus path is not a directory: {corpus_dir}")
    files = _post_files(corpus_dir)
    if not files:
        raise CorpusError(f"no .md posts found under {corpus_dir}")
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for rel, path in files:
        try:
            articles.append(parse_post(path, rel))
        except PostError as exc:
            log.warning("skipping %s: %s", rel, exc.reason)
            skipped.append(Skipped(path=rel, reason=exc.reason))
    return articles, skipped
