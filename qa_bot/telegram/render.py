"""Telegram HTML for answers, sources and command replies, and splitting it into messages.

Every piece of article or user text goes through :func:`html.escape`: a post containing
``<b>`` or ``&`` must never break a message. Telegram rejects messages over 4096 UTF-16
units, so long replies are cut with :func:`split_html`, which only cuts between
tags/entities and re-balances open tags.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from telegram.constants import MessageLimit

from qa_bot.types import Answer, IndexStats, LatestArticle, ReindexReport, Source

from .texts import EXAMPLE_QUESTIONS, TEXT_ABSTAIN, TEXT_NO_ARTICLES

MAX_MESSAGE_LEN: int = MessageLimit.MAX_TEXT_LENGTH  # 4096
SHOWN_SOURCES = 3
QUOTE_CHARS = 80
MORE_QUOTE_CHARS = 300

_ATOM_RE = re.compile(r"<[^<>]*>|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);|.", re.S)
_TAG_RE = re.compile(r"^<(/?)([A-Za-z][A-Za-z0-9-]*)")
_LINK_RE = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.S)
_SENTENCE_END = frozenset("。！？；!?;…")
_SOFT_BREAK = frozenset(" ，,、：:")

Stack = list[tuple[str, str]]  # open tags: (name, the opening tag as written)


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=False)


# --------------------------------------------------------------------------- splitting


def _closing(stack: Sequence[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _break_priority(atoms: Sequence[str], end: int) -> int:
    """How good a cut is just before ``atoms[end]`` (higher is better)."""
    last = atoms[end - 1]
    if last == "\n":
        return 4 if end >= 2 and atoms[end - 2] == "\n" else 3
    if last in _SENTENCE_END:
        return 2
    if last in _SOFT_BREAK:
        return 1
    return 0


def _after(stack: Stack, atom: str) -> Stack:
    """The open-tag stack after ``atom``."""
    tag = _TAG_RE.match(atom) if atom.startswith("<") else None
    if not tag:
        return stack
    name = tag.group(2).lower()
    if not tag.group(1):
        return [*stack, (name, atom)]
    out = list(stack)
    for k in range(len(out) - 1, -1, -1):
        if out[k][0] == name:
            del out[k]
            break
    return out


def _choose_cut(
    best: dict[int, tuple[int, Stack, int]], fallback: tuple[int, Stack], limit: int
) -> tuple[int, Stack]:
    # A good break at least half-way through wins; otherwise take any break (a short part
    # beats a cut in the middle of a word).
    for min_fill in (limit // 2, 0):
        for priority in (4, 3, 2, 1):
            if priority in best and best[priority][2] >= min_fill:
                return best[priority][0], best[priority][1]
    return fallback


def _next_cut(
    atoms: Sequence[str], sizes: Sequence[int], pos: int, stack: Stack, limit: int
) -> tuple[int, Stack]:
    """Where the part starting at ``pos`` (with ``stack`` re-opened) should end."""
    size = tg_len("".join(tag for _, tag in stack))
    cur, n, i = stack, len(atoms), pos
    best: dict[int, tuple[int, Stack, int]] = {}  # per priority: (end, stack there, size)
    while i < n:
        nxt = _after(cur, atoms[i])
        if size + sizes[i] + tg_len(_closing(nxt)) > limit and i > pos:
            return _choose_cut(best, (i, cur), limit)
        size, cur, i = size + sizes[i], nxt, i + 1
        if i < n:
            best[_break_priority(atoms, i)] = (i, cur, size)
    return n, cur


def split_html(text: str, limit: int = MAX_MESSAGE_LEN) -> list[str]:
    """Split Telegram-HTML ``text`` into parts of at most ``limit`` UTF-16 units.

    Prefers paragraph breaks, then line breaks, sentence ends and spaces; never cuts inside a
    tag or an entity. Tags open at a cut are closed at the end of the part and re-opened
    (with their attributes, e.g. a link's href) at the start of the next one.
    """
    if tg_len(text) <= limit:
        return [text] if text.strip() else []
    atoms = _ATOM_RE.findall(text)
    sizes = [tg_len(a) for a in atoms]
    parts: list[str] = []
    stack: Stack = []
    pos, n = 0, len(atoms)
    while pos < n:
        while pos < n and atoms[pos] == "\n":  # a part never starts with blank lines
            pos += 1
        if pos >= n:
            break
        cut, cut_stack = _next_cut(atoms, sizes, pos, stack, limit)
        end = cut
        while end > pos and atoms[end - 1] == "\n":
            end -= 1
        body = "".join(atoms[pos:end])
        if body.strip():
            parts.append("".join(tag for _, tag in stack) + body + _closing(cut_stack))
        stack, pos = cut_stack, cut
    return parts


def html_to_plain(text: str) -> str:
    """The visible text of Telegram HTML, links written out, for a plain-text resend."""
    text = _LINK_RE.sub(lambda m: f"{m.group(2)} ({html.unescape(m.group(1))})", text)
    return html.unescape(re.sub(r"<[^<>]*>", "", text))


# --------------------------------------------------------------------------- pieces


@functools.lru_cache(maxsize=8)
def handle_re(username: str) -> re.Pattern[str]:
    # "@bot" but not "@bot2" or "x@bot"
    return re.compile(rf"(?<![\w@])@{re.escape(username)}(?!\w)", re.IGNORECASE)


def strip_handle(text: str, username: str | None) -> str:
    """Remove ``@username`` mentions from a question and tidy the spaces they leave."""
    if username:
        text = handle_re(username).sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def format_date(date: str | None) -> str | None:
    """``2021-12-28T19:27:59+08:00`` → ``2021-12-28``; anything unparseable → None."""
    if not date:
        return None
    match = re.match(r"\s*(\d{4}-\d{2}-\d{2})", str(date))
    return match.group(1) if match else None


def _safe_url(url: str | None) -> str | None:
    # Telegram rejects the whole message for an unsupported link scheme, so only http(s)
    # URLs become links.
    if not url:
        return None
    url = url.strip()
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "…"


def _article_link(title: str, url: str | None, fallback: str = "") -> str:
    label = escape(title.strip() or fallback or "（无标题）")
    safe = _safe_url(url)
    return f'<a href="{html.escape(safe, quote=True)}">{label}</a>' if safe else label


def _dated(line: str, date: str | None) -> str:
    day = format_date(date)
    return f"{line}（{day}）" if day else line


def _source_entry(number: int, source: Source, quote_chars: int) -> str:
    line = _dated(f"{number}. {_article_link(source.title, source.url, source.path)}", source.date)
    quote = _shorten(source.text or "", quote_chars) if quote_chars else ""
    if quote:
        line += f"\n<i>“{escape(quote)}”</i>"
    return line


def _with_highlight(text: str, span: tuple[int, int] | None) -> str:
    if span is not None:
        start, end = span
        if 0 <= start < end <= len(text):
            bold = escape(text[start:end])
            return f"{escape(text[:start])}<b>{bold}</b>{escape(text[end:])}"
    return escape(text)


def _unique_articles(sources: Iterable[Source], n: int) -> list[Source]:
    seen: set[str] = set()
    out: list[Source] = []
    for source in sources:
        if source.path not in seen:
            seen.add(source.path)
            out.append(source)
        if len(out) >= n:
            break
    return out


# --------------------------------------------------------------------------- replies


def is_abstention(answer: Answer) -> bool:
    return answer.abstained or not (answer.answer or "").strip()


def extra_sources(answer: Answer, shown: int = SHOWN_SOURCES) -> list[Source]:
    """The sources behind the 「更多来源」 button (none for an abstention)."""
    return [] if is_abstention(answer) else list(answer.sources[shown:])


def _render_abstention(answer: Answer, shown: int) -> str:
    parts = [escape(TEXT_ABSTAIN)]
    nearest = _unique_articles(answer.sources, shown)
    if nearest:
        lines = [_source_entry(i, s, 0) for i, s in enumerate(nearest, 1)]
        parts.append("<b>最接近的文章：</b>\n" + "\n".join(lines))
    return "\n\n".join(parts)


def render_answer(answer: Answer, shown: int = SHOWN_SOURCES) -> str:
    """The HTML reply for one answer (may exceed 4096 characters; see :func:`split_html`)."""
    if is_abstention(answer):
        return _render_abstention(answer, shown)
    parts = [_with_highlight(answer.answer or "", answer.highlight)]
    resolved = (answer.resolved_question or "").strip()
    if resolved and resolved != answer.question.strip():
        parts.append(f"<i>（按“{escape(_shorten(resolved, 200))}”理解）</i>")
    if answer.sources:
        lines = [_source_entry(i, s, QUOTE_CHARS) for i, s in enumerate(answer.sources[:shown], 1)]
        parts.append("<b>来源：</b>\n" + "\n".join(lines))
    return "\n\n".join(parts)


def render_more_sources(sources: Sequence[Source], first_number: int = SHOWN_SOURCES + 1) -> str:
    entries = [_source_entry(i, s, MORE_QUOTE_CHARS) for i, s in enumerate(sources, first_number)]
    return "<b>更多来源：</b>\n\n" + "\n\n".join(entries)


def render_help(username: str | None, is_admin: bool) -> str:
    mention = f"@{escape(username)}" if username else "@机器人"
    lines = [
        "<b>财经新闻问答机器人</b>",
        "我会在新闻库里查找答案，并附上出处链接。",
        "",
        "<b>怎么提问</b>",
        "• 私聊：直接发送问题。",
        f"• 群组：/ask 加问题，或 {mention} 加问题，或回复我的消息。",
        "• 可以追问，例如先问“央行降准了吗？”再问“降了多少？”。",
        "",
        "<b>示例问题</b>",
        *(f"• {escape(q)}" for q in EXAMPLE_QUESTIONS),
        "",
        "<b>命令</b>",
        "/ask 问题 — 提问",
        "/latest — 最新收录的文章",
        "/stats — 新闻库统计",
        "/help — 显示本说明",
    ]
    if is_admin:
        lines.append("/reindex — 更新索引（仅管理员）")
    return "\n".join(lines)


def render_latest(items: Sequence[LatestArticle]) -> str:
    if not items:
        return escape(TEXT_NO_ARTICLES)
    lines = ["<b>最新文章：</b>"]
    for i, item in enumerate(items, 1):
        lines.append(_dated(f"{i}. {_article_link(item.title, item.url, item.path)}", item.date))
    return "\n".join(lines)


def _show(value: object) -> str:
    return escape("—" if value is None or value == "" else str(value))


def render_stats(stats: IndexStats) -> str:
    return "\n".join(
        [
            "<b>新闻库统计：</b>",
            f"文章：{_show(stats.articles)} 篇",
            f"片段：{_show(stats.chunks)} 个",
            f"最后更新：{_show(stats.last_update)}",
            f"模型：{_show(stats.model)}",
            f"索引版本：{_show(stats.generation)}",
        ]
    )


def render_reindex(report: ReindexReport) -> str:
    changed = report.added or report.changed or report.removed
    head = "索引已更新" if changed else "索引已是最新，没有变化"
    took = f"（用时 {report.seconds:.1f} 秒）" if report.seconds is not None else ""
    return (
        f"<b>{head}</b>{took}\n"
        f"新增 {report.added} 篇，修改 {report.changed} 篇，删除 {report.removed} 篇，"
        f"未变 {report.unchanged} 篇\n"
        f"新嵌入 {report.embedded_chunks} 个片段，共 {report.total_chunks} 个片段"
    )
