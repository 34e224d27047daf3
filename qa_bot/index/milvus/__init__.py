"""The Milvus store (``QA_BOT_STORE=milvus``): the index in Milvus collections, on
Milvus Lite (a ``.db`` folder, embedded) or a Milvus server or cluster.

``_schema`` lays out the collections and the versioning, ``_store`` writes and
publishes, ``_reader`` answers from one version, ``_lock`` keeps writers apart,
``_conn`` connects and turns Milvus failures into one-line ``IndexProblem`` errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._conn import MilvusLiteBusy, MilvusUnavailable
from ._reader import MilvusReader
from ._store import MilvusStore

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["MilvusLiteBusy", "MilvusReader", "MilvusStore", "MilvusUnavailable", "milvus_store"]


def milvus_store(settings: Settings) -> MilvusStore:
    """The store the settings name (``QA_BOT_MILVUS_*``; default ``milvus.db`` in the index folder)."""
    from .. import CACHE_NAME

    uri = settings.milvus_uri or str(settings.index_dir / "milvus.db")
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    return MilvusStore(
        uri, token=token, prefix=settings.milvus_prefix,
        # the local store's cache file: switching stores embeds nothing again
        cache_path=settings.index_dir / CACHE_NAME,
    )
