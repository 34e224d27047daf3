"""A fake Telegram Bot API server on 127.0.0.1 for driving the real python-telegram-bot.

An aiohttp server runs in a background thread and serves ``/bot<token>/<method>``:

* ``getMe`` returns a bot user with a username;
* ``getUpdates`` hands out updates queued by the test (``enqueue_*`` helpers), honouring
  ``offset`` and returning ``[]`` after a short wait when there is nothing new;
* every other method is recorded (method + decoded params) and answered with a plausible
  ``ok: true`` result; ``sendMessage``/``editMessageText`` return Message objects;
* failures are scripted per method (getUpdates included): :meth:`FakeTelegram.fail_next`
  answers with an error status (429 flood control, 401, 400, 500, ...),
  :meth:`FakeTelegram.hang_next` holds a request past the client's timeout and drops it.

Tests running the bot on their own event loop use the ``async`` waiters
(:meth:`FakeTelegram.wait_for`, :meth:`FakeTelegram.wait_for_messages`); tests whose bot runs
in another process use :meth:`FakeTelegram.wait_for_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_TOKEN = "4839574812:AAFD39kkdpWt3ywyRZergyOLMaJhac60qc"
BOT_ID = 4839574812
BOT_USERNAME = "news_qa_test_bot"

# Parameters that are free text and must never be JSON-decoded ("123" stays a string).
_TEXT_PARAMS = frozenset(
    {"text", "caption", "data", "callback_query_id", "url", "secret_token", "description"}
)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    status: int
    description: str
    retry_after: int | None = None
    delay: float = 0.0  # > 0: hold the request this long, then drop it (a timeout)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _auto_entities(text: str) -> list[dict]:
    """The entities Telegram itself would attach: a leading /command and @mentions."""
    entities: list[dict] = []
    command = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
    if command:
        entities.append({"type": "bot_command", "offset": 0, "length": _utf16(command.group())})
    for match in re.finditer(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,}", text):
        if command and match.start() < command.end():
            continue
        entities.append(
            {
                "type": "mention",
                "offset": _utf16(text[: match.start()]),
                "length": _utf16(match.group()),
            }
        )
    return entities


class FakeTelegram:
    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_id: int = BOT_ID,
        bot_username: str = BOT_USERNAME,
        max_poll_wait: float = 0.25,
    ) -> None:
        self.token = token
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "新闻问答",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.max_poll_wait = max_poll_wait
        self.reject_token = False  # answer 401 for every call, like a revoked token
        self.port: int | None = None
        self._lock = threading.Lock()
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._incoming_ids = itertools.count(10_000)  # messages "sent by users"
        self._outgoing_ids = itertools.count(1)  # messages sent by the bot
        self._query_ids = itertools.count(1)
        self._chats: dict[int, dict] = {}
        self._calls: list[Call] = []
        self._faults: dict[str, list[Fault]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """The value for python-telegram-bot's ``base_url`` (token is appended to it)."""
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> FakeTelegram:
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                app = web.Application()
                app.router.add_route("*", "/{prefix}/{method}", self._handle)
                # No access log: request paths contain the token.
                runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self._runner = runner
                self.port = runner.addresses[0][1]
            except BaseException as exc:  # surface startup failures to the test thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-telegram", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP side

    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                return {**raw, **body}
        elif request.can_read_body:
            form = await request.post()
            raw.update({k: v for k, v in form.items() if isinstance(v, str)})
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _TEXT_PARAMS or not isinstance(value, str):
                params[key] = value
                continue
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        prefix, method = request.match_info["prefix"], request.match_info["method"]
        if prefix != f"bot{self.token}" or self.reject_token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params = await self._params(request)
        with self._lock:
            faults = self._faults.get(method)
            fault = faults.pop(0) if faults else None
        if fault is not None and fault.delay:
            # A hung API: the client gives up first; nothing is delivered.
            await asyncio.sleep(fault.delay)
            self._record(Call(method, params, {"fault": "timeout"}))
            return web.json_response({"ok": False, "error_code": 504}, status=504)
        if fault is not None:
            self._record(Call(method, params, {"fault": fault.status}))
            payload: dict[str, Any] = {
                "ok": False,
                "error_code": fault.status,
                "description": fault.description,
            }
            if fault.retry_after is not None:
                payload["parameters"] = {"retry_after": fault.retry_after}
            return web.json_response(payload, status=fault.status)
        if method == "getUpdates":
            return web.json_response({"ok": True, "result": await self._get_updates(params)})
        result = self._result(method, params)
        self._record(Call(method, params, result))
        return web.json_response({"ok": True, "result": result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), self.max_poll_wait)
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                if offset:
                    # Telegram forgets updates once a higher offset confirms them.
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                pending = self._updates[:limit]
            if pending or time.monotonic() >= deadline:
                return pending
            await asyncio.sleep(0.01)

    def _chat(self, chat_id: Any) -> dict:
        try:
            chat_id = int(chat_id)
        except (TypeError, ValueError):
            return {"id": -1, "type": "channel", "title": str(chat_id)}
        with self._lock:
            known = self._chats.get(chat_id)
        if known:
            return known
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "用户"}
        return {"id": chat_id, "type": "supergroup", "title": "测试群"}

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return self.bot_user
        if method in ("sendMessage", "editMessageText"):
            message: dict[str, Any] = {
                "message_id": (
                    next(self._outgoing_ids)
                    if method == "sendMessage"
                    else int(params.get("message_id") or 0)
                ),
                "from": self.bot_user,
                "chat": self._chat(params.get("chat_id")),
                "date": int(time.time()),
                "text": params.get("text", ""),
            }
            if isinstance(params.get("reply_markup"), dict):
                message["reply_markup"] = params["reply_markup"]
            return message
        if method == "editMessageReplyMarkup":
            return {
                "message_id": int(params.get("message_id") or 0),
                "from": self.bot_user,
                "chat": self._chat(params.get("chat_id")),
                "date": int(time.time()),
                "text": "",
            }
        if method == "getWebhookInfo":
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        if method == "getMyCommands":
            return []
        return True  # sendChatAction, answerCallbackQuery, setMyCommands, deleteWebhook, ...

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    # ------------------------------------------------------------------ scripting

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        description: str | None = None,
        retry_after: int | None = 1,
        count: int = 1,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail (default: flood control 429)."""
        text = description or f"Too Many Requests: retry after {retry_after}"
        with self._lock:
            self._faults.setdefault(method, []).extend(
                Fault(status, text, retry_after if status == 429 else None) for _ in range(count)
            )

    def hang_next(self, method: str, seconds: float, *, count: int = 1) -> None:
        """Make the next ``count`` calls of ``method`` hang for ``seconds`` and then fail,
        like an API that accepts the connection but never answers in time."""
        with self._lock:
            self._faults.setdefault(method, []).extend(
                Fault(504, "Gateway Timeout", delay=seconds) for _ in range(count)
            )

    def user(self, user_id: int, first_name: str = "测试用户") -> dict:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "zh"}

    def chat(self, chat_id: int, chat_type: str | None = None) -> dict:
        if chat_type is None:
            chat_type = "private" if chat_id > 0 else "supergroup"
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = "测试用户"
        else:
            chat["title"] = "测试群"
        with self._lock:
            self._chats[chat_id] = chat
        return chat

    def enqueue(self, update: dict) -> int:
        """Queue a raw update body (without ``update_id``); returns the assigned id."""
        with self._lock:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **update})
        return update_id

    def make_message(
        self,
        chat_id: int,
        *,
        user_id: int | None = None,
        text: str | None = None,
        chat_type: str | None = None,
        reply_to: dict | None = None,
        **extra: Any,
    ) -> dict:
        message: dict[str, Any] = {
            "message_id": next(self._incoming_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id, chat_type),
            "from": self.user(user_id if user_id is not None else abs(chat_id)),
        }
        if text is not None:
            message["text"] = text
            entities = _auto_entities(text)
            if entities:
                message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(extra)
        return message

    def bot_message(self, chat_id: int, text: str = "之前的回答") -> dict:
        """A message 'sent earlier by the bot', for reply-to-bot scenarios."""
        return {
            "message_id": next(self._outgoing_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": self.bot_user,
            "text": text,
        }

    def enqueue_private_text(self, chat_id: int, text: str, *, user_id: int | None = None) -> dict:
        message = self.make_message(chat_id, user_id=user_id, text=text, chat_type="private")
        self.enqueue({"message": message})
        return message

    def enqueue_group_text(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int,
        mention: bool = False,
        reply_to_bot: bool = False,
        reply_to: dict | None = None,
        chat_type: str = "supergroup",
    ) -> dict:
        """A group message; ``mention`` prefixes ``@bot``, ``reply_to_bot`` replies to the bot."""
        if mention:
            text = f"@{self.bot_user['username']} {text}"
        if reply_to_bot:
            reply_to = self.bot_message(chat_id)
        message = self.make_message(
            chat_id, user_id=user_id, text=text, chat_type=chat_type, reply_to=reply_to
        )
        self.enqueue({"message": message})
        return message

    def enqueue_sticker(self, chat_id: int, *, user_id: int | None = None) -> dict:
        sticker = {
            "file_id": "CAACAgIAAxkBAAE",
            "file_unique_id": "AgADsticker",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
        }
        message = self.make_message(chat_id, user_id=user_id, sticker=sticker)
        self.enqueue({"message": message})
        return message

    def enqueue_photo(
        self, chat_id: int, *, user_id: int | None = None, caption: str | None = None
    ) -> dict:
        photo = [
            {
                "file_id": "AgACAgIAAxkBphoto",
                "file_unique_id": "AQADphoto",
                "width": 90,
                "height": 90,
                "file_size": 1234,
            }
        ]
        extra: dict[str, Any] = {"photo": photo}
        if caption is not None:
            extra["caption"] = caption
            entities = _auto_entities(caption)
            if entities:
                extra["caption_entities"] = entities
        message = self.make_message(chat_id, user_id=user_id, **extra)
        self.enqueue({"message": message})
        return message

    def enqueue_voice(self, chat_id: int, *, user_id: int | None = None) -> dict:
        voice = {"file_id": "AwACAgIAAxkBvoice", "file_unique_id": "AgADvoice", "duration": 3}
        message = self.make_message(chat_id, user_id=user_id, voice=voice)
        self.enqueue({"message": message})
        return message

    def enqueue_callback_query(self, message: dict, data: str, *, user_id: int) -> str:
        """A press on an inline button of ``message`` (a message the bot sent)."""
        query_id = f"cbq{next(self._query_ids)}"
        self.enqueue(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self.user(user_id),
                    "chat_instance": f"ci{message['chat']['id']}",
                    "message": message,
                    "data": data,
                }
            }
        )
        return query_id

    # ------------------------------------------------------------------ inspection

    def calls(
        self,
        method: str | None = None,
        *,
        chat_id: int | None = None,
        predicate: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        with self._lock:
            calls = list(self._calls)
        return [
            c
            for c in calls
            if (method is None or c.method == method)
            and (chat_id is None or c.params.get("chat_id") == chat_id)
            and (predicate is None or predicate(c))
        ]

    def sent(self, chat_id: int | None = None) -> list[dict]:
        """Params of every successful sendMessage, in arrival order."""
        return [
            c.params
            for c in self.calls("sendMessage", chat_id=chat_id)
            if not (isinstance(c.result, dict) and "fault" in c.result)
        ]

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by the bot (a later getUpdates offset)."""
        with self._lock:
            return len(self._updates)

    def _describe(self, method: str) -> str:
        recorded = self.calls(method)
        texts = [str(c.params.get("text", c.params))[:80] for c in recorded[-5:]]
        return f"{len(recorded)} {method} call(s); last: {texts}"

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 10.0,
        chat_id: int | None = None,
        predicate: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Wait (without blocking the event loop) until ``count`` matching calls exist."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(method, chat_id=chat_id, predicate=predicate)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count}: {self._describe(method)}")
            await asyncio.sleep(0.01)

    async def wait_for_messages(
        self, count: int, *, timeout: float = 10.0, chat_id: int | None = None
    ) -> list[dict]:
        await self.wait_for(
            "sendMessage",
            count,
            timeout=timeout,
            chat_id=chat_id,
            predicate=lambda c: not (isinstance(c.result, dict) and "fault" in c.result),
        )
        return self.sent(chat_id)

    def wait_for_sync(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 10.0,
        chat_id: int | None = None,
    ) -> list[Call]:
        """Blocking variant for bots running in another thread or process."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(method, chat_id=chat_id)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count}: {self._describe(method)}")
            time.sleep(0.01)

    async def settle(self, seconds: float = 0.3) -> None:
        """Give the bot a moment to (not) react, for asserting silence."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(seconds)
