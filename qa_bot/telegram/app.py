"""Wiring: build the python-telegram-bot Application, and run it until a signal or a fatal error.

Exit contract (systemd ``Restart=on-failure``): a normal stop returns; anything that needs
the operator — a rejected token (at start or while running), an unreachable Bot API at
start, bad settings — raises :class:`BotConfigError`, which the CLI prints as one line
and turns into exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from telegram import Update
from telegram.error import BadRequest, InvalidToken, NetworkError
from telegram.ext import Application, ApplicationBuilder

from qa_bot.config import Settings

from .config import (
    BotApiUnreachable,
    BotConfig,
    BotConfigError,
    BotUnauthorized,
    WebhookOptions,
    webhook_options,
)
from .contract import BotService, max_question_chars
from .handlers import TelegramFrontend, register
from .lifecycle import SHUTDOWN_GRACE_SECONDS, SHUTDOWN_HARD_SECONDS, Lifecycle
from .redact import SecretRedactingFilter, install_token_filter
from .transport import AuthWatchingRequest, RetryingRateLimiter, RetryPolicy

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)
DEFAULT_API_URL = "https://api.telegram.org/bot"
TEXT_UNAUTHORIZED = "Telegram rejected TELEGRAM_BOT_TOKEN (unauthorized); check the token"


@dataclass(frozen=True)
class BotTuning:
    """Knobs tests turn down; the defaults are for production."""

    max_workers: int = 4  # threads answering at once (CPU-bound: about the core count)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    overall_max_rate: float = 30.0  # messages a second: Telegram's global flood limit
    read_timeout: float = 15.0
    shutdown_grace: float = SHUTDOWN_GRACE_SECONDS
    shutdown_hard: float = SHUTDOWN_HARD_SECONDS
    bootstrap_retries: int = 2  # a network blip at start is not worth a restart
    max_question_chars: int | None = None  # None: the service's own limit, or the default


def _builder(config: BotConfig, lifecycle: Lifecycle, tuning: BotTuning) -> ApplicationBuilder:
    def rejected(_: InvalidToken) -> None:
        lifecycle.begin_shutdown(BotUnauthorized(TEXT_UNAUTHORIZED))

    builder = (
        ApplicationBuilder()
        .token(config.token)
        # A roomy pool: concurrent answers each need a connection for typing + reply.
        .request(
            AuthWatchingRequest(
                rejected,
                connection_pool_size=64,
                pool_timeout=10.0,
                read_timeout=tuning.read_timeout,
            )
        )
        .get_updates_request(AuthWatchingRequest(rejected, connection_pool_size=2, read_timeout=10.0))
        .rate_limiter(
            RetryingRateLimiter(
                lifecycle, tuning.retry, overall_max_rate=tuning.overall_max_rate, max_retries=3
            )
        )
        .concurrent_updates(64)
    )
    if config.base_url:
        builder = builder.base_url(config.base_url)
        if config.base_url.endswith("/bot"):
            builder = builder.base_file_url(config.base_url[: -len("bot")] + "file/bot")
    return builder


def build_application(
    settings: Settings,
    service: BotService,
    *,
    clock: Callable[[], float] = time.monotonic,
    tuning: BotTuning | None = None,
) -> Application:
    """Build (but don't start) the bot. Raises :class:`BotConfigError` on bad settings.

    ``clock`` drives the per-user question rate limit. The :class:`TelegramFrontend` is at
    ``app.bot_data["frontend"]`` and its :class:`Lifecycle` at ``frontend.lifecycle``.
    """
    tuning = tuning or BotTuning()
    config = BotConfig.from_settings(settings)
    install_token_filter(config.token)
    lifecycle = Lifecycle(tuning.shutdown_grace, tuning.shutdown_hard)
    frontend = TelegramFrontend(
        config,
        service,
        lifecycle,
        max_question_chars=tuning.max_question_chars or max_question_chars(service),
        clock=clock,
        max_workers=tuning.max_workers,
    )
    app = _builder(config, lifecycle, tuning).post_init(frontend.post_init).build()
    lifecycle.attach(app.stop_running)
    register(app, frontend)
    app.bot_data["frontend"] = frontend
    return app


class _OneLineAbort(logging.Filter):
    """PTB logs a traceback when its retry loops give up (start-up retries exhausted, a
    rejected token); ``run_bot`` reports that same error in one line (README: known
    failures print one line), so the record keeps its message and loses the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and "Aborting" in message:
            record.msg = f"{message} ({record.exc_info[1]!r})"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


_ABORT_FILTER = _OneLineAbort()


def _finish_stopping(loop: asyncio.AbstractEventLoop, app: Application) -> None:
    """Stop what PTB's ``run_*`` left running.

    When the token is rejected while polling, PTB's polling task ends with InvalidToken,
    ``Updater.stop()`` re-raises it, and ``run_polling`` leaves before stopping the
    Application: handlers and HTTP clients would be torn down by a closing loop.
    """
    with contextlib.suppress(Exception):  # best effort: the process is exiting with an error
        if app.running:
            loop.run_until_complete(app.stop())
        loop.run_until_complete(app.shutdown())


def _run(app: Application, webhook: WebhookOptions | None, tuning: BotTuning) -> None:
    # stop_signals=None: run_bot's own handlers start a bounded shutdown instead.
    common = {
        "allowed_updates": list(ALLOWED_UPDATES),
        "stop_signals": None,
        "bootstrap_retries": tuning.bootstrap_retries,
        "close_loop": False,  # run_bot may still need the loop to finish stopping
    }
    if webhook is None:
        logger.info("Starting long polling")
        app.run_polling(**common)
        return
    logger.info("Starting webhook on %s:%s", webhook.listen, webhook.port)
    app.run_webhook(
        listen=webhook.listen,
        port=webhook.port,
        url_path=webhook.url_path,
        webhook_url=webhook.webhook_url,
        secret_token=webhook.secret_token,
        **common,
    )


def run_bot(
    settings: Settings, service: BotService, *, tuning: BotTuning | None = None
) -> None:
    """Run until SIGINT/SIGTERM: long polling, or a webhook server if ``webhook_url`` is set."""
    tuning = tuning or BotTuning()
    webhook = webhook_options(settings)
    app = build_application(settings, service, tuning=tuning)
    # Re-install now that the CLI has configured logging (new root handlers).
    redactor = install_token_filter(webhook.secret_token if webhook else None)
    lifecycle: Lifecycle = app.bot_data["frontend"].lifecycle
    logging.getLogger("telegram.ext").addFilter(_ABORT_FILTER)
    # run_* use the current loop; a fresh one avoids inheriting a closed loop.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lifecycle.begin_shutdown)
    try:
        _run_reporting(loop, app, webhook, tuning, settings.telegram_api_base_url, redactor)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    if lifecycle.fatal is not None:
        raise lifecycle.fatal
    logger.info("Bot stopped")


def _run_reporting(
    loop: asyncio.AbstractEventLoop,
    app: Application,
    webhook: WebhookOptions | None,
    tuning: BotTuning,
    base_url: str | None,
    redactor: SecretRedactingFilter,
) -> None:
    """:func:`_run`, with PTB's start-up and token errors turned into one-line errors."""
    try:
        _run(app, webhook, tuning)
    except InvalidToken:
        _finish_stopping(loop, app)
        # InvalidToken's message may contain the token itself; don't chain it.
        raise BotUnauthorized(TEXT_UNAUTHORIZED) from None
    except BadRequest as exc:
        reason = redactor.redact(str(exc))
        raise BotConfigError(f"Telegram refused the bot's setup: {reason}") from None
    except NetworkError as exc:  # also TimedOut
        reason = redactor.redact(str(exc))
        api = base_url or DEFAULT_API_URL
        raise BotApiUnreachable(f"cannot reach the Telegram Bot API at {api}: {reason}") from None
