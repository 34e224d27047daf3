"""``qa-bot watch``: update and publish the index when posts change.

File events are debounced: a ``git pull`` that brings 500 posts produces one update
after the burst settles (``quiet_seconds`` without events), not 500. A burst that never
settles is still applied after ``max_wait_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class _Debouncer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.first: float | None = None
        self.last: float | None = None
        self.events = 0

    def hit(self) -> None:
        with self._lock:
            now = self._clock()
            if self.first is None:
                self.first = now
            self.last = now
            self.events += 1

    def due(self, quiet: float, max_wait: float) -> int:
        """Number of events to apply now (0 = wait)."""
        with self._lock:
            if self.first is None or self.last is None:
                return 0
            now = self._clock()
            if now - self.last >= quiet or now - self.first >= max_wait:
                n = self.events
                self.first = self.last = None
                self.events = 0
                return n
            return 0


def _is_post(path: str) -> bool:
    return path.endswith(".md")


def watch_corpus(
    corpus_dir: Path,
    update: Callable[[], str],
    *,
    quiet_seconds: float = 2.0,
    max_wait_seconds: float = 30.0,
    poll_seconds: float = 0.2,
    stop: threading.Event | None = None,
    run_initial: bool = True,
) -> None:
    """Block until ``stop`` is set, calling ``update()`` once per settled burst.

    ``update`` returns a one-line summary that is logged.
    """
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    stop = stop or threading.Event()
    debounce = _Debouncer()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return
            paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
            if (event.is_directory and event.event_type != "modified") or any(map(_is_post, paths)):
                debounce.hit()

    def apply(reason: str) -> None:
        try:
            log.info("%s", update())
        except Exception as e:  # the watcher must outlive a bad update
            log.error("update failed (%s): %s", reason, e)

    observer = Observer()
    observer.schedule(Handler(), str(corpus_dir), recursive=True)
    observer.start()
    log.info("watching %s", corpus_dir)
    try:
        if run_initial:
            apply("start")
        while not stop.wait(poll_seconds):
            n = debounce.due(quiet_seconds, max_wait_seconds)
            if n:
                apply(f"{n} file events")
    finally:
        observer.stop()
        observer.join(timeout=5)
