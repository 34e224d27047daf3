"""Handlers: each decides nothing about routing (PTB filters do that, see :func:`register`)
and little else; rendering, limits and delivery live in their own modules.

Answering is CPU-bound and blocking, so ``service.ask`` (and the other service calls) run in
worker threads (:class:`~qa_bot.telegram.lifecycle.WorkerPool`); with ``concurrent_updates``
several chats are answered at once while the loop keeps serving commands and callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from telegram import (
    Bot,
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
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from qa_bot.types import Answer, Source

from . import texts
from .config import BotConfig
from .contract import BotService
from .lifecycle import Lifecycle, WorkerPool
from .ratelimit import RATE_WINDOW_SECONDS, SlidingWindowRateLimiter
from .render import (
    escape,
    extra_sources,
    handle_re,
    html_to_plain,
    render_answer,
    render_help,
    render_latest,
    render_more_sources,
    render_reindex,
    render_stats,
    split_html,
    strip_handle,
)

logger = logging.getLogger(__name__)

MORE_PREFIX = "more:"
TYPING_REFRESH_SECONDS = 4.5  # a chat action lasts ~5 s on the client
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

Send = Callable[[str, "ParseMode | None"], Awaitable[Message]]


def _reply_part(
    message: Message,
    markup: InlineKeyboardMarkup | None,
    reply_to: ReplyParameters | None,
    text: str,
    mode: ParseMode | None,
) -> Awaitable[Message]:
    return message.reply_text(
        text,
        parse_mode=mode,
        link_preview_options=NO_PREVIEW,
        reply_markup=markup,
        reply_parameters=reply_to,
    )


def _send_part(
    bot: Bot, chat_id: int, reply_to: ReplyParameters, text: str, mode: ParseMode | None
) -> Awaitable[Message]:
    return bot.send_message(
        chat_id, text, parse_mode=mode, link_preview_options=NO_PREVIEW, reply_parameters=reply_to
    )


# --------------------------------------------------------------------------- small state


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

    def take(self, key: str, chat_id: int) -> StoredSources | None:
        """The entry for ``key`` if it belongs to ``chat_id`` (then it is used up).

        Callback data travels with the message (forwarded, or typed by a modified client),
        so a key alone must never reveal another chat's answer. A mismatch leaves the entry
        for its own chat.
        """
        stored = self._items.get(key)
        if stored is None or stored.chat_id != chat_id:
            return None
        del self._items[key]
        return stored


# --------------------------------------------------------------------------- routing filters


def _mentions_bot(message: Message, bot_id: int, username: str | None) -> bool:
    handle = f"@{username}".lower() if username else None
    for entity, value in {**message.parse_entities(), **message.parse_caption_entities()}.items():
        if entity.type == MessageEntity.MENTION and handle and value.lower() == handle:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot_id:
            return True
    text = message.text or message.caption or ""
    return bool(username and handle_re(username).search(text))


def _replies_to_bot(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return (
        replied is not None
        and replied.from_user is not None
        and replied.from_user.id == bot_id
        and not replied.forum_topic_created  # in topics every message "replies" to this
    )


class AddressedToBot(filters.MessageFilter):
    """A group message meant for this bot: it mentions the bot or replies to it."""

    def filter(self, message: Message) -> bool:
        bot = message.get_bot()
        return _mentions_bot(message, bot.id, bot.username) or _replies_to_bot(message, bot.id)


class CommandForBot(filters.MessageFilter):
    """``/cmd@thisbot``: in groups, unaddressed commands may belong to other bots."""

    def filter(self, message: Message) -> bool:
        command = (message.text or "").split(maxsplit=1)[0] if message.text else ""
        username = (message.get_bot().username or "").lower()
        return bool(username) and command.partition("@")[2].lower() == username


NEW = filters.UpdateType.MESSAGE  # edits would re-trigger answers
FOR_US = filters.ChatType.PRIVATE | (filters.ChatType.GROUPS & AddressedToBot())


def register(app: Application, bot: TelegramFrontend) -> None:
    for names, callback in (
        (("start", "help"), bot.cmd_help),
        (("ask",), bot.cmd_ask),
        (("latest",), bot.cmd_latest),
        (("stats",), bot.cmd_stats),
        (("reindex",), bot.cmd_reindex),
    ):
        app.add_handler(CommandHandler(names, callback, filters=NEW))
    app.add_handler(CallbackQueryHandler(bot.on_more, pattern=f"^{MORE_PREFIX}"))
    app.add_handler(CallbackQueryHandler(bot.on_stray_callback))
    unknown = filters.COMMAND & (filters.ChatType.PRIVATE | CommandForBot())
    app.add_handler(MessageHandler(NEW & unknown, bot.on_unknown_command))
    app.add_handler(MessageHandler(NEW & filters.TEXT & ~filters.COMMAND & FOR_US, bot.on_text))
    non_text = ~filters.TEXT & ~filters.StatusUpdate.ALL
    app.add_handler(MessageHandler(NEW & non_text & FOR_US, bot.on_non_text))
    app.add_error_handler(bot.on_error)


# --------------------------------------------------------------------------- the bot


class TelegramFrontend:
    """Handlers and per-bot state; one instance per :class:`Application`."""

    def __init__(
        self,
        config: BotConfig,
        service: BotService,
        lifecycle: Lifecycle,
        *,
        max_question_chars: int,
        clock: Callable[[], float] = time.monotonic,
        max_workers: int = 4,
    ) -> None:
        self.config = config
        self.service = service
        self.lifecycle = lifecycle
        self.max_question_chars = max_question_chars
        self.limiter = SlidingWindowRateLimiter(
            config.rate_limit_per_minute, RATE_WINDOW_SECONDS, clock
        )
        self.answers = AnswerStore()
        self.pool = WorkerPool(max_workers)
        self._reindex_lock = asyncio.Lock()

    async def post_init(self, app: Application) -> None:
        try:
            await app.bot.set_my_commands(list(texts.PUBLIC_COMMANDS))
        except TelegramError as exc:
            logger.warning("Could not register bot commands: %s", exc)
        for admin in sorted(self.config.admins):
            try:
                await app.bot.set_my_commands(
                    list(texts.ADMIN_COMMANDS), scope=BotCommandScopeChat(admin)
                )
            except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
                logger.info("Could not register admin commands for %s: %s", admin, exc)

    # ---- access

    def _is_admin(self, user: User | None) -> bool:
        return user is not None and user.id in self.config.admins

    def _chat_allowed(self, chat: Chat, user: User | None) -> bool:
        if not self.config.allowed_chats or chat.id in self.config.allowed_chats:
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
            await update.callback_query.answer(texts.TEXT_REFUSED_CHAT, show_alert=True)
        elif update.effective_message is not None:
            await self._say(update.effective_message, texts.TEXT_REFUSED_CHAT)
        return False

    # ---- delivery

    @staticmethod
    async def _deliver(send: Send, part: str) -> Message:
        # 5xx and timeouts are retried by the transport; a 400 would fail again as it is
        # (e.g. Telegram cannot parse the HTML), so the answer goes out as plain text.
        try:
            return await send(part, ParseMode.HTML)
        except BadRequest as exc:
            logger.warning("Telegram refused an HTML message (%s); resending as plain text", exc)
            return await send(html_to_plain(part), None)

    async def _reply(
        self, message: Message, html_text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Send ``html_text`` in as many parts as needed; the keyboard goes on the last one."""
        parts = split_html(html_text) or [escape("（空）")]
        # in groups, quote what we answer
        quoted = message.chat.type != ChatType.PRIVATE
        reply_to = ReplyParameters(message.message_id, allow_sending_without_reply=True)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            send = functools.partial(
                _reply_part, message, markup if last else None, reply_to if quoted else None
            )
            await self._deliver(send, part)

    async def _say(self, message: Message, plain: str) -> None:
        await self._reply(message, escape(plain))

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

    # ---- questions

    async def _admit(self, message: Message, question: str, asker: int) -> bool:
        """Length, rate and shutdown checks; says why when a question is turned away."""
        if not question:
            await self._say(message, texts.TEXT_EMPTY)
        elif len(question) > self.max_question_chars:
            limit = self.max_question_chars
            await self._say(message, texts.TEXT_TOO_LONG.format(length=len(question), limit=limit))
        elif self.lifecycle.closing:
            await self._say(message, texts.TEXT_SHUTTING_DOWN)
        else:
            verdict = self.limiter.check(asker)
            if verdict.allowed:
                return True
            if verdict.notify:
                wait = max(1, round(verdict.retry_after))
                limit = self.limiter.limit
                await self._say(message, texts.TEXT_RATE_LIMITED.format(limit=limit, wait=wait))
            else:
                logger.debug("Dropped a question from %s (rate limited, already told)", asker)
        return False

    async def _ask(self, message: Message, question: str, conversation: str) -> Answer | None:
        """The service's answer, or ``None`` if shutdown abandoned it."""
        # Start the work first so the typing request overlaps with it.
        pending = self.pool.submit(self.service.ask, question, conversation)
        await self._typing(message)
        keepalive = asyncio.create_task(self._keep_typing(message))
        try:
            return await self.lifecycle.answer_or_abandon(pending)
        finally:
            keepalive.cancel()

    def _more_button(self, chat_id: int, answer: Answer) -> InlineKeyboardMarkup | None:
        extra = extra_sources(answer)
        if not extra:
            return None
        key = self.answers.put(chat_id, extra)
        button = InlineKeyboardButton("更多来源", callback_data=MORE_PREFIX + key)
        return InlineKeyboardMarkup([[button]])

    async def _answer(self, update: Update, question: str) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not await self._gate(update):
            return
        user = update.effective_user
        asker = user.id if user is not None else chat.id
        question = question.strip()
        if not await self._admit(message, question, asker):
            return
        answer = await self._ask(message, question, f"{chat.id}:{asker}")
        if answer is None:
            await self._say(message, texts.TEXT_SHUTTING_DOWN)
            return
        await self._reply(message, render_answer(answer), self._more_button(chat.id, answer))

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None:
            return
        private = message.chat.type == ChatType.PRIVATE
        question = message.text if private else strip_handle(message.text, context.bot.username)
        await self._answer(update, question)

    async def cmd_ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None:
            return
        # Keep the question's own spacing/newlines (context.args would re-join on spaces).
        rest = message.text.split(maxsplit=1)
        question = rest[1] if len(rest) > 1 else ""
        await self._answer(update, strip_handle(question, context.bot.username))

    # ---- other messages

    async def on_non_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and await self._gate(update):
            await self._say(message, texts.TEXT_NON_TEXT)

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and await self._gate(update):
            await self._say(message, texts.TEXT_UNKNOWN_COMMAND)

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
        items = await self.pool.run(self.service.latest, n)
        await self._reply(message, render_latest(items))

    async def cmd_stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not await self._gate(update):
            return
        await self._reply(message, render_stats(await self.pool.run(self.service.stats)))

    async def cmd_reindex(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or not await self._gate(update):
            return
        who = user.id if user else None
        if not self._is_admin(user):
            logger.info("Refused /reindex from non-admin %s", who)
            await self._say(message, texts.TEXT_NOT_ADMIN)
            return
        if self._reindex_lock.locked():
            await self._say(message, texts.TEXT_REINDEX_BUSY)
            return
        async with self._reindex_lock:
            await self._say(message, texts.TEXT_REINDEX_START)
            try:
                report = await self.pool.run(self.service.reindex)
            except Exception:
                logger.exception("Reindex requested by %s failed", who)
                await self._say(message, texts.TEXT_REINDEX_FAILED)
                return
        logger.info("Reindex by %s: %s", who, report)
        await self._reply(message, render_reindex(report))

    # ---- callbacks

    async def on_more(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not await self._gate(update):
            return
        origin = query.message  # None for inline messages: those are never ours
        key = (query.data or "")[len(MORE_PREFIX) :]
        stored = self.answers.take(key, origin.chat.id) if origin is not None else None
        if origin is None or stored is None:
            await query.answer(texts.TEXT_EXPIRED)
            return
        await query.answer()
        reply_to = ReplyParameters(origin.message_id, allow_sending_without_reply=True)
        send = functools.partial(_send_part, context.bot, origin.chat.id, reply_to)
        for part in split_html(render_more_sources(stored.sources)):
            await self._deliver(send, part)
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
                await update.callback_query.answer(texts.TEXT_ERROR)
            elif update.effective_message is not None:
                await update.effective_message.reply_text(texts.TEXT_ERROR)
        except Exception as exc:  # the error handler itself must never raise
            logger.warning("Could not tell the user about the error: %r", exc)
