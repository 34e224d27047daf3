"""Connections to Milvus (Lite or a server) and the translation of its failures into
one-line ``IndexProblem`` errors.

A ``.db`` URI is Milvus Lite: pymilvus starts the embedded engine inside this process,
and the engine holds an exclusive lock on its folder, so one process at a time can use
it. Any other URI is a server, reached over gRPC.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IndexCorrupt, IndexProblem, StorageProblem

#: seconds a server gets to answer the connection handshake and each call
CONNECT_TIMEOUT = 10.0

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


class MilvusUnavailable(StorageProblem):
    """The Milvus server cannot be reached, or refused the connection."""

    def __init__(self, location: str, reason: str) -> None:
        IndexProblem.__init__(
            self,
            f"cannot reach Milvus at {location} ({reason}): start the server or fix "
            "QA_BOT_MILVUS_URI / QA_BOT_MILVUS_TOKEN",
        )


class MilvusLiteBusy(StorageProblem):
    """Another process has the Milvus Lite folder open (the engine allows one)."""

    def __init__(self, path: Path) -> None:
        IndexProblem.__init__(
            self,
            f"the Milvus Lite file {path} is open in another process (Milvus Lite serves one "
            "process at a time): stop it, or run a Milvus server for several processes",
        )


@dataclass(frozen=True)
class Target:
    """Where the store is: a Milvus Lite folder or a server URI, and its secret."""

    uri: str
    token: str = ""

    @property
    def lite_path(self) -> Path | None:
        return Path(self.uri) if self.uri.endswith(".db") and "://" not in self.uri else None

    @property
    def location(self) -> str:
        """The URI for messages: credentials in it are masked, the token never shown."""
        return re.sub(r"//[^/@]+@", "//***@", self.uri)

    def scrub(self, text: str) -> str:
        """``text`` without the token (error texts can echo what they were given)."""
        return text.replace(self.token, "[REDACTED]") if len(self.token) >= 4 else text


def quiet_libraries() -> None:
    """pymilvus and Milvus Lite log every failed call with a traceback on stderr; each
    failure reaches the user once, as the one-line IndexProblem raised here. (Called
    after importing pymilvus: its import configures these loggers.)"""
    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer", "milvus_lite", "grpc._server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Milvus Lite's analyzer uses jieba, which sets its own logger to DEBUG on import
    import jieba

    jieba.setLogLevel(logging.WARNING)


def connect(target: Target):  # type: ignore[no-untyped-def]
    """A shared client for ``target`` (gRPC clients are thread-safe and costly to open)."""
    key = (target.uri, target.token)
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            return client
        from pymilvus import MilvusClient

        quiet_libraries()

        lite = target.lite_path
        if lite is not None:
            lite.parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MilvusClient(uri=target.uri, token=target.token, timeout=CONNECT_TIMEOUT)
        except Exception as e:  # pymilvus raises MilvusException subclasses, grpc its own
            if lite is not None and lite_folder_locked(lite):
                raise MilvusLiteBusy(lite) from None
            raise MilvusUnavailable(target.location, _reason(target, e)) from None
        _clients[key] = client
        return client


_loaded: set[tuple[str, str, str]] = set()


def ensure_loaded(client: Any, target: Target, name: str) -> None:
    """Load ``name`` once per process and client (Milvus answers only from loaded
    collections, and Milvus Lite starts with every collection released)."""
    key = (target.uri, target.token, name)
    if key in _loaded:
        return
    if str(client.get_load_state(name).get("state")) != "Loaded":
        client.load_collection(name)
    _loaded.add(key)


def forget(target: Target) -> None:
    """Drop the shared client (after the server went away, the next call reconnects)."""
    with _clients_lock:
        client = _clients.pop((target.uri, target.token), None)
        _loaded.difference_update({k for k in _loaded if k[:2] == (target.uri, target.token)})
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()  # type: ignore[attr-defined]


def release(target: Target) -> None:
    """Close the client and, for Milvus Lite, stop the embedded engine, so that another
    process can open the folder (e.g. a bench child after the parent built the index)."""
    forget(target)
    lite = target.lite_path
    if lite is not None:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(lite))


def lite_folder_locked(path: Path) -> bool:
    """True when another process holds Milvus Lite's lock on ``path``."""
    lock = path / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _reason(target: Target, e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    return target.scrub(" ".join(str(msg).split()))[:300]


_UNREACHABLE = ("unavailable", "failed to connect", "deadline exceeded", "connection refused")


def _unreachable(e: BaseException) -> bool:
    from pymilvus.exceptions import MilvusUnavailableException

    text = str(e).lower()
    return isinstance(e, MilvusUnavailableException) or any(w in text for w in _UNREACHABLE)


@contextlib.contextmanager
def calls(target: Target, what: str) -> Iterator[None]:
    """Milvus failures inside become one-line errors: unreachable → MilvusUnavailable,
    anything else (a missing collection, unreadable data) → IndexCorrupt naming ``what``."""
    try:
        yield
    except IndexProblem:
        raise
    except Exception as e:
        from pymilvus.exceptions import MilvusException

        if not isinstance(e, MilvusException) and type(e).__module__.split(".")[0] != "grpc":
            raise
        if _unreachable(e):
            forget(target)
            raise MilvusUnavailable(target.location, _reason(target, e)) from None
        raise IndexCorrupt(f"{target.location} {what}", _reason(target, e)) from None
