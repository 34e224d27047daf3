"""Per-user question limit: a sliding window, and one notice per refused stretch.

Every notice is an outgoing message, and outgoing messages share Telegram's global flood
limit (about 30 a second): answering each refused message with its own notice let one
user flooding the bot delay everyone else's answers. So a user is told once, and further
refused messages are dropped silently until the window lets them ask again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

RATE_WINDOW_SECONDS = 60.0
_MAX_TRACKED = 10_000  # keep memory bounded under many distinct users


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    notify: bool = False  # refused, and this user has not been told yet
    retry_after: float = 0.0


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
        self._told_until: dict[int, float] = {}  # key → when its refused stretch ends

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
        self._told_until.pop(key, None)
        if len(self._hits) > _MAX_TRACKED:
            self._forget_idle(now)
        return True

    def _forget_idle(self, now: float) -> None:
        for other in list(self._hits):
            self._prune(self._hits[other], now)
            if not self._hits[other]:
                del self._hits[other]
                self._told_until.pop(other, None)

    def retry_after(self, key: int) -> float:
        hits = self._hits.get(key)
        if not hits or len(hits) < self.limit:
            return 0.0
        return max(0.0, self.window - (self._clock() - hits[0]))

    def check(self, key: int) -> Verdict:
        """Count one question; when refused, say whether this is the first refusal."""
        if self.allow(key):
            return Verdict(True)
        wait = self.retry_after(key)
        now = self._clock()
        if now < self._told_until.get(key, float("-inf")):
            return Verdict(False, notify=False, retry_after=wait)
        self._told_until[key] = now + wait
        return Verdict(False, notify=True, retry_after=wait)
