"""The index: a ``Store`` (``store``) the service, retrieval, CLI and bot use, and its
local implementation, generations of FAISS + SQLite + BM25 files in one folder.

See ``store`` for the interface and ``_generations`` for the local on-disk layout.
"""

from __future__ import annotations

from ._generations import (
    APPROX_THRESHOLD,
    CACHE_NAME,
    FORMAT_VERSION,
    GEN_PREFIX,
    LOCK_NAME,
    MANIFEST_NAME,
    META_NAME,
    TMP_PREFIX,
    VECTORS_NAME,
    FaissInfo,
    FileEntry,
    IndexSnapshot,
    Manifest,
    _VectorCache,
    index_stats,
    open_index,
    published_generation,
    remove_damaged_caches,
    update_index,
    verify_index,
)
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
)
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

__all__ = [
    "APPROX_THRESHOLD",
    "ArticleData",
    "ArticleInfo",
    "BUILD_HINT",
    "CACHE_NAME",
    "ChangeSet",
    "ChunkSentences",
    "FORMAT_VERSION",
    "FaissInfo",
    "FileEntry",
    "GEN_PREFIX",
    "IndexBusy",
    "IndexCorrupt",
    "IndexMissing",
    "IndexOutdated",
    "IndexProblem",
    "IndexSnapshot",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "META_NAME",
    "Manifest",
    "ModelMismatch",
    "PublishedState",
    "Segmenter",
    "ShrinkRefused",
    "StaleChanges",
    "StorageProblem",
    "Store",
    "StoreKind",
    "StoreReader",
    "StoreStats",
    "TMP_PREFIX",
    "UpdateReport",
    "VECTORS_NAME",
    "VectorSource",
    "index_stats",
    "open_index",
    "published_generation",
    "remove_damaged_caches",
    "update_index",
    "verify_index",
]
# ``_VectorCache`` stays importable for qa_bot.sentences and bench/ until the public
# vector cache replaces it.
_ = _VectorCache
