"""One writer at a time.

Milvus Lite: a file lock beside the ``.db`` folder (the engine's own lock only keeps
other processes out while one has it open; this one also orders writers of one
process and makes a second ``qa-bot index update`` wait for the first).

A server has no lock primitive, so writers hold a lease: a row of the meta collection
naming the holder and an expiry, renewed while the update runs. A writer killed with
kill -9 stops renewing, and the next writer takes over once the lease expires.
Without compare-and-set this is best effort (two writers starting within one
round trip could both believe they hold it); the published version stays consistent
anyway, because every update is checked against its base version before publishing.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

from filelock import FileLock
from filelock import Timeout as LockTimeout

from ..errors import IndexBusy
from ._conn import Target, calls
from ._schema import Names, create_meta
from ._state import row_value

WRITER_KEY = "writer"
LEASE_SECONDS = 30.0


class WriterLock:
    """Re-entrant in the holding thread: ``apply`` inside ``writer_lock`` does not wait."""

    def __init__(self, target: Target, names: Names, client_of: Any) -> None:
        self._target, self._names, self._client_of = target, names, client_of
        self._owner: int | None = None
        self._depth = 0
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, timeout: float) -> Iterator[None]:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                reentered = True
            else:
                reentered = False
        if reentered:
            try:
                yield
            finally:
                with self._guard:
                    self._depth -= 1
            return
        with self._acquire(timeout):
            with self._guard:
                self._owner, self._depth = me, 1
            try:
                yield
            finally:
                with self._guard:
                    self._owner, self._depth = None, 0

    def _acquire(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        lite = self._target.lite_path
        if lite is not None:
            return _file_lock(lite.with_name(lite.name + ".lock"), timeout)
        return _Lease(self._client_of(), self._target, self._names, timeout)


@contextlib.contextmanager
def _file_lock(path: Any, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except LockTimeout:
        raise IndexBusy(path, timeout) from None
    try:
        yield
    finally:
        lock.release()


class _Lease:
    def __init__(self, client: Any, target: Target, names: Names, timeout: float) -> None:
        self._client, self._target, self._names, self._timeout = client, target, names, timeout
        self._token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> None:
        with calls(self._target, self._names.meta):
            create_meta(self._client, self._names)
        deadline = time.monotonic() + self._timeout
        while True:
            holder = self._holder()
            if holder is None or holder.get("owner") == self._token or holder.get("expires", 0) < time.time():
                self._write()
                time.sleep(0.2)  # let a writer that raced us write too; the last write wins
                held = self._holder()
                if held is not None and held.get("owner") == self._token:
                    break
            if time.monotonic() >= deadline:
                raise IndexBusy(f"{self._target.location} {self._names.meta}[{WRITER_KEY}]", self._timeout)
            time.sleep(0.5)
        self._renewer = threading.Thread(target=self._renew, name="milvus-lease", daemon=True)
        self._renewer.start()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        with contextlib.suppress(Exception):
            holder = self._holder()
            if holder is not None and holder.get("owner") == self._token:
                self._client.delete(self._names.meta, ids=[WRITER_KEY])

    def _holder(self) -> dict[str, Any] | None:
        with calls(self._target, self._names.meta):
            rows = self._client.query(self._names.meta, ids=[WRITER_KEY], output_fields=["value"])
        return row_value(rows)

    def _write(self) -> None:
        value = json.dumps({"owner": self._token, "expires": time.time() + LEASE_SECONDS})
        with calls(self._target, self._names.meta):
            self._client.upsert(self._names.meta, [{"key": WRITER_KEY, "value": value, "v": [1.0, 0.0]}])

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            with contextlib.suppress(Exception):
                self._write()
