"""How the bot talks to the Bot API: flood control, retries, and noticing a revoked token.

Both hook into python-telegram-bot's own extension points: a :class:`BaseRateLimiter`
sees every outgoing request but ``getUpdates``, and the :class:`HTTPXRequest` objects see
every request including ``getUpdates``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from telegram.error import BadRequest, InvalidToken, NetworkError
from telegram.ext import AIORateLimiter
from telegram.request import HTTPXRequest

from .lifecycle import Lifecycle

logger = logging.getLogger(__name__)

# Sends worth repeating: losing them loses an answer. Typing indicators and callback
# answers are ephemeral, and getUpdates has PTB's own retry loop.
RETRIED_ENDPOINTS = frozenset({"sendMessage", "editMessageReplyMarkup"})

JSON = bool | dict[str, Any] | list[dict[str, Any]]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for sends that fail with a 5xx, a timeout or a lost connection."""

    attempts: int = 7  # 0.5 + 1 + 2 + 4 + 8 + 8 s ≈ 24 s of API trouble survived
    first_delay: float = 0.5
    max_delay: float = 8.0

    def delays(self) -> Iterator[float]:
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(self.max_delay, delay * 2)


class RetryingRateLimiter(AIORateLimiter):
    """AIORateLimiter (flood limits, 429 retries) that also retries failed sends.

    A 400 is not retried here (the same request would fail again; the handlers resend as
    plain text); a 401 is fatal (see :class:`AuthWatchingRequest`). A retried timeout may
    deliver a message twice, which beats losing the answer.
    """

    def __init__(
        self, lifecycle: Lifecycle, policy: RetryPolicy | None = None, **limits: Any
    ) -> None:
        super().__init__(**limits)
        self.lifecycle = lifecycle
        self.policy = policy or RetryPolicy()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSON:
        delays = self.policy.delays() if endpoint in RETRIED_ENDPOINTS else iter(())
        while True:
            request = super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
            try:
                return await self.lifecycle.until_cut(request)
            except BadRequest:
                raise
            except NetworkError as exc:  # 5xx, TimedOut, connection errors
                # No retries once stopping: shutdown must stay bounded.
                delay = None if self.lifecycle.closing else next(delays, None)
                if delay is None:
                    raise
                logger.warning("%s failed (%s); retrying in %.1f s", endpoint, exc, delay)
                await asyncio.sleep(delay)


class AuthWatchingRequest(HTTPXRequest):
    """Reports a rejected token before PTB sees it.

    PTB's polling loop ends quietly on ``InvalidToken`` while the Application keeps
    running: the process stayed alive but received nothing, and a supervisor's
    ``Restart=on-failure`` never fired. ``on_rejected`` turns it into a stop with an error.
    """

    def __init__(self, on_rejected: Callable[[InvalidToken], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_rejected = on_rejected

    async def post(self, *args: Any, **kwargs: Any) -> JSON:
        try:
            return await super().post(*args, **kwargs)
        except InvalidToken as exc:
            self._on_rejected(exc)
            raise
