"""The local store: generations of FAISS + SQLite + BM25 files in one folder.

``LocalStore`` implements ``Store`` over ``generations`` (the files), ``snapshot``
(reading one), ``update`` (applying a change set) and ``verify``; ``LocalReader`` is
its ``StoreReader``: the snapshot plus the generation's BM25 index and sentence
vectors, the artifacts ``SearchArtifacts`` writes into every generation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from filelock import Timeout as LockTimeout

from ..embedding import Embedder
from ..lexical import (
    BM25_KEY_FILE,
    ChineseTokenizer,
    LexicalIndex,
    build_lexical,
    build_lexical_delta,
    load_lexical,
    read_bm25,
)
from ..sentences import (
    ChunkSentences,
    SentenceSource,
    open_sentences,
    write_hidden,
    write_sentence_vectors,
)
from ..types import Article, Chunk
from .changes import update_store
from .checksums import VerifiedFiles
from .delta import DEFAULT_MAX_FRACTION
from .errors import IndexBusy, IndexCorrupt, IndexOutdated, IndexProblem
from .faiss_index import APPROX_THRESHOLD, read_faiss
from .generations import (
    CACHE_NAME,
    DELTA_DIR,
    LOCK_NAME,
    published_generation,
    read_manifest,
)
from .snapshot import IndexSnapshot, open_index
from .store import (
    ArticleInfo,
    ChangeSet,
    PublishedState,
    Segmenter,
    StoreStats,
    UpdateReport,
    VectorSource,
)
from .update import Artifacts, Loaded, NewGeneration, apply_changes, load_previous
from .verify import local_stats, verify_index

ArtifactHook = Callable[[list[Chunk], Path, "Path | None"], None]


class LastLoaded:
    """The object last loaded from a file, handed out again while the file is the same
    (device, inode, size, mtime): the generations of a layered update hard-link their
    base's files, so a reader reloading after an update shares the base's faiss index
    and BM25 instead of reading them again. Loaded objects are only ever read."""

    def __init__(self, load: Callable[[Path], Any], key_file: str | None = None) -> None:
        self._load, self._key_file = load, key_file
        self._last: tuple[tuple[int, int, int, int], Any] | None = None
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> Any:
        try:
            st = (path / self._key_file if self._key_file else path).stat()
        except FileNotFoundError:
            return self._load(path)  # the loader says what is missing
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
        obj = self._load(path)
        with self._lock:
            self._last = (key, obj)
        return obj


class SearchArtifacts:
    """BM25 over jieba (``qa_bot.lexical``) and sentence vectors (``qa_bot.sentences``):
    what a ``LocalReader`` searches besides the faiss index."""

    supports_layers = True

    def __init__(self, user_dict_file: Path | None = None) -> None:
        self.user_dict_file = user_dict_file
        self._bm25 = LastLoaded(read_bm25, BM25_KEY_FILE)

    def write(self, gen: NewGeneration) -> None:
        if gen.hidden is not None:
            build_lexical_delta(gen.chunks, gen.dir, gen.previous_dir, gen.hidden,
                                user_dict_file=self.user_dict_file)
            write_sentence_vectors(gen.dir / DELTA_DIR, gen.chunks, self._sentences(gen), gen.dim)
            write_hidden(gen.dir / DELTA_DIR, sorted(gen.hidden))
            return
        # a full build derives the user dictionary afresh instead of growing the old one
        previous = None if gen.full else gen.previous_dir
        build_lexical(gen.chunks, gen.dir, previous, user_dict_file=self.user_dict_file)
        write_sentence_vectors(gen.dir, gen.chunks, self._sentences(gen), gen.dim)

    @staticmethod
    def _sentences(gen: NewGeneration) -> list[ChunkSentences]:
        """Sentence vectors of the chunks: copied from the previous generation for chunks
        it has with the same text (the same float16 rows the cache would give, without
        splitting and looking up every sentence again), the rest from the source."""
        carried: dict[str, ChunkSentences] = {}
        if gen.previous_dir is not None and not gen.full and gen.same:
            try:
                same = [c.chunk_id for c in gen.chunks if c.chunk_id in gen.same]
                carried = open_sentences(gen.previous_dir).get(same)
            except (OSError, ValueError, KeyError):
                carried = {}  # unusable: every sentence from the cache
        fresh = [c for c in gen.chunks if c.chunk_id not in carried]
        made = dict(zip((c.chunk_id for c in fresh), gen.vectors.sentence_vectors(fresh), strict=True))
        return [carried[c.chunk_id] if c.chunk_id in carried else made[c.chunk_id] for c in gen.chunks]

    def load(self, gen_dir: Path) -> tuple[LexicalIndex | None, SentenceSource | None]:
        lexical = load_lexical(gen_dir, user_dict_file=self.user_dict_file, load_bm25=self._bm25)
        return lexical, open_sentences(gen_dir)


class HookArtifacts:
    """Artifacts written by a plain function ``hook(chunks, gen_dir, previous_gen_dir)``
    (tests, tools); a reader finds nothing of them to search."""

    supports_layers = False  # the hook writes a whole generation's files

    def __init__(self, hook: ArtifactHook) -> None:
        self.hook = hook

    def write(self, gen: NewGeneration) -> None:
        self.hook(gen.chunks, gen.dir, gen.previous_dir)

    def load(self, gen_dir: Path) -> tuple[LexicalIndex | None, SentenceSource | None]:
        return None, None


class LocalReader:
    """``StoreReader`` of one local generation (see ``IndexSnapshot`` for why it keeps
    answering after the generation's files are deleted)."""

    def __init__(
        self, snapshot: IndexSnapshot, lexical: LexicalIndex | None, sentences: SentenceSource | None
    ) -> None:
        self.snapshot, self._lexical, self._sentences = snapshot, lexical, sentences
        self._tokenizer: Segmenter = lexical.tokenizer if lexical is not None else ChineseTokenizer()

    @property
    def version(self) -> str:
        return self.snapshot.generation

    @property
    def layout_version(self) -> str:
        return self.snapshot.manifest.chunker_version

    @property
    def chunk_count(self) -> int:
        return len(self.snapshot)

    @property
    def tokenizer(self) -> Segmenter:
        return self._tokenizer

    @property
    def lexical_index(self) -> LexicalIndex | None:
        return self._lexical

    def dense_search(self, qvecs: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        return self.snapshot.search(qvecs, k)

    def lexical_search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        if self._lexical is None:
            return []
        top = self._lexical.top(query, k)
        chunks = self.snapshot.chunks_by_ids([cid for cid, _ in top])
        return [(chunks[cid], s) for cid, s in top if cid in chunks]

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, ChunkSentences]:
        return self._sentences.get(chunk_ids) if self._sentences is not None else {}

    def chunks_by_ids(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        return self.snapshot.chunks_by_ids(chunk_ids)

    def articles(self) -> list[ArticleInfo]:
        return self.snapshot.articles()

    def all_chunks(self) -> list[Chunk]:
        return self.snapshot.all_chunks()

    def latest_articles(self, n: int) -> list[ArticleInfo]:
        return self.snapshot.latest_articles(n)

    def close(self) -> None:
        self.snapshot.close()

    def __enter__(self) -> LocalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalStore:
    """``Store`` over one index folder (layout: ``qa_bot.index.generations``)."""

    kind = "local"

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        *,
        artifacts: Artifacts | None = None,
        approx_threshold: int = APPROX_THRESHOLD,
        max_delta_fraction: float = DEFAULT_MAX_FRACTION,
        verified_files: Path | None = None,
    ) -> None:
        """``verified_files``: where checksums checked by one process are remembered for
        the next (``VerifiedFiles``); None hashes every file once per process."""
        self.index_dir = Path(index_dir)
        self.artifacts = artifacts
        self.approx_threshold = approx_threshold
        self.max_delta_fraction = max_delta_fraction
        self._verified = VerifiedFiles(verified_files)
        self._faiss = LastLoaded(read_faiss)
        self._lock: FileLock | None = None
        # what current_state() read, reused by apply() under the same lock: checking
        # every file's sha256 twice would double the cost of a large update
        self._loaded: Loaded | None = None

    @property
    def location(self) -> str:
        return str(self.index_dir)

    def published_version(self) -> str | None:
        return published_generation(self.index_dir)

    def open_reader(
        self, *, model: str | None = None, dim: int | None = None, layout_version: str | None = None
    ) -> LocalReader:
        snapshot = open_index(self.index_dir, model=model, dim=dim, memo=self._verified, load_faiss=self._faiss)
        self._verified.save()
        try:
            if layout_version is not None and snapshot.manifest.chunker_version != layout_version:
                raise IndexOutdated(self.index_dir)
            lexical, sentences = self.artifacts.load(snapshot.dir) if self.artifacts else (None, None)
        except (OSError, ValueError, KeyError) as e:
            snapshot.close()
            # checksums passed, so this is a layout problem, not a damaged file
            raise IndexCorrupt(snapshot.dir, str(e)) from e
        except BaseException:
            snapshot.close()
            raise
        return LocalReader(snapshot, lexical, sentences)

    @contextmanager
    def writer_lock(self, timeout: float) -> Iterator[None]:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.index_dir / LOCK_NAME
        if self._lock is None:
            self._lock = FileLock(str(lock_path))
        try:
            self._lock.acquire(timeout=timeout)
        except LockTimeout:
            raise IndexBusy(lock_path, timeout) from None
        try:
            yield
        finally:
            self._lock.release()
            if not self._lock.is_locked:
                self._loaded = None

    def current_state(self) -> PublishedState:
        self._loaded = load_previous(self.index_dir, self._verified)
        return self._loaded.state()

    def _published(self) -> Loaded:
        """The published generation as loaded for this update (re-read if it changed)."""
        cached = self._loaded
        if cached is not None and cached.previous is not None:
            try:
                if read_manifest(self.index_dir).generation == cached.previous.manifest.generation:
                    return cached
            except IndexProblem:  # unreadable now: load_previous says why
                pass
        return load_previous(self.index_dir, self._verified)

    def apply(
        self,
        changes: ChangeSet,
        vectors: VectorSource,
        *,
        allow_shrink: bool = False,
        max_shrink_fraction: float = 0.5,
        lock_timeout: float = 600,
    ) -> UpdateReport:
        with self.writer_lock(lock_timeout):
            loaded = self._published()
            self._loaded = None
            return apply_changes(
                self.index_dir,
                loaded,
                changes,
                vectors,
                artifacts=self.artifacts,
                approx_threshold=self.approx_threshold,
                shrink_guard=(allow_shrink, max_shrink_fraction),
                max_delta_fraction=self.max_delta_fraction,
            )

    def vector_cache_path(self) -> Path:
        return self.index_dir / CACHE_NAME

    def stats(self) -> StoreStats:
        return local_stats(self.index_dir)

    def verify(self) -> list[str]:
        return verify_index(self.index_dir)


def update_index(
    index_dir: str | os.PathLike[str],
    articles: Sequence[Article],
    chunks: Sequence[Chunk],
    embedder: Embedder,
    *,
    full: bool = False,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    artifacts: ArtifactHook | None = None,
    lock_timeout: float = 600,
    batch_size: int = 32,
    approx_threshold: int = APPROX_THRESHOLD,
    chunker_version: str = "",
    allow_shrink: bool = False,
    max_shrink_fraction: float = 0.5,
) -> UpdateReport:
    """``update_store`` on a ``LocalStore`` of ``index_dir`` whose generations hold only
    meta.sqlite, vectors.faiss and what ``artifacts(chunks_in_order, new_gen_dir,
    previous_gen_dir)`` writes (checksummed with the rest)."""
    store = LocalStore(
        index_dir,
        artifacts=HookArtifacts(artifacts) if artifacts is not None else None,
        approx_threshold=approx_threshold,
    )
    return update_store(
        store,
        articles,
        chunks,
        embedder,
        full=full,
        use_cache=use_cache,
        progress=progress,
        lock_timeout=lock_timeout,
        batch_size=batch_size,
        layout_version=chunker_version,
        allow_shrink=allow_shrink,
        max_shrink_fraction=max_shrink_fraction,
    )
