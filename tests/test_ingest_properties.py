"""Property-based tests (hypothesis) of ingest: the linear-time rules give exactly what
the regexes they replace gave, and parsing generated HTML, Markdown, YAML and file
names either yields an article or a PostError, within a time bound per post."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa_bot import chunking
from qa_bot.ingest import CorpusError, IngestLimits, PostError, load_corpus, parse_bytes
from qa_bot.ingest.body import clean_paragraph, find_source
from qa_bot.ingest.files import display_path
from qa_bot.ingest.markdown import _heading_text, _strip_bracketed, _strip_strong
from qa_bot.types import Article

SECONDS_PER_POST = 2.0
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- the old rules

_OLD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_OLD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_OLD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_OLD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_OLD_SOURCE = re.compile(r"[（(]\s*文章来源\s*[:：]\s*([^）)]+?)\s*[）)]\s*$")
_CJK = r"\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_OLD_CJK_NEWLINE = re.compile(rf"(?<=[{_CJK}])\s*\n\s*(?=[{_CJK}])")


def old_clean(text: str) -> str:
    return re.sub(r"\s+", " ", _OLD_CJK_NEWLINE.sub("", text)).strip()


def line_of(alphabet: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(alphabet), max_size=40).map("".join)


MD = ["*", "**", "_", "__", " ", "a", "中", "[", "]", "(", ")", "!", "#", "\t", "\u3000"]
SRC = ["(", "（", ")", "）", "文章来源", ":", "：", " ", "x", "新华", "\u3000"]
WS = [" ", "\n", "\t", "\x0b", "\u3000", "中", "文", "a", "。"]


@PROPS
@given(line_of(MD))
def test_strong_matches_regex(line: str) -> None:
    assert _strip_strong(line) == _OLD_STRONG.sub(r"\2", line)


@PROPS
@given(line_of(MD))
def test_links_and_images_match_regex(line: str) -> None:
    assert _strip_bracketed(line, "![", keep_label=False) == _OLD_IMAGE.sub("", line)
    assert _strip_bracketed(line, "[", keep_label=True) == _OLD_LINK.sub(r"\1", line)


@PROPS
@given(line_of(MD))
def test_heading_matches_regex(line: str) -> None:
    m = _OLD_HEADING.match(line)
    assert _heading_text(line) == (m.group(1) if m else None)


@PROPS
@given(line_of(SRC))
def test_source_matches_regex(para: str) -> None:
    m = _OLD_SOURCE.search(para)
    assert find_source(para) == ((m.start(), m.group(1).strip()) if m else None)


@PROPS
@given(line_of(WS))
def test_clean_paragraph_matches_regexes(text: str) -> None:
    assert clean_paragraph(text) == old_clean(text)


def old_hard_cut(text: str, fits: Callable[[str], bool]) -> list[str]:
    out: list[str] = []
    rest = text
    while rest:
        if fits(rest):
            out.append(rest)
            break
        lo, hi = 1, len(rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(rest[:mid]):
                lo = mid
            else:
                hi = mid - 1
        out.append(rest[:lo])
        rest = rest[lo:]
    return out


@PROPS
@given(st.text(alphabet="ab中文 ", max_size=300), st.integers(1, 40))
def test_hard_cut_matches_bisection(text: str, window: int) -> None:
    # a tokenizer-like monotone count: CJK one token each, ASCII runs of four chars one token
    def count(s: str) -> int:
        return sum(1 for c in s if ord(c) > 127) + (sum(1 for c in s if ord(c) <= 127) + 3) // 4

    for fits in (lambda s: len(s) <= window, lambda s: count(s) <= window):
        assert chunking._hard_cut(text, fits) == old_hard_cut(text, fits)


# --------------------------------------------------------------------------- whole posts

TAGS = ["div", "p", "b", "i", "span", "a", "table", "td", "br", "img", "script", "ul", "li"]


@st.composite
def html(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.integers(0, 4))
        tag = draw(st.sampled_from(TAGS))
        if kind == 0:
            attrs = draw(st.sampled_from(["", " style='display:none'", " hidden", ' a="<>"', " x"]))
            parts.append(f"<{tag}{attrs}>")
        elif kind == 1:
            parts.append(f"</{tag}>")
        elif kind == 2:
            parts.append(draw(st.sampled_from(["<!--", "-->", "<", ">", "&amp;", "&#xD800;", "\n\n"])))
        else:
            parts.append(draw(st.text(max_size=20)))
    return "".join(parts)


YAML_BITS = ["title: ", "date: ", "tags: ", "&a ", "*a ", "[", "]", "{", "}", ": ", "- ", "\n",
             '"', "'", "\\ud800", "\\e", "2022-01-01 10:00:00 +0800", "标题", "<<: *a", "!!python/object "]


@st.composite
def front_matter(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(st.sampled_from(YAML_BITS), max_size=30)))


def parse_in_time(data: bytes) -> Article | None:
    t0 = time.monotonic()
    try:
        art = parse_bytes(data, "x.md", IngestLimits())
    except PostError as exc:
        assert exc.reason
        art = None
    assert time.monotonic() - t0 < SECONDS_PER_POST
    if art is not None:
        assert art.paragraphs and all(p == p.strip() and p for p in art.paragraphs)
        assert "\x1b" not in art.title
        for text in (art.title, *art.paragraphs):
            text.encode("utf-8")  # storable in SQLite and JSON
    return art


@PROPS
@given(front_matter(), html())
def test_generated_posts_parse_or_skip_in_time(meta: str, body: str) -> None:
    parse_in_time(f"---\n{meta}\n---\n{body}\n".encode("utf-8", "surrogatepass"))


@PROPS
@given(st.lists(st.sampled_from(MD + ["\n", "> ", "<>", "[返回首页](../)", "字" * 50, "。"]), max_size=80))
def test_generated_markdown_parses_or_skips_in_time(bits: list[str]) -> None:
    parse_in_time(("---\ntitle: t\n---\n" + "".join(bits)).encode())


@PROPS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_skip_in_time(data: bytes) -> None:
    parse_in_time(b"---\ntitle: t\n---\n" + data)
    parse_in_time(data)


NAME_BYTES = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b)


@settings(max_examples=60, deadline=None)
@given(st.lists(NAME_BYTES, min_size=1, max_size=4, unique=True))
def test_generated_file_names_never_break_a_load(names: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for raw in names:
            name = raw.lstrip(b".") + b".md"
            try:
                (root / os.fsdecode(name)).write_bytes(b"---\ntitle: t\n---\n\xe6\xad\xa3\xe6\x96\x87\n")
            except OSError:
                continue  # a name this file system refuses
        try:
            articles, skipped = load_corpus(root, IngestLimits())
        except CorpusError:
            return  # every name was refused: one line, never a traceback
        for path in [a.path for a in articles] + [s.path for s in skipped]:
            path.encode("utf-8")
        for s in skipped:
            assert s.path.isprintable() and s.path == display_path(s.path) or "\\" in s.path
