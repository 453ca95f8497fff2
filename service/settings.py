"""All configuration in one place, read from ``NEWSDESK_*`` environment variables."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSDESK_", env_file=".env", extra="ignore", frozen=False
    )

    # Storage
    data_dir: Path = Path("./data")
    chroma_host: str | None = None
    chroma_port: int = 8000
    collection_prefix: str = "newsdesk"
    # Chunks that no article record refers to are either a crash's leftovers or another
    # writer's work in flight (written before its record switch). Repair only removes
    # those older than this, and a writer refuses to switch a record to chunks older than
    # half of it, so repair can never delete chunks that are about to become visible.
    # 0 turns the lease off: safe only with a single writer.
    repair_lease_seconds: float = 900.0
    # Repair scans every chunk's metadata, so it runs on the first write of a process and
    # then at most this often, not on every ingest.
    repair_interval_seconds: float = 300.0
    # Writes to the embedded store stop, with a clear error, while less than this much
    # disk (plus the write's own estimated size) is free: on a full disk Chroma can block
    # inside a write while holding the GIL, which freezes the whole process.
    min_free_disk_mb: int = 64

    # Embeddings
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str = "all-MiniLM-L6-v2"
    openai_embedding_model: str = "text-embedding-3-small"
    # bench/ingestion.py: batch 8 embedded ~1.15x faster than 32 here, identical vectors.
    embedding_batch_size: int = 8
    embedding_threads: int = 1
    # onnx embeds a question in 11-26 ms where torch takes 25-44 ms, same vectors
    # (bench/results/ingestion.json); torch stays selectable.
    embedding_backend: Literal["onnx", "torch"] = "onnx"
    # Where the ONNX export of the model is kept; default: <data_dir>/models.
    model_dir: Path | None = None

    # Chunking: cl100k tokens. all-MiniLM-L6-v2 reads 256 word pieces; word pieces run
    # up to ~1.3x cl100k tokens on news text, so 180 keeps every chunk whole.
    chunk_tokens: int = 180
    chunk_overlap_sentences: int = 1

    # Retrieval
    top_k: int = 8
    candidates: int = 40
    max_chunks_per_article: int = 3
    # Chosen on the MultiHop-RAG dev queries (bench/results/retrieval.json):
    # k=10 and dense weighted 1.5x beat the textbook k=60 with equal weights.
    rrf_k: int = 10
    dense_weight: float = 1.5
    index_check_seconds: float = 2.0

    # LLM (OpenAI-compatible). No base URL and no key: the extractive engine answers.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = 30.0
    llm_max_retries: int = 2
    llm_context_window: int = 16000
    llm_max_output_tokens: int = 1200
    llm_fallback: Literal["none", "extractive"] = "extractive"
    llm_prompt_cost_per_1k: float = 0.00015
    llm_completion_cost_per_1k: float = 0.0006
    llm_structured_output: bool = True

    # HTTP API
    # Comma-separated in the environment: NEWSDESK_API_KEYS=key1,key2
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    rate_limit: str = "120/minute"
    max_body_bytes: int = 8_000_000
    # Request line plus headers, enforced by uvicorn's h11 parser before the app runs:
    # unbounded headers let four 100 MB requests stall every other request for 30 s.
    max_header_bytes: int = Field(default=65_536, ge=1024)
    # Failed API-key checks per client address: without a limit a key can be guessed at
    # network speed. Past it every request from that address gets 429, so guessing stops.
    auth_failure_limit: str = "20/minute"
    # An article costs one rate-limit hit per started block of this many bytes: embedding
    # an 8 MB article takes minutes, so it must not cost the same as one question.
    rate_limit_bytes_per_hit: int = Field(default=100_000, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    public_url: str | None = None

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_ephemeral: bool = False

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def llm_key(self) -> str | None:
        if self.llm_api_key is not None:
            return self.llm_api_key.get_secret_value()
        return os.environ.get("OPENAI_API_KEY") or None

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url or self.llm_key)

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def keyword_dir(self) -> Path:
        return self.data_dir / "keyword"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"


def get_settings() -> Settings:
    return Settings()
