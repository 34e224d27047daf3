"""The bot's settings, validated once at start; every failure is one printable line."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from qa_bot.config import Settings

TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{30,}$")
# Telegram's own rule for setWebhook's secret_token.
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class BotConfigError(RuntimeError):
    """The bot cannot (keep) running for a reason the operator must fix.

    ``str()`` is one printable line without secrets; the CLI prints it and exits 2, which
    systemd's ``Restart=on-failure`` counts as a failure.
    """


class BotUnauthorized(BotConfigError):
    """Telegram rejected the token, at start or while running."""


class BotApiUnreachable(BotConfigError):
    """The Bot API could not be reached at start."""


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


def validate_ids(settings: Settings) -> tuple[frozenset[int], frozenset[int]]:
    """(allowed chats, admins)."""
    try:
        return settings.allowed_chat_ids, settings.admin_ids
    except ValueError:
        raise BotConfigError(
            "QA_BOT_ALLOWED_CHATS / QA_BOT_ADMINS must be comma-separated integer ids"
        ) from None


def validate_base_url(url: str | None) -> str | None:
    if not url or not url.strip():
        return None
    url = url.strip()
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


def _webhook_secret(settings: Settings) -> str:
    if settings.webhook_secret is None:
        # setWebhook is called on every start, so a fresh random secret is as good as a
        # configured one and still rejects forged POSTs.
        return secrets.token_urlsafe(32)
    secret = settings.webhook_secret.get_secret_value()
    if not WEBHOOK_SECRET_RE.fullmatch(secret):
        raise BotConfigError(
            "QA_BOT_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ or -"
        )
    return secret


def webhook_options(settings: Settings) -> WebhookOptions | None:
    """Webhook parameters when ``settings.webhook_url`` is set, else ``None`` (polling)."""
    if not settings.webhook_url:
        return None
    parts = urlsplit(settings.webhook_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BotConfigError("QA_BOT_WEBHOOK_URL must be an http(s) URL")
    return WebhookOptions(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path=parts.path.lstrip("/"),
        webhook_url=settings.webhook_url,
        secret_token=_webhook_secret(settings),
    )


@dataclass(frozen=True)
class BotConfig:
    """Everything the bot reads from :class:`Settings`, checked."""

    token: str
    base_url: str | None
    allowed_chats: frozenset[int]
    admins: frozenset[int]
    rate_limit_per_minute: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        allowed, admins = validate_ids(settings)
        return cls(
            token=validate_token(settings),
            base_url=validate_base_url(settings.telegram_api_base_url),
            allowed_chats=allowed,
            admins=admins,
            rate_limit_per_minute=settings.rate_limit_per_minute,
        )
