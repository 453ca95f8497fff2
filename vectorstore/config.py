"""What the storage layer needs to know, handed in by whoever configures it.

None of these has defaults: the values live in one place, ``service.settings.Settings``,
which builds these objects, so a constructor here can never disagree with production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias


@dataclass(frozen=True)
class StoryConfig:
    """How written articles are grouped into stories (vectorstore/stories.py)."""

    window_hours: float
    join_threshold: float
    merge_threshold: float
    term_weight: float
    neighbours: int
    min_chars: int
    links: int


@dataclass(frozen=True)
class StoreConfig:
    """Where the Chroma collections live and how writers and repair share them."""

    chroma_dir: Path
    chroma_host: str | None
    chroma_port: int
    collection_prefix: str
    repair_lease_seconds: float
    repair_interval_seconds: float
    min_free_disk_mb: int
    syndication_min_jaccard: float
    stories: StoryConfig


@dataclass(frozen=True)
class LocalEmbeddingConfig:
    """all-MiniLM-L6-v2 on the CPU."""

    batch_size: int
    threads: int
    backend: Literal["onnx", "torch"]
    cache_dir: Path


@dataclass(frozen=True)
class OpenAIEmbeddingConfig:
    """An OpenAI-compatible embeddings endpoint."""

    model: str
    base_url: str | None
    api_key: str | None = field(repr=False)
    timeout_seconds: float
    max_retries: int


# The type says which embedder: make_embedder dispatches on it.
EmbeddingConfig: TypeAlias = LocalEmbeddingConfig | OpenAIEmbeddingConfig


@dataclass(frozen=True)
class ChunkingConfig:
    """Chunk sizes in cl100k tokens, overlap in whole sentences."""

    max_tokens: int
    overlap_sentences: int


@dataclass(frozen=True)
class KeywordConfig:
    """Where the BM25 index lives, how often it follows the store's change log, and how
    long that log is kept (vectorstore/changelog.py)."""

    directory: Path
    check_seconds: float
    log_overlap_seconds: float
    log_retention_seconds: float
    reconcile_seconds: float


@dataclass(frozen=True)
class RetrievalConfig:
    """How dense and keyword rankings are fused and diversified."""

    candidates: int
    rrf_k: int
    dense_weight: float
    per_article: int
