"""A post's body → paragraphs, digest paragraphs, URL and source.

Every rule here is linear in the body: the HTML tree is walked with an explicit stack
(1,000 nested ``<div>`` used to raise RecursionError), and the HTML parser itself is
only given markup whose tag count it handles quickly (its cost grows with tags times
open elements, and with the square of one element's attributes).
"""

from __future__ import annotations

import re
import unicodedata

from selectolax.lexbor import LexborHTMLParser, LexborNode

from qa_bot.ingest.limits import Deadline, IngestLimits, PostError
from qa_bot.ingest.markdown import strip_markdown_line

#: a tag with more attributes than this is refused (the parser is quadratic in them)
MAX_ATTRIBUTES_PER_TAG = 512

# --------------------------------------------------------------------------- lines

# the article link Jekyll renders as an autolink; "<>" is the scraper's "no link"
_URL_LINE = re.compile(r"^\s*<((?:https?|ftp)://[^<>\s]*)?>\s*$")
# "[返回东财滚动新闻](../emnews/)", "[返回首页](../)", or both on one line joined by "｜";
# the seed even has a stray character after the last link
_FOOTER_LINE = re.compile(r"^\s*\[返回[^\]]*\]\([^)]*\)")
_DIGEST_LINE = re.compile(r"^ {0,3}>\s?(.*)$")


def split_body_lines(body: str, deadline: Deadline) -> tuple[list[str], list[str], str | None]:
    """(content lines, digest lines, url). Footer and URL lines are consumed.

    A removed line leaves a blank one behind in each stream, so paragraph (and
    blockquote) boundaries survive.
    """
    content: list[str] = []
    digest: list[str] = []
    url: str | None = None
    for line in body.split("\n"):
        deadline.check()
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


# --------------------------------------------------------------------------- markup

# "<1%" and "a<b。" are text, not tags: escape every "<" that cannot start markup, so
# no parser version can swallow what follows it
_BARE_LT = re.compile(r"<(?!/?[A-Za-z][A-Za-z0-9-]*(?:[\s/>]|$)|!)")
_START_TAG = re.compile(r"<[A-Za-z]")
# a start tag up to its ">", quoted values skipped whole (each character is taken by
# exactly one branch, so the scan is linear)
_TAG = re.compile(r"""<[A-Za-z](?:[^>"']|"[^"]*"|'[^']*')*>?""")
_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")

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


def _check_markup(source: str, limits: IngestLimits) -> None:
    """Refuse markup the HTML parser would take seconds on, before it sees it."""
    tags = len(_START_TAG.findall(source))
    if tags > limits.max_html_tags:
        raise PostError(f"more than {limits.max_html_tags} HTML tags (limit QA_BOT_MAX_HTML_TAGS)")
    if not tags:
        return
    for m in _TAG.finditer(source):
        # over-counts (a "/" or "=" splits no attribute), which only errs on the safe side
        words = _QUOTED.sub(" ", m.group()).replace("=", " ").split()
        if len(words) > MAX_ATTRIBUTES_PER_TAG:
            raise PostError(f"an HTML tag with more than {MAX_ATTRIBUTES_PER_TAG} attributes")


def _is_hidden(node: LexborNode) -> bool:
    attrs = node.attributes
    if "hidden" in attrs:
        return True
    return bool(_HIDDEN_STYLE.search(attrs.get("style") or ""))


class _Collector:
    """Walks the parsed body, cutting paragraphs at block elements and blank lines."""

    def __init__(self, limits: IngestLimits, deadline: Deadline) -> None:
        self.paragraphs: list[str] = []
        self._buf: list[str] = []
        self._limits = limits
        self._deadline = deadline

    def flush(self) -> None:
        text = "".join(self._buf)
        self._buf.clear()
        # top-level text is Markdown: blank lines separate its paragraphs
        for part in re.split(r"\n[ \t\u3000]*\n", text):
            if cleaned := clean_paragraph(part):
                self.paragraphs.append(cleaned)
        if len(self.paragraphs) > self._limits.max_post_paragraphs:
            raise PostError(
                f"more than {self._limits.max_post_paragraphs} paragraphs "
                "(limit QA_BOT_MAX_POST_PARAGRAPHS)"
            )

    def walk(self, root: LexborNode) -> None:
        """Depth-first over ``root``'s children with an explicit stack: one frame per open
        element, holding its next child and whether it is a block (flush when left)."""
        max_depth = self._limits.max_nesting_depth
        stack: list[list] = [[root.child, False]]
        while stack:
            self._deadline.check()
            frame = stack[-1]
            child: LexborNode | None = frame[0]
            if child is None:
                stack.pop()
                if frame[1]:
                    self.flush()
                continue
            frame[0] = child.next
            tag = child.tag
            if tag == "-text":
                # no separator: stock-link <span>/<a> tags split words mid-sentence
                self._buf.append(child.text_content or "")
            elif tag == "br":
                self._buf.append("\n")
            elif tag is None or tag.startswith("-") or tag in _DROP_TAGS or _is_hidden(child):
                pass  # comments (<!-- EM_StockImg -->), images, hidden paragraphs
            else:
                block = tag in _BLOCK_TAGS
                if block:
                    self.flush()
                if len(stack) > max_depth:
                    raise PostError(
                        f"HTML nested deeper than {max_depth} elements "
                        "(limit QA_BOT_MAX_NESTING_DEPTH)"
                    )
                stack.append([child.child, block])


def markup_to_paragraphs(lines: list[str], limits: IngestLimits, deadline: Deadline) -> list[str]:
    stripped = []
    for line in lines:
        deadline.check()
        stripped.append(strip_markdown_line(line))
    source = "\n".join(stripped)
    if not source.strip():
        return []
    _check_markup(source, limits)
    tree = LexborHTMLParser(_BARE_LT.sub("&lt;", source))
    collector = _Collector(limits, deadline)
    if tree.body is not None:
        collector.walk(tree.body)
    collector.flush()
    return collector.paragraphs


# --------------------------------------------------------------------------- paragraphs

_CJK = r"\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_SPACES = re.compile(r"\s+")


def _join_run(text: str, m: re.Match[str]) -> str:
    # a line break inside Chinese text is a soft wrap, not a word gap
    s, e = m.span()
    if (
        "\n" in m.group()
        and s > 0
        and e < len(text)
        and _CJK_CHAR.match(text, s - 1)
        and _CJK_CHAR.match(text, e)
    ):
        return ""
    return " "


def clean_paragraph(text: str) -> str:
    """Whitespace runs → one space; a run holding a line break between two CJK
    characters → nothing. One pass over the runs: the former lookaround regex
    ``(?<=[CJK])\\s*\\n\\s*(?=[CJK])`` was quadratic in a long run of line breaks."""
    if "\n" not in text:
        return _SPACES.sub(" ", text).strip()
    return _SPACES.sub(lambda m: _join_run(text, m), text).strip()


# --------------------------------------------------------------------------- content rules

_SOURCE_HEAD = re.compile(r"[（(]\s*文章来源\s*[:：]")
_CLOSE_PARENS = "）)"
_IMAGE_CREDIT = re.compile(r"^图片来源\s*[:：]")
_TRAILING_PAREN = re.compile(r"[（(][^（）()]{1,30}[）)]\s*$")
_NON_WORD = re.compile(r"[\W_]+")


def find_source(para: str) -> tuple[int, str] | None:
    """(start, source) of a trailing "（文章来源：X）", as
    ``re.search(r"[（(]\\s*文章来源\\s*[:：]\\s*([^）)]+?)\\s*[）)]\\s*$")`` finds it,
    in linear time (the regex rescans to the end from every opening bracket)."""
    body = para.rstrip()
    if not body or body[-1] not in _CLOSE_PARENS:
        return None
    close = len(body) - 1
    # the source cannot hold a closing bracket: the match starts after the previous one
    first = max(body.rfind(")", 0, close), body.rfind("）", 0, close)) + 1
    for m in _SOURCE_HEAD.finditer(body, first, close):
        if m.end() < close:  # the regex's group needs one character
            return m.start(), body[m.end() : close].strip()
    return None


def extract_source(paragraphs: list[str]) -> tuple[list[str], str | None]:
    kept: list[str] = []
    source: str | None = None
    for para in paragraphs:
        found = find_source(para)
        if found is not None:
            start, source = found
            para = para[:start].strip()
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


def fresh_digests(digests: list[str], paragraphs: list[str], deadline: Deadline) -> list[str]:
    """Digests that do not repeat the body: one repeating the lead must not be indexed
    twice, one saying something new stays."""
    body = _norm_for_compare("".join(paragraphs))  # once, not once per digest
    fresh = []
    for digest in digests:
        deadline.check()
        # the digest often ends with the outlet in brackets, "（上海证券报）", which the body lacks
        candidates = (digest, _TRAILING_PAREN.sub("", digest), digest.rstrip("…. "))
        if not any((c := _norm_for_compare(cand)) and c in body for cand in candidates):
            fresh.append(digest)
    return fresh
