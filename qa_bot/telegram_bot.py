"""Telegram front end: a thin python-telegram-bot (v22) layer over a :class:`BotService`.

Design notes (the *why*):

* Answering is CPU-bound and blocking, so ``service.ask`` (and the other service calls) run
  in a bounded :class:`~concurrent.futures.ThreadPoolExecutor`; together with
  ``concurrent_updates`` this lets several chats be answered at once while the event loop
  keeps serving commands, callbacks and typing indicators.
* Everything sent uses HTML parse mode, and every piece of article or user text goes through
  :func:`html.escape`: a post containing ``<b>`` or ``&`` must never break a message.
* Telegram rejects messages over 4096 characters, so long replies are cut with
  :func:`split_html`, which only cuts between tags/entities and re-balances open tags.
* The bot token is part of every Bot API URL, and ``httpx`` logs those URLs at INFO level;
  :func:`install_token_filter` redacts it from log records before any handler formats them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import re
import secrets
import signal
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ChatAction, ChatType, MessageLimit, ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest

from qa_bot.config import Settings
from qa_bot.types import Answer, Source

logger = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{30,}$")
# Telegram's own rule for setWebhook's secret_token.
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

MAX_MESSAGE_LEN: int = MessageLimit.MAX_TEXT_LENGTH  # 4096
MAX_QUESTION_CHARS = 2000
SHOWN_SOURCES = 3
QUOTE_CHARS = 80
MORE_QUOTE_CHARS = 300
RATE_WINDOW_SECONDS = 60.0
SHUTDOWN_GRACE_SECONDS = 3.0
TYPING_REFRESH_SECONDS = 4.5  # a chat action lasts ~5 s on the client
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)
MORE_PREFIX = "more:"

TEXT_REFUSED_CHAT = "抱歉，此机器人未对本聊天开放。"
TEXT_ABSTAIN = "新闻库中没有找到能回答这个问题的内容。"
TEXT_NON_TEXT = "抱歉，我只能回答文字问题。请直接用文字提问，例如：央行最近一次降准是什么时候？"
TEXT_EMPTY = "请告诉我您的问题，例如：/ask 央行最近一次降准是什么时候？"
TEXT_TOO_LONG = f"问题太长了（最多 {MAX_QUESTION_CHARS} 字），请精简后再问。"
TEXT_UNKNOWN_COMMAND = "抱歉，我不认识这个命令。发送 /help 查看用法。"
TEXT_RATE_LIMITED = "您提问太频繁了（每分钟最多 {limit} 个问题），请 {wait} 秒后再试。"
TEXT_ERROR = "抱歉，处理您的请求时出错了，请稍后再试。"
TEXT_EXPIRED = "这条回答已过期，请重新提问。"
TEXT_NOT_ADMIN = "抱歉，只有管理员可以更新索引。"
TEXT_REINDEX_BUSY = "索引正在更新中，请稍候。"
TEXT_REINDEX_START = "正在更新索引，请稍候……"
TEXT_REINDEX_FAILED = "索引更新失败，请查看日志。"
TEXT_NO_ARTICLES = "新闻库中还没有文章。"

PUBLIC_COMMANDS = (
    BotCommand("ask", "提问，例如 /ask 央行最近一次降准是什么时候？"),
    BotCommand("latest", "最新收录的文章"),
    BotCommand("stats", "新闻库统计"),
    BotCommand("help", "使用说明"),
)
ADMIN_COMMANDS = (*PUBLIC_COMMANDS, BotCommand("reindex", "更新索引（仅管理员）"))

EXAMPLE_QUESTIONS = (
    "央行最近一次降准是什么时候？",
    "2021年12月的一年期LPR是多少？",
    "恒大的债务问题有什么新进展？",
)


class BotConfigError(RuntimeError):
    """The bot cannot start because of its configuration; ``str()`` is one printable line."""


class BotService(Protocol):
    """What the bot needs from the question-answering service (``qa_bot/service.py``)."""

    def ask(self, question: str, conversation: str | None = None) -> Answer: ...

    def latest(self, n: int = 5) -> list[dict]: ...

    def stats(self) -> dict: ...

    def reindex(self) -> dict: ...


# --------------------------------------------------------------------------- token redaction

_REDACTED = "[REDACTED]"


class SecretRedactingFilter(logging.Filter):
    """Replaces known secrets in a record's message, arguments, traceback and stack text.

    It mutates the record in place, so installing it on a logger or on the first handler
    protects every handler that sees the record afterwards.
    """

    def __init__(self) -> None:
        super().__init__("qa_bot.redact")
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        # Very short strings would redact ordinary words; real tokens/secrets are long.
        if secret and len(secret) >= 8:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, _REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            clean = self.redact(text)
            if clean != text:
                # Formatters fall back to exc_text when exc_info is gone; dropping exc_info
                # keeps other handlers from re-rendering the raw exception with the secret.
                record.exc_info, record.exc_text = None, clean
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_SECRET_FILTER = SecretRedactingFilter()
# Loggers that log request URLs (which contain the token). A logger's filter only sees
# records created on that exact logger, so everything else is covered via root handlers.
_REDACTED_LOGGERS = ("httpx", "httpcore")


def install_token_filter(*secrets_: str | None) -> SecretRedactingFilter:
    """Register secrets for redaction and attach the shared filter (idempotent).

    Attached to the root logger's current handlers (which every propagating record passes
    through) and directly to the ``httpx``/``telegram`` loggers. Call again after
    (re)configuring logging so new handlers get it too.
    """
    for secret in secrets_:
        _SECRET_FILTER.add(secret)
    for handler in logging.getLogger().handlers:
        if _SECRET_FILTER not in handler.filters:
            handler.addFilter(_SECRET_FILTER)
    for name in _REDACTED_LOGGERS:
        named = logging.getLogger(name)
        if _SECRET_FILTER not in named.filters:
            named.addFilter(_SECRET_FILTER)
    return _SECRET_FILTER


# --------------------------------------------------------------------------- configuration


def validate_token(settings: Settings) -> str:
    """Return the bot token, or raise :class:`BotConfigError` (never echoing the value)."""
    secret = settings.telegram_bot_token
    token = secret.get_secret_value().strip() if secret is not None else ""
    if not token:
        raise BotConfigError(
            "TELEGRAM_BOT_TOKEN is not set; get a token from @BotFather and put it in .env"
        )
    if not TOKEN_RE.fullmatch(token):
        raise BotConfigError(
            "TELEGRAM_BOT_TOKEN is malformed (expected '<digits>:<30+ letters, digits, _ or ->')"
        )
    return token


def _validate_ids(settings: Settings) -> tuple[frozenset[int], frozenset[int]]:
    try:
        return settings.allowed_chat_ids, settings.admin_ids
    except ValueError:
        raise BotConfigError(
            "QA_BOT_ALLOWED_CHATS / QA_BOT_ADMINS must be comma-separated integer ids"
        ) from None


def _validate_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BotConfigError(
            "TELEGRAM_API_BASE_URL must be an http(s) URL such as http://127.0.0.1:8081/bot"
        )
    return url


@dataclass(frozen=True)
class WebhookOptions:
    listen: str
    port: int
    url_path: str
    webhook_url: str
    secret_token: str


def webhook_options(settings: Settings) -> WebhookOptions | None:
    """Webhook parameters when ``settings.webhook_url`` is set, else ``None`` (polling)."""
    if not settings.webhook_url:
        return None
    parts = urlsplit(settings.webhook_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BotConfigError("QA_BOT_WEBHOOK_URL must be an http(s) URL")
    if settings.webhook_secret is not None:
        secret = settings.webhook_secret.get_secret_value()
        if not WEBHOOK_SECRET_RE.fullmatch(secret):
            raise BotConfigError(
                "QA_BOT_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ or -"
            )
    else:
        # setWebhook is called on every start, so a fresh random secret is as good as a
        # configured one and still rejects forged POSTs.
        secret = secrets.token_urlsafe(32)
    return WebhookOptions(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path=parts.path.lstrip("/"),
        webhook_url=settings.webhook_url,
        secret_token=secret,
    )


# --------------------------------------------------------------------------- HTML rendering

_ATOM_RE = re.compile(r"<[^<>]*>|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);|.", re.S)
_TAG_RE = re.compile(r"^<(/?)([A-Za-z][A-Za-z0-9-]*)")
_SENTENCE_END = frozenset("。！？；!?;…")
_SOFT_BREAK = frozenset(" ，,、：:")


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


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
    stack: list[tuple[str, str]] = []
    pos, n = 0, len(atoms)
    while pos < n:
        while pos < n and atoms[pos] == "\n":  # a part never starts with blank lines
            pos += 1
        if pos >= n:
            break
        prefix = "".join(tag for _, tag in stack)
        size = tg_len(prefix)
        cur = list(stack)
        # best cut seen so far for each priority: (end index, stack at that point, size)
        best: dict[int, tuple[int, list[tuple[str, str]], int]] = {}
        i = pos
        while i < n:
            atom = atoms[i]
            nxt = cur
            tag = _TAG_RE.match(atom) if atom.startswith("<") else None
            if tag:
                name = tag.group(2).lower()
                nxt = list(cur)
                if tag.group(1):
                    for k in range(len(nxt) - 1, -1, -1):
                        if nxt[k][0] == name:
                            del nxt[k]
                            break
                else:
                    nxt.append((name, atom))
            new_size = size + sizes[i]
            if new_size + tg_len(_closing(nxt)) > limit and i > pos:
                break
            size, cur, i = new_size, nxt, i + 1
            if i < n:
                best[_break_priority(atoms, i)] = (i, cur, size)
        if i >= n:
            cut, cut_stack = n, cur
        else:
            cut, cut_stack = i, cur
            # A good break at least half-way through wins; otherwise take any break
            # (a short part beats a cut in the middle of a word).
            for min_fill in (limit // 2, 0):
                chosen = next(
                    (best[p] for p in (4, 3, 2, 1) if p in best and best[p][2] >= min_fill),
                    None,
                )
                if chosen:
                    cut, cut_stack = chosen[0], chosen[1]
                    break
        end = cut
        while end > pos and atoms[end - 1] == "\n":
            end -= 1
        body = "".join(atoms[pos:end])
        if body.strip():
            parts.append(prefix + body + _closing(cut_stack))
        stack, pos = cut_stack, cut
    return parts


@functools.lru_cache(maxsize=8)
def _handle_re(username: str) -> re.Pattern[str]:
    # "@bot" but not "@bot2" or "x@bot"
    return re.compile(rf"(?<![\w@])@{re.escape(username)}(?!\w)", re.IGNORECASE)


def _strip_handle(text: str, username: str | None) -> str:
    """Remove ``@username`` mentions from a question and tidy the spaces they leave."""
    if username:
        text = _handle_re(username).sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


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
    label = _escape(title.strip() or fallback or "（无标题）")
    safe = _safe_url(url)
    return f'<a href="{html.escape(safe, quote=True)}">{label}</a>' if safe else label


def _source_entry(number: int, source: Source, quote_chars: int) -> str:
    line = f"{number}. {_article_link(source.title, source.url, source.path)}"
    date = format_date(source.date)
    if date:
        line += f"（{date}）"
    quote = _shorten(source.text or "", quote_chars) if quote_chars else ""
    if quote:
        line += f"\n<i>“{_escape(quote)}”</i>"
    return line


def _with_highlight(text: str, span: tuple[int, int] | None) -> str:
    if span is not None:
        start, end = span
        if 0 <= start < end <= len(text):
            return (
                _escape(text[:start])
                + "<b>"
                + _escape(text[start:end])
                + "</b>"
                + _escape(text[end:])
            )
    return _escape(text)


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


def is_abstention(answer: Answer) -> bool:
    return answer.abstained or not (answer.answer or "").strip()


def render_answer(answer: Answer, shown: int = SHOWN_SOURCES) -> str:
    """The HTML reply for one answer (may exceed 4096 characters; see :func:`split_html`)."""
    if is_abstention(answer):
        parts = [_escape(TEXT_ABSTAIN)]
        nearest = _unique_articles(answer.sources, shown)
        if nearest:
            lines = [_source_entry(i, s, 0) for i, s in enumerate(nearest, 1)]
            parts.append("<b>最接近的文章：</b>\n" + "\n".join(lines))
        return "\n\n".join(parts)
    parts = [_with_highlight(answer.answer or "", answer.highlight)]
    resolved = (answer.resolved_question or "").strip()
    if resolved and resolved != answer.question.strip():
        parts.append(f"<i>（按“{_escape(_shorten(resolved, 200))}”理解）</i>")
    if answer.sources:
        lines = [_source_entry(i, s, QUOTE_CHARS) for i, s in enumerate(answer.sources[:shown], 1)]
        parts.append("<b>来源：</b>\n" + "\n".join(lines))
    return "\n\n".join(parts)


def render_more_sources(sources: Sequence[Source], first_number: int = SHOWN_SOURCES + 1) -> str:
    entries = [_source_entry(i, s, MORE_QUOTE_CHARS) for i, s in enumerate(sources, first_number)]
    return "<b>更多来源：</b>\n\n" + "\n\n".join(entries)


def render_help(username: str | None, is_admin: bool) -> str:
    mention = f"@{_escape(username)}" if username else "@机器人"
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
        *(f"• {_escape(q)}" for q in EXAMPLE_QUESTIONS),
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


def render_latest(items: Sequence[dict]) -> str:
    if not items:
        return _escape(TEXT_NO_ARTICLES)
    lines = ["<b>最新文章：</b>"]
    for i, item in enumerate(items, 1):
        line = f"{i}. {_article_link(str(item.get('title') or ''), item.get('url'), str(item.get('path') or ''))}"
        date = format_date(item.get("date"))
        if date:
            line += f"（{date}）"
        lines.append(line)
    return "\n".join(lines)


def _show(value: Any) -> str:
    return _escape("—" if value is None or value == "" else str(value))


def render_stats(stats: dict) -> str:
    return "\n".join(
        [
            "<b>新闻库统计：</b>",
            f"文章：{_show(stats.get('articles'))} 篇",
            f"片段：{_show(stats.get('chunks'))} 个",
            f"最后更新：{_show(stats.get('last_update'))}",
            f"模型：{_show(stats.get('model'))}",
            f"索引版本：{_show(stats.get('generation'))}",
        ]
    )


def _count(value: Any) -> int:
    # The service may report either counts or the lists of affected paths.
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return len(value)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def render_reindex(result: dict) -> str:
    added, changed, removed = (_count(result.get(k)) for k in ("added", "changed", "removed"))
    seconds = result.get("seconds")
    took = f"（用时 {float(seconds):.1f} 秒）" if isinstance(seconds, (int, float)) else ""
    head = "索引已更新" if added or changed or removed else "索引已是最新，没有变化"
    return (
        f"<b>{head}</b>{took}\n"
        f"新增 {added} 篇，修改 {changed} 篇，删除 {removed} 篇，"
        f"未变 {_count(result.get('unchanged'))} 篇\n"
        f"新嵌入 {_count(result.get('embedded_chunks'))} 个片段，"
        f"共 {_count(result.get('total_chunks'))} 个片段"
    )


# --------------------------------------------------------------------------- small state


class SlidingWindowRateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds (refused events don't count)."""

    def __init__(
        self,
        limit: int,
        window: float = RATE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._hits: dict[int, deque[float]] = {}

    def _prune(self, hits: deque[float], now: float) -> None:
        while hits and now - hits[0] >= self.window:
            hits.popleft()

    def allow(self, key: int) -> bool:
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        self._prune(hits, now)
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > 10_000:  # keep memory bounded under many distinct users
            for other in list(self._hits):
                self._prune(self._hits[other], now)
                if not self._hits[other]:
                    del self._hits[other]
        return True

    def retry_after(self, key: int) -> float:
        hits = self._hits.get(key)
        if not hits or len(hits) < self.limit:
            return 0.0
        return max(0.0, self.window - (self._clock() - hits[0]))


@dataclass(frozen=True)
class StoredSources:
    chat_id: int
    sources: tuple[Source, ...]


class AnswerStore:
    """Recent answers' extra sources, keyed by a short random id (fits callback_data)."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, StoredSources] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, chat_id: int, sources: Sequence[Source]) -> str:
        key = secrets.token_urlsafe(6)
        while key in self._items:
            key = secrets.token_urlsafe(6)
        self._items[key] = StoredSources(chat_id, tuple(sources))
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return key

    def pop(self, key: str) -> StoredSources | None:
        return self._items.pop(key, None)


# --------------------------------------------------------------------------- the bot


class TelegramFrontend:
    """Handlers and per-bot state; one instance per :class:`Application`."""

    def __init__(
        self,
        settings: Settings,
        service: BotService,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_workers: int = 4,
    ) -> None:
        self.settings = settings
        self.service = service
        self.allowed_chats, self.admins = _validate_ids(settings)
        self.limiter = SlidingWindowRateLimiter(
            settings.rate_limit_per_minute, RATE_WINDOW_SECONDS, clock
        )
        self.answers = AnswerStore()
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="qa-bot-ask")
        self._reindex_lock = asyncio.Lock()

    # ---- wiring

    def register(self, app: Application) -> None:
        only_new = filters.UpdateType.MESSAGE  # edits would re-trigger answers
        for names, callback in (
            (("start", "help"), self.cmd_help),
            (("ask",), self.cmd_ask),
            (("latest",), self.cmd_latest),
            (("stats",), self.cmd_stats),
            (("reindex",), self.cmd_reindex),
        ):
            app.add_handler(CommandHandler(names, callback, filters=only_new))
        app.add_handler(CallbackQueryHandler(self.on_more, pattern=f"^{MORE_PREFIX}"))
        app.add_handler(CallbackQueryHandler(self.on_stray_callback))
        app.add_handler(MessageHandler(only_new & filters.COMMAND, self.on_unknown_command))
        app.add_handler(MessageHandler(only_new & filters.TEXT, self.on_text))
        app.add_handler(
            MessageHandler(only_new & ~filters.TEXT & ~filters.StatusUpdate.ALL, self.on_non_text)
        )
        app.add_error_handler(self.on_error)

    async def post_init(self, app: Application) -> None:
        try:
            await app.bot.set_my_commands(list(PUBLIC_COMMANDS))
        except TelegramError as exc:
            logger.warning("Could not register bot commands: %s", exc)
        for admin in sorted(self.admins):
            try:
                await app.bot.set_my_commands(
                    list(ADMIN_COMMANDS), scope=BotCommandScopeChat(admin)
                )
            except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
                logger.info("Could not register admin commands for %s: %s", admin, exc)

    async def post_shutdown(self, app: Application) -> None:
        # Application.stop() has already awaited every handler, so normally the workers are
        # idle and exit at once; the bounded wait keeps a hung job from hanging shutdown.
        self.executor.shutdown(wait=False, cancel_futures=True)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                loop.run_in_executor(None, self.executor.shutdown, True), SHUTDOWN_GRACE_SECONDS
            )

    # ---- helpers

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    def _is_admin(self, user: User | None) -> bool:
        return user is not None and user.id in self.admins

    def _chat_allowed(self, chat: Chat, user: User | None) -> bool:
        if not self.allowed_chats or chat.id in self.allowed_chats:
            return True
        # Admins can always operate the bot from their own private chat.
        return chat.type == ChatType.PRIVATE and self._is_admin(user)

    async def _gate(self, update: Update) -> bool:
        """True if this chat may use the bot; otherwise refuse politely and return False."""
        chat = update.effective_chat
        if chat is None:
            return False
        if self._chat_allowed(chat, update.effective_user):
            return True
        logger.info("Refused update from chat %s (not in the allow-list)", chat.id)
        if update.callback_query is not None:
            await update.callback_query.answer(TEXT_REFUSED_CHAT, show_alert=True)
        elif update.effective_message is not None:
            await self._reply(update.effective_message, _escape(TEXT_REFUSED_CHAT))
        return False

    async def _reply(
        self, message: Message, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        """Send HTML ``text`` in as many parts as needed; the keyboard goes on the last one."""
        parts = split_html(text) or [_escape("（空）")]
        quote = message.chat.type != ChatType.PRIVATE  # in groups, show what we answer
        sent: Message | None = None
        for index, part in enumerate(parts):
            sent = await message.reply_text(
                part,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=markup if index == len(parts) - 1 else None,
                reply_parameters=(
                    ReplyParameters(message.message_id, allow_sending_without_reply=True)
                    if quote
                    else None
                ),
            )
        return sent

    async def _typing(self, message: Message) -> None:
        with contextlib.suppress(TelegramError):
            await message.get_bot().send_chat_action(
                message.chat_id,
                ChatAction.TYPING,
                message_thread_id=message.message_thread_id if message.is_topic_message else None,
            )

    async def _keep_typing(self, message: Message) -> None:
        while True:
            await asyncio.sleep(TYPING_REFRESH_SECONDS)
            await self._typing(message)

    def _addressed_text(self, message: Message, bot_id: int, username: str | None) -> str | None:
        """In a group: the question if the message is meant for the bot, else ``None``."""
        text = message.text or message.caption or ""
        handle = f"@{username}".lower() if username else None
        mentioned = False
        for entity, value in message.parse_entities().items():
            if (entity.type == MessageEntity.MENTION and handle and value.lower() == handle) or (
                entity.type == MessageEntity.TEXT_MENTION
                and entity.user is not None
                and entity.user.id == bot_id
            ):
                mentioned = True
        if not mentioned and message.caption:
            for entity, value in message.parse_caption_entities().items():
                if entity.type == MessageEntity.MENTION and handle and value.lower() == handle:
                    mentioned = True
        if username and _handle_re(username).search(text):
            mentioned = True
        replied = message.reply_to_message
        to_bot = (
            replied is not None
            and replied.from_user is not None
            and replied.from_user.id == bot_id
            and not replied.forum_topic_created  # in topics every message "replies" to this
        )
        if not (mentioned or to_bot):
            return None
        return _strip_handle(text, username)

    # ---- questions

    async def _answer(self, update: Update, question: str) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        if not await self._gate(update):
            return
        question = question.strip()
        if not question:
            await self._reply(message, _escape(TEXT_EMPTY))
            return
        if len(question) > MAX_QUESTION_CHARS:
            await self._reply(message, _escape(TEXT_TOO_LONG))
            return
        user = update.effective_user
        asker = user.id if user is not None else chat.id
        if not self.limiter.allow(asker):
            wait = max(1, round(self.limiter.retry_after(asker)))
            text = TEXT_RATE_LIMITED.format(limit=self.limiter.limit, wait=wait)
            await self._reply(message, _escape(text))
            return
        loop = asyncio.get_running_loop()
        # Start the work first so the typing request overlaps with it.
        pending = loop.run_in_executor(
            self.executor, self.service.ask, question, f"{chat.id}:{asker}"
        )
        await self._typing(message)
        keepalive = asyncio.create_task(self._keep_typing(message))
        try:
            answer = await pending
        finally:
            keepalive.cancel()
        markup = None
        extra = [] if is_abstention(answer) else answer.sources[SHOWN_SOURCES:]
        if extra:
            key = self.answers.put(chat.id, extra)
            markup = InlineKeyboardMarkup(
                [[InlineKeyboardButton("更多来源", callback_data=MORE_PREFIX + key)]]
            )
        await self._reply(message, render_answer(answer), markup)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or message.text is None:
            return
        if chat.type == ChatType.PRIVATE:
            await self._answer(update, message.text)
        elif chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
            question = self._addressed_text(message, context.bot.id, context.bot.username)
            if question is not None:
                await self._answer(update, question)

    async def cmd_ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None:
            return
        # Keep the question's own spacing/newlines (context.args would re-join on spaces).
        rest = message.text.split(maxsplit=1)
        question = rest[1] if len(rest) > 1 else ""
        await self._answer(update, _strip_handle(question, context.bot.username))

    # ---- other messages

    def _group_addressed(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return False
        if chat.type == ChatType.PRIVATE:
            return True
        if chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
            return False
        return self._addressed_text(message, context.bot.id, context.bot.username) is not None

    async def on_non_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not self._group_addressed(update, context):
            return
        if await self._gate(update):
            await self._reply(message, _escape(TEXT_NON_TEXT))

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not message.text:
            return
        command = message.text.split(maxsplit=1)[0]
        target = command.partition("@")[2].lower()
        username = (context.bot.username or "").lower()
        if chat.type != ChatType.PRIVATE and target != username:
            return  # in groups, unaddressed commands may belong to other bots
        if await self._gate(update):
            await self._reply(message, _escape(TEXT_UNKNOWN_COMMAND))

    # ---- commands

    async def cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not await self._gate(update):
            return
        is_admin = self._is_admin(update.effective_user)
        await self._reply(message, render_help(context.bot.username, is_admin))

    async def cmd_latest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not await self._gate(update):
            return
        n = 5
        if context.args:
            with contextlib.suppress(ValueError):
                n = min(20, max(1, int(context.args[0])))
        items = await self._blocking(self.service.latest, n)
        await self._reply(message, render_latest(items))

    async def cmd_stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not await self._gate(update):
            return
        stats = await self._blocking(self.service.stats)
        await self._reply(message, render_stats(stats))

    async def cmd_reindex(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not await self._gate(update):
            return
        user = update.effective_user
        if not self._is_admin(user):
            logger.info("Refused /reindex from non-admin %s", user.id if user else None)
            await self._reply(message, _escape(TEXT_NOT_ADMIN))
            return
        if self._reindex_lock.locked():
            await self._reply(message, _escape(TEXT_REINDEX_BUSY))
            return
        async with self._reindex_lock:
            await self._reply(message, _escape(TEXT_REINDEX_START))
            try:
                result = await self._blocking(self.service.reindex)
            except Exception:
                logger.exception("Reindex requested by %s failed", user.id if user else None)
                await self._reply(message, _escape(TEXT_REINDEX_FAILED))
                return
        logger.info("Reindex by %s: %s", user.id if user else None, result)
        await self._reply(message, render_reindex(result))

    # ---- callbacks

    async def on_more(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not await self._gate(update):
            return
        stored = self.answers.pop((query.data or "")[len(MORE_PREFIX) :])
        if stored is None:
            await query.answer(TEXT_EXPIRED)
            return
        await query.answer()
        origin = query.message
        chat_id = origin.chat.id if origin is not None else stored.chat_id
        reply_to = (
            ReplyParameters(origin.message_id, allow_sending_without_reply=True)
            if isinstance(origin, Message)
            else None
        )
        for part in split_html(render_more_sources(stored.sources)):
            await context.bot.send_message(
                chat_id,
                part,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_parameters=reply_to,
            )
        if isinstance(origin, Message):
            # The button has done its job; removing it prevents duplicate source lists.
            with contextlib.suppress(TelegramError):
                await query.edit_message_reply_markup(reply_markup=None)

    async def on_stray_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Unanswered callback queries leave a spinner on the user's button.
        if update.callback_query is not None:
            await update.callback_query.answer()

    # ---- errors

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        where = ""
        if isinstance(update, Update) and update.effective_chat is not None:
            where = f" in chat {update.effective_chat.id}"
        logger.error("Error while handling an update%s: %r", where, error, exc_info=error)
        if not isinstance(update, Update):
            return
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(TEXT_ERROR)
            elif update.effective_message is not None:
                await update.effective_message.reply_text(TEXT_ERROR)
        except Exception as exc:  # the error handler itself must never raise
            logger.warning("Could not tell the user about the error: %r", exc)


def build_application(
    settings: Settings,
    service: BotService,
    *,
    clock: Callable[[], float] = time.monotonic,
    rate_limiter: BaseRateLimiter | None = None,
    max_workers: int = 4,
) -> Application:
    """Build (but don't start) the bot. Raises :class:`BotConfigError` on bad settings.

    ``clock`` drives the per-user question rate limit, ``rate_limiter`` replaces the default
    :class:`AIORateLimiter` (outgoing flood control), ``max_workers`` bounds the threads that
    run ``service.ask``. The :class:`TelegramFrontend` is at ``app.bot_data["frontend"]``.
    """
    token = validate_token(settings)
    install_token_filter(token)
    frontend = TelegramFrontend(settings, service, clock=clock, max_workers=max_workers)
    builder = (
        ApplicationBuilder()
        .token(token)
        # A roomy pool: concurrent answers each need a connection for typing + reply.
        .request(HTTPXRequest(connection_pool_size=64, pool_timeout=10.0, read_timeout=15.0))
        .get_updates_request(HTTPXRequest(connection_pool_size=2, read_timeout=10.0))
        .rate_limiter(rate_limiter or AIORateLimiter(max_retries=3))
        .concurrent_updates(64)
        .post_init(frontend.post_init)
        .post_shutdown(frontend.post_shutdown)
    )
    if settings.telegram_api_base_url:
        base_url = _validate_base_url(settings.telegram_api_base_url.strip())
        builder = builder.base_url(base_url)
        if base_url.endswith("/bot"):
            builder = builder.base_file_url(base_url[: -len("bot")] + "file/bot")
    app = builder.build()
    frontend.register(app)
    app.bot_data["frontend"] = frontend
    return app


def run_bot(settings: Settings, service: BotService) -> None:
    """Run until SIGINT/SIGTERM: long polling, or a webhook server if ``webhook_url`` is set."""
    webhook = webhook_options(settings)
    app = build_application(settings, service)
    # Re-install now that the CLI has configured logging (new root handlers).
    install_token_filter(webhook.secret_token if webhook else None)
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    # run_* use (and close) the current loop; a fresh one avoids inheriting a closed loop.
    asyncio.set_event_loop(asyncio.new_event_loop())
    try:
        if webhook is not None:
            logger.info("Starting webhook on %s:%s", webhook.listen, webhook.port)
            app.run_webhook(
                listen=webhook.listen,
                port=webhook.port,
                url_path=webhook.url_path,
                webhook_url=webhook.webhook_url,
                secret_token=webhook.secret_token,
                allowed_updates=list(ALLOWED_UPDATES),
                stop_signals=stop_signals,
            )
        else:
            logger.info("Starting long polling")
            app.run_polling(allowed_updates=list(ALLOWED_UPDATES), stop_signals=stop_signals)
    except InvalidToken:
        # InvalidToken's message contains the token itself; don't chain it.
        raise BotConfigError(
            "Telegram rejected TELEGRAM_BOT_TOKEN (unauthorized); check the token"
        ) from None
    finally:
        frontend = app.bot_data.get("frontend")
        if isinstance(frontend, TelegramFrontend):
            frontend.executor.shutdown(wait=False, cancel_futures=True)
        asyncio.set_event_loop(None)
    logger.info("Bot stopped")
