"""Keep the bot token (and the webhook secret) out of every log line.

The token is part of every Bot API URL, and ``httpx`` logs those URLs at INFO level;
exceptions can carry them too. :func:`install_token_filter` redacts them from log records
before any handler formats them.
"""

from __future__ import annotations

import logging

REDACTED = "[REDACTED]"
# Loggers that log request URLs (which contain the token). A logger's filter only sees
# records created on that exact logger, so everything else is covered via root handlers.
_REDACTED_LOGGERS = ("httpx", "httpcore")


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
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            self._redact_message(record)
            self._redact_traceback(record)
        return True

    def _redact_message(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()

    def _redact_traceback(self, record: logging.LogRecord) -> None:
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


_SECRET_FILTER = SecretRedactingFilter()


def install_token_filter(*secrets: str | None) -> SecretRedactingFilter:
    """Register secrets for redaction and attach the shared filter (idempotent).

    Attached to the root logger's current handlers (which every propagating record passes
    through) and directly to the ``httpx``/``httpcore`` loggers. Call again after
    (re)configuring logging so new handlers get it too.
    """
    for secret in secrets:
        _SECRET_FILTER.add(secret)
    for handler in logging.getLogger().handlers:
        if _SECRET_FILTER not in handler.filters:
            handler.addFilter(_SECRET_FILTER)
    for name in _REDACTED_LOGGERS:
        named = logging.getLogger(name)
        if _SECRET_FILTER not in named.filters:
            named.addFilter(_SECRET_FILTER)
    return _SECRET_FILTER
