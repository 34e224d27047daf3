"""The index: the ``Store`` interface the service, retrieval, CLI and bot use
(``store``), the update every store shares (``changes``, ``vectors``), and the local
store (``local``: generations of FAISS + SQLite + BM25 files in one folder).

Files of the local store: ``generations`` (layout, manifest, clean-up), ``checksums``
(which files differ from the manifest, remembered checks), ``snapshot``
(reading one generation), ``faiss_index`` (exact or IVF search, patch or rebuild),
``update`` and ``publish`` (applying a change set), ``verify`` (checks and stats).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .changes import KnownUnchanged, article_signature, update_store
from .errors import (
    BUILD_HINT,
    IndexBusy,
    IndexCorrupt,
    IndexMissing,
    IndexOutdated,
    IndexProblem,
    ModelMismatch,
    ShrinkRefused,
    StaleChanges,
    StorageProblem,
    StoreUnavailable,
)
from .faiss_index import APPROX_THRESHOLD
from .generations import (
    CACHE_NAME,
    FORMAT_VERSION,
    LOCK_NAME,
    MANIFEST_NAME,
    META_NAME,
    VECTORS_NAME,
    VERIFIED_FILES_NAME,
    published_generation,
)
from .local import LocalReader, LocalStore, SearchArtifacts, update_index
from .publish import date_key
from .snapshot import IndexSnapshot, open_index
from .store import (
    ArticleData,
    ArticleInfo,
    ChangeSet,
    ChunkSentences,
    PublishedState,
    Segmenter,
    Store,
    StoreKind,
    StoreReader,
    StoreStats,
    UpdateReport,
    VectorSource,
)
from .vectors import CachedVectors, VectorCache, remove_damaged_caches
from .verify import index_stats, verify_index

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "APPROX_THRESHOLD",
    "ArticleData",
    "ArticleInfo",
    "BUILD_HINT",
    "CACHE_NAME",
    "CachedVectors",
    "ChangeSet",
    "ChunkSentences",
    "FORMAT_VERSION",
    "IndexBusy",
    "IndexCorrupt",
    "IndexMissing",
    "IndexOutdated",
    "IndexProblem",
    "IndexSnapshot",
    "KnownUnchanged",
    "LOCK_NAME",
    "LocalReader",
    "LocalStore",
    "MANIFEST_NAME",
    "META_NAME",
    "ModelMismatch",
    "PublishedState",
    "SearchArtifacts",
    "Segmenter",
    "ShrinkRefused",
    "StaleChanges",
    "StorageProblem",
    "Store",
    "StoreKind",
    "StoreReader",
    "StoreStats",
    "StoreUnavailable",
    "UpdateReport",
    "VECTORS_NAME",
    "VectorCache",
    "VectorSource",
    "article_signature",
    "date_key",
    "index_stats",
    "open_index",
    "open_store",
    "published_generation",
    "remove_damaged_caches",
    "update_index",
    "update_store",
    "verify_index",
]


def open_store(settings: Settings) -> Store:
    """The store ``settings.store`` names (``QA_BOT_STORE``): ``local`` (the default),
    over ``settings.index_dir``, or ``milvus`` (``qa_bot.index.milvus.milvus_store``,
    imported only when chosen: pymilvus is heavy). Opens nothing yet."""
    if settings.store == "local":
        return LocalStore(
            settings.index_dir,
            artifacts=SearchArtifacts(settings.user_dict),
            max_delta_fraction=settings.max_delta_fraction,
            verified_files=settings.cache_dir / VERIFIED_FILES_NAME,
        )
    if settings.store == "milvus":
        try:
            from . import milvus
        except ModuleNotFoundError as e:
            if e.name not in (f"{__name__}.milvus", "pymilvus", "milvus_lite"):
                raise
            raise StoreUnavailable(
                f"QA_BOT_STORE=milvus: the Milvus store is not available in this installation "
                f"({e.name} is missing); use QA_BOT_STORE=local"
            ) from None
        return milvus.milvus_store(settings)
    raise StoreUnavailable(f"unknown store {settings.store!r}: QA_BOT_STORE must be local or milvus")
