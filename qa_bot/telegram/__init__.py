"""The Telegram front end: a thin python-telegram-bot (v22) layer over a question service.

Modules: ``render`` (message HTML, splitting), ``redact`` (token-free logs), ``config``
(settings checks), ``contract`` (the typed service interface), ``ratelimit``,
``lifecycle`` (worker threads, bounded shutdown), ``transport`` (retries, revoked-token
detection), ``handlers`` (routing and handlers), ``app`` (wiring, ``run_bot``).
"""

from __future__ import annotations

from qa_bot.types import IndexStats, LatestArticle, ReindexReport

from .app import BotTuning, build_application, run_bot
from .config import (
    BotApiUnreachable,
    BotConfigError,
    BotUnauthorized,
    validate_token,
    webhook_options,
)
from .contract import BotService
from .redact import SecretRedactingFilter, install_token_filter
from .transport import RetryPolicy

__all__ = [
    "BotApiUnreachable",
    "BotConfigError",
    "BotService",
    "BotTuning",
    "BotUnauthorized",
    "IndexStats",
    "LatestArticle",
    "ReindexReport",
    "RetryPolicy",
    "SecretRedactingFilter",
    "build_application",
    "install_token_filter",
    "run_bot",
    "validate_token",
    "webhook_options",
]
