"""In-flight work and shutdown: worker threads for the blocking service, and a bounded stop.

systemd gives the bot ``TimeoutStopSec=15`` after SIGTERM. ``Application.stop()`` waits for
every running handler, and a handler waits for its answer, so one slow answer used to hold
the whole stop. :class:`Lifecycle` bounds it: on shutdown, answers still running after
``grace`` seconds are abandoned (the user is told to ask again), and after ``hard`` seconds
any request still in flight is cut, so the process is gone well within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram.error import TimedOut

from .config import BotConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

SHUTDOWN_GRACE_SECONDS = 6.0  # finish (drain) answers that are nearly done
SHUTDOWN_HARD_SECONDS = 8.5  # then cut whatever request is still in flight


class Lifecycle:
    """Shutdown state shared by the handlers, the transport and ``run_bot``."""

    def __init__(
        self, grace: float = SHUTDOWN_GRACE_SECONDS, hard: float = SHUTDOWN_HARD_SECONDS
    ) -> None:
        self.grace, self.hard = grace, max(grace, hard)
        self.closing = False
        self.fatal: BotConfigError | None = None
        self._abandon = asyncio.Event()
        self._cut = asyncio.Event()
        self._stop: Callable[[], None] | None = None

    def attach(self, stop: Callable[[], None]) -> None:
        """``stop`` ends ``run_polling``/``run_webhook`` (``Application.stop_running``)."""
        self._stop = stop

    def begin_shutdown(self, fatal: BotConfigError | None = None) -> None:
        """Start a bounded stop (must run on the event loop); ``fatal`` makes the exit non-zero."""
        if fatal is not None and self.fatal is None:
            self.fatal = fatal
        if self.closing:
            return
        self.closing = True
        if fatal is not None:
            logger.error("Stopping: %s", fatal)
        logger.info("Shutting down: waiting up to %.0f s for answers in flight", self.grace)
        loop = asyncio.get_running_loop()
        loop.call_later(self.grace, self._abandon.set)
        loop.call_later(self.hard, self._cut.set)
        if self._stop is not None:
            self._stop()

    async def answer_or_abandon(self, pending: asyncio.Future[T]) -> T | None:
        """``pending``'s result, or ``None`` if shutdown's grace ran out first."""
        abandon = asyncio.ensure_future(self._abandon.wait())
        try:
            await asyncio.wait({pending, abandon}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandon.cancel()
        if pending.done():
            return pending.result()
        pending.cancel()  # a worker that has not started yet skips the call
        return None

    async def until_cut(self, request: Awaitable[T]) -> T:
        """Await ``request`` unless shutdown's hard deadline comes first (then ``TimedOut``)."""
        if self._cut.is_set():
            if asyncio.iscoroutine(request):
                request.close()  # never started; closing avoids a "never awaited" warning
            raise TimedOut("not sent: the bot is shutting down")
        task = asyncio.ensure_future(request)
        cut = asyncio.ensure_future(self._cut.wait())
        try:
            await asyncio.wait({task, cut}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut.cancel()
            if not task.done():
                task.cancel()
        if task.cancelled():
            raise TimedOut("not sent: the bot is shutting down")
        return task.result()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # abandoned at shutdown
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WorkerPool:
    """Runs blocking service calls in daemon threads, at most ``size`` at a time.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so one answer
    stuck in the model kept the process alive after the bot had stopped.
    """

    def __init__(self, size: int = 4, name: str = "qa-bot-ask") -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._name = name

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def work() -> None:
            with self._slots:
                if future.cancelled():
                    return
                result, error = None, None
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to the awaiting handler
                    error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)

        threading.Thread(target=work, name=self._name, daemon=True).start()
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)
