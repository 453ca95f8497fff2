"""All configuration in one place, read from ``NEWSDESK_*`` environment variables.

The fields stay flat so every variable keeps its name (``NEWSDESK_DATA_DIR``, ...); each
carries a group and a description, which ``service/settings_doc.py`` turns into the
README's settings table. The storage layer never reads this class: it gets the small
config objects built at the bottom, so its constructors need no defaults of their own.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vectorstore import stories, syndication
from vectorstore.config import (
    ChunkingConfig,
    EmbeddingConfig,
    KeywordConfig,
    LocalEmbeddingConfig,
    OpenAIEmbeddingConfig,
    RetrievalConfig,
    StoreConfig,
    StoryConfig,
)
from vectorstore.sources.config import FetchConfig, SourcesConfig, parse_interval

Group = Literal[
    "storage",
    "embeddings",
    "chunking",
    "retrieval",
    "llm",
    "api",
    "slack",
    "sources",
    "reader",
    "queue",
    "stories",
]
# Table headings, in the order the groups are documented.
GROUP_TITLES: dict[Group, str] = {
    "storage": "Storage",
    "embeddings": "Embeddings",
    "chunking": "Chunking",
    "retrieval": "Retrieval",
    "llm": "LLM (OpenAI-compatible)",
    "api": "HTTP API",
    "slack": "Slack",
    "sources": "Sources (feeds, sitemaps, pages)",
    "reader": "Reader pages and signed citation links",
    "queue": "Workers and queue (with NEWSDESK_REDIS_URL)",
    "stories": "Stories (clustering articles into events)",
}


def _setting(
    default: Any = PydanticUndefined, *, group: Group, description: str, **kwargs: Any
) -> Any:
    """A field that says what it does and which README table group it belongs to."""
    return Field(default, description=description, json_schema_extra={"group": group}, **kwargs)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSDESK_", env_file=".env", extra="ignore", frozen=False
    )

    # ---- storage ----------------------------------------------------------------------
    data_dir: Path = _setting(
        Path("./data"),
        group="storage",
        description="Everything the service writes: the embedded Chroma store, the keyword "
        "index and the ONNX export of the model.",
    )
    chroma_host: str | None = _setting(
        None,
        group="storage",
        description="A Chroma server (`chroma run`) to use instead of the embedded store; "
        "needed for more than one API worker or replica.",
    )
    chroma_port: int = _setting(
        8000, group="storage", description="Port of the Chroma server at `NEWSDESK_CHROMA_HOST`."
    )
    collection_prefix: str = _setting(
        "newsdesk",
        group="storage",
        description="Start of the Chroma collection names, so several stores can share a "
        "Chroma server.",
    )
    # Chunks that no article record refers to are either a crash's leftovers or another
    # writer's work in flight (written before its record switch). A writer refuses to
    # switch a record to chunks older than half the lease, so repair can never delete
    # chunks that are about to become visible.
    repair_lease_seconds: float = _setting(
        900.0,
        group="storage",
        description="Repair only deletes unreferenced chunks older than this; 0 turns the "
        "lease off, which is safe only with a single writer.",
    )
    # Repair scans every chunk's metadata, so it must not run on every ingest.
    repair_interval_seconds: float = _setting(
        300.0,
        group="storage",
        description="Repair runs on a process's first write, then at most this often.",
    )
    # On a full disk Chroma can block inside a write while holding the GIL, which freezes
    # the whole process; refusing the write first keeps the service answering.
    min_free_disk_mb: int = _setting(
        64,
        group="storage",
        description="Writes to the embedded store are refused, with a clear error, while less "
        "than this much disk (plus the write's estimated size) is free.",
    )
    syndication_min_jaccard: float = _setting(
        syndication.MIN_JACCARD,
        group="storage",
        description="Two articles whose word shingles overlap at least this much (estimated "
        "Jaccard, MinHash) are copies of one story: counted once in summaries, briefings and "
        "the source balance. 1.0 turns grouping off for all but identical texts.",
        ge=0.0,
        le=1.0,
    )

    # ---- embeddings -------------------------------------------------------------------
    embedding_provider: Literal["local", "openai"] = _setting(
        "local",
        group="embeddings",
        description="`local` (all-MiniLM-L6-v2 on the CPU) or `openai` (the embeddings API "
        "of the LLM endpoint). A store records its model and refuses another.",
    )
    openai_embedding_model: str = _setting(
        "text-embedding-3-small",
        group="embeddings",
        description="The embedding model when the provider is `openai`.",
    )
    # bench/ingestion.py: batch 8 embedded ~1.15x faster than 32 here, identical vectors.
    embedding_batch_size: int = _setting(
        8, group="embeddings", description="Texts per call of the local model."
    )
    embedding_threads: int = _setting(
        1,
        group="embeddings",
        description="Threads per local embedding call; on 2 cores, two torch threads made a "
        "query 25x slower.",
    )
    # onnx embeds a question in 11-26 ms where torch takes 25-44 ms, same vectors
    # (bench/results/ingestion.json); torch stays selectable.
    embedding_backend: Literal["onnx", "torch"] = _setting(
        "onnx",
        group="embeddings",
        description="`onnx` (ONNX Runtime) or `torch` (sentence-transformers) runs the local "
        "model; both give the same vectors.",
    )
    model_dir: Path | None = _setting(
        None,
        group="embeddings",
        description="Where the ONNX export of the model is kept; unset: `<data dir>/models`.",
    )

    # ---- chunking: cl100k tokens --------------------------------------------------------
    # all-MiniLM-L6-v2 reads 256 word pieces; word pieces run up to ~1.3x cl100k tokens on
    # news text, so 180 keeps every chunk whole.
    chunk_tokens: int = _setting(
        180, group="chunking", description="Most cl100k tokens in one chunk of an article."
    )
    chunk_overlap_sentences: int = _setting(
        1,
        group="chunking",
        description="Sentences a chunk repeats from the one before it, so a fact on a "
        "boundary is found from either side.",
    )

    # ---- retrieval --------------------------------------------------------------------
    top_k: int = _setting(
        8,
        group="retrieval",
        description="Passages per answer when the request does not set a number.",
    )
    candidates: int = _setting(
        40,
        group="retrieval",
        description="Chunks each ranking (dense, keyword) fetches before fusion; at least 3x "
        "the passages asked for.",
    )
    max_chunks_per_article: int = _setting(
        3,
        group="retrieval",
        description="Most passages one article may give, unless no other article can fill "
        "the list.",
    )
    # Chosen on the MultiHop-RAG dev queries (bench/results/retrieval.json): k=10 and
    # dense weighted 1.5x beat the textbook k=60 with equal weights.
    rrf_k: int = _setting(
        10,
        group="retrieval",
        description="k of reciprocal rank fusion: lower lets the top ranks count for more.",
    )
    dense_weight: float = _setting(
        1.5,
        group="retrieval",
        description="Weight of the dense ranking in the fusion; the keyword ranking has 1.",
    )
    index_check_seconds: float = _setting(
        1.0,
        group="retrieval",
        description="How often the keyword index applies the store's change log (other "
        "writers' changes), in the background; 0: before every search, synchronously.",
    )
    keyword_log_overlap_seconds: float = _setting(
        60.0,
        group="retrieval",
        ge=0,
        description="How far back the keyword index re-reads the change log each time, for "
        "entries that commit late; more than writers' clock skew.",
    )
    keyword_log_retention_seconds: float = _setting(
        86400.0,
        group="retrieval",
        gt=0,
        description="How long change-log entries are kept; a replica further behind rebuilds "
        "its keyword index from the store.",
    )
    keyword_reconcile_seconds: float = _setting(
        900.0,
        group="retrieval",
        gt=0,
        description="How often the keyword index also compares its articles with the store's "
        "(heals a write that died before logging).",
    )

    # ---- LLM (OpenAI-compatible). No base URL and no key: the extractive engine answers.
    llm_base_url: str | None = _setting(
        None, group="llm", description="The OpenAI-compatible endpoint; unset: OpenAI's."
    )
    llm_api_key: SecretStr | None = _setting(
        None, group="llm", description="Its API key; `OPENAI_API_KEY` is read when unset."
    )
    llm_model: str = _setting("gpt-4o-mini", group="llm", description="The chat model.")
    llm_timeout_seconds: float = _setting(
        30.0, group="llm", description="Seconds one LLM request may take before it is retried."
    )
    llm_max_retries: int = _setting(
        2, group="llm", description="Retries of a failed LLM (or OpenAI embeddings) call."
    )
    llm_context_window: int = _setting(
        16000,
        group="llm",
        description="Prompt plus answer never exceed it; the most relevant passages win.",
    )
    llm_max_output_tokens: int = _setting(
        1200, group="llm", description="Most tokens the LLM may write in one reply."
    )
    llm_fallback: Literal["none", "extractive"] = _setting(
        "extractive",
        group="llm",
        description="What answers when the LLM fails: `extractive` (the extractive engine) or "
        "`none` (the error).",
    )
    llm_prompt_cost_per_1k: float = _setting(
        0.00015, group="llm", description="USD per 1,000 prompt tokens, for the cost estimate."
    )
    llm_completion_cost_per_1k: float = _setting(
        0.0006, group="llm", description="USD per 1,000 completion tokens, for the cost estimate."
    )
    llm_structured_output: bool = _setting(
        True,
        group="llm",
        description="Ask for JSON output (`response_format`); turned off by itself when the "
        "server refuses it.",
    )

    # ---- HTTP API ---------------------------------------------------------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = _setting(
        group="api",
        default_factory=list,
        description="Comma-separated keys the API accepts (`key1,key2`); unset: no key needed.",
    )
    rate_limit: str = _setting(
        "120/minute", group="api", description="Requests per caller, in the `limits` notation."
    )
    max_body_bytes: int = _setting(
        8_000_000, group="api", description="Largest request body accepted."
    )
    # Unbounded headers let four 100 MB requests stall every other request for 30 s.
    max_header_bytes: int = _setting(
        65_536,
        group="api",
        ge=1024,
        description="Largest request line plus headers, enforced by uvicorn before the app runs.",
    )
    # Without a limit a key can be guessed at network speed.
    auth_failure_limit: str = _setting(
        "20/minute",
        group="api",
        description="Failed API-key checks per client address; past it every request from "
        "that address gets 429.",
    )
    # Embedding an 8 MB article takes minutes, so it must not cost the same as a question.
    rate_limit_bytes_per_hit: int = _setting(
        100_000,
        group="api",
        ge=1,
        description="An uploaded article costs one rate-limit hit per started block of this "
        "many bytes.",
    )
    cors_origins: Annotated[list[str], NoDecode] = _setting(
        group="api",
        default_factory=list,
        description="Comma-separated origins allowed by CORS; unset: CORS is off.",
    )
    public_url: str | None = _setting(
        None,
        group="api",
        description="The service's public address, for signed citation links (Slack sources, "
        "API `citations[].url`; unset, the API uses the address each request came to).",
    )
    # Finished bulk-ingest jobs keep a small state file each, so a client can still read
    # its result after a restart; this bounds how many pile up.
    job_retention_hours: float = _setting(
        168.0,
        group="api",
        ge=0,
        description="How long a finished bulk-ingest job (`POST /v1/jobs`) can "
        "still be read at `/v1/jobs/{id}`.",
    )

    # ---- Sources: feeds, sitemaps and pages followed by `newsdesk watch` ---------------
    sources_every: str = _setting(
        "15m",
        group="sources",
        description="How often a source is polled unless `sources add --every` says "
        "otherwise (`90s`, `15m`, `2h`, `1d`).",
    )
    sources_user_agent: str = _setting(
        "NewsdeskBot/0.1",
        group="sources",
        description="The User-Agent sent with every fetch, and the name robots.txt rules are "
        "matched against.",
    )
    sources_connect_timeout: float = _setting(
        5.0, group="sources", gt=0, description="Seconds to connect to a source's server."
    )
    sources_read_timeout: float = _setting(
        15.0, group="sources", gt=0, description="Seconds to wait for any bytes of a response."
    )
    # A read timeout alone lets a server that sends a byte every few seconds hold a poller.
    sources_total_timeout: float = _setting(
        30.0,
        group="sources",
        gt=0,
        description="Seconds one fetch may take from request to last byte; a slower "
        "response is abandoned.",
    )
    sources_max_bytes: int = _setting(
        5_000_000,
        group="sources",
        gt=0,
        description="Largest page or feed read (after decompression); a larger body is "
        "abandoned at that size, never read whole.",
    )
    sources_max_redirects: int = _setting(
        5, group="sources", ge=0, description="Redirects followed per fetch; loops are refused."
    )
    sources_host_interval: float = _setting(
        1.0,
        group="sources",
        ge=0,
        description="Seconds between two requests to one host from one poller process.",
    )
    sources_host_concurrency: int = _setting(
        2,
        group="sources",
        ge=1,
        description="Requests one poller process sends to one host at the same time.",
    )
    sources_respect_robots: bool = _setting(
        True,
        group="sources",
        description="Honour robots.txt (read with Protego, kept for an hour per host).",
    )
    sources_allow_private: bool = _setting(
        False,
        group="sources",
        description="Fetch from loopback, private and link-local addresses (a feed on your "
        "own network); off, so API callers cannot make the server read its own network.",
    )
    sources_lease_seconds: float = _setting(
        300.0,
        group="sources",
        gt=0,
        description="How long a poller holds a source without renewing; after a poller "
        "dies, another takes the source up this much later.",
    )
    sources_max_backoff_seconds: float = _setting(
        6 * 3600.0,
        group="sources",
        gt=0,
        description="Longest wait before retrying a failing source (the interval doubles "
        "after each failure up to this).",
    )
    sources_max_items: int = _setting(
        500,
        group="sources",
        ge=1,
        description="Entries read from one feed or sitemap per poll, first ones first.",
    )
    # SQLite's leases need a filesystem with working locks; machines without a shared one
    # share a Redis instead (SET NX PX leases).
    redis_url: str | None = _setting(
        None,
        group="sources",
        description="A Redis (`redis://host:6379/0`) holding the sources, their per-item "
        "state and their leases, so `watch` processes on several machines share the work; "
        "unset, they are kept in SQLite in the data dir (one machine).",
    )

    # ---- Reader pages and signed citation links (service/web/) -------------------------
    link_secret: SecretStr | None = _setting(
        None,
        group="reader",
        description="Key that signs citation links (`/read/...?sig=`) and page sessions. "
        "Unset: a random one is made once and kept in `<data dir>/link-secret` (mode 0600). "
        "Set it, the same on every replica, when several machines serve the pages.",
    )
    link_lifetime_hours: float = _setting(
        24.0 * 30,
        group="reader",
        gt=0,
        description="How long a signed citation link (API `citations[].url`, Slack "
        "sources) opens its article without an API key.",
    )
    # Replicas' clocks disagree by a little; a link signed on one may be checked on another.
    link_clock_skew_seconds: float = _setting(
        300.0,
        group="reader",
        ge=0,
        description="How long past its expiry a signed link is still accepted, for clocks "
        "that disagree.",
    )
    session_lifetime_hours: float = _setting(
        12.0,
        group="reader",
        gt=0,
        description="How long a page login (an API key exchanged for a session cookie) lasts.",
    )

    # ---- Workers and queue: bulk jobs and feed polls on RQ (service/ingest_queue.py) ----
    # A worker killed mid-job stops renewing its claim; RQ's registry cleanup, run by the
    # other workers, then requeues the job. The two together bound how long that takes.
    queue_job_lease_seconds: int = _setting(
        30,
        group="queue",
        ge=3,
        description="How long a worker's claim on a running job lasts unrenewed (it renews "
        "a third of the way through); a job whose worker died runs again after this.",
    )
    queue_maintenance_seconds: int = _setting(
        10,
        group="queue",
        ge=1,
        description="How often an idle worker looks for jobs left by dead workers (RQ's "
        "registry cleanup) and requeues them.",
    )
    queue_job_retries: int = _setting(
        3,
        group="queue",
        ge=0,
        description="Times a job runs again after its worker died or it failed unexpectedly.",
    )

    # ---- Slack ------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = _setting(
        None, group="slack", description="The bot token (`xoxb-...`)."
    )
    slack_signing_secret: SecretStr | None = _setting(
        None, group="slack", description="Verifies Slack's requests to the HTTP endpoints."
    )
    slack_app_token: SecretStr | None = _setting(
        None, group="slack", description="The app token (`xapp-...`) for Socket Mode."
    )
    slack_ephemeral: bool = _setting(
        False, group="slack", description="`/ask` answers only the asker."
    )
    slack_api_url: str = _setting(
        "https://slack.com/api/",
        group="slack",
        description=(
            "Base URL of Slack's Web API, for the bot's calls and for opening Socket Mode "
            "connections: another one for GovSlack or a local stand-in."
        ),
    )

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

    def sources_config(self) -> SourcesConfig:
        return SourcesConfig(
            registry_path=self.data_dir / "sources.sqlite3",
            default_every_seconds=parse_interval(self.sources_every),
            lease_seconds=self.sources_lease_seconds,
            max_backoff_seconds=self.sources_max_backoff_seconds,
            max_items_per_poll=self.sources_max_items,
            fetch=FetchConfig(
                user_agent=self.sources_user_agent,
                connect_timeout=self.sources_connect_timeout,
                read_timeout=self.sources_read_timeout,
                total_timeout=self.sources_total_timeout,
                max_bytes=self.sources_max_bytes,
                max_redirects=self.sources_max_redirects,
                host_interval=self.sources_host_interval,
                host_concurrency=self.sources_host_concurrency,
                respect_robots=self.sources_respect_robots,
                robots_cache_seconds=3600.0,
                allow_private=self.sources_allow_private,
            ),
            redis_url=self.redis_url,
            redis_prefix=f"{self.collection_prefix}:sources:",
        )

    # ---- Stories: online clustering of articles into events (vectorstore/stories.py) --
    story_window_hours: float = _setting(
        stories.WINDOW_HOURS,
        group="stories",
        gt=0,
        description="An article joins only stories with a member published within this "
        "many hours of it (undated articles: of when they were first stored); the same "
        "subject later is a new story.",
    )
    story_join_threshold: float = _setting(
        stories.JOIN_THRESHOLD,
        group="stories",
        description="Score (cosine of the two articles' closest chunks plus the term weight "
        "times the cosine of their key terms) from which an article joins a story: it must "
        "reach it with each of the story's best-fitting members (see story links); else it "
        "starts one. Chosen by cross-validation (bench/stories.py).",
    )
    story_merge_threshold: float = _setting(
        stories.MERGE_THRESHOLD,
        group="stories",
        description="Score with which an article linking a second story merges the two "
        "(the older id is kept, the other becomes an alias).",
    )
    story_term_weight: float = _setting(
        stories.TERM_WEIGHT,
        group="stories",
        ge=0,
        description="Weight of shared key terms (the lead's words weighted by their rarity "
        "in English: names, places, specific terms) next to the cosine in the story score.",
    )
    story_neighbours: int = _setting(
        stories.NEIGHBOURS,
        group="stories",
        ge=1,
        le=200,
        description="Nearest stored articles (within the window) an article is compared "
        "with when it is assigned.",
    )
    story_min_chars: int = _setting(
        stories.MIN_CHARS,
        group="stories",
        ge=0,
        description="An article shorter than this (an embedded tweet, an error page) is a "
        "story of its own: too little text to tell which event it reports.",
    )
    story_links: int = _setting(
        stories.LINKS,
        group="stories",
        ge=1,
        le=50,
        description="How many of a story's best-fitting members an article must reach the "
        "join threshold with (every member of a smaller story). 1 is single link: an "
        "article resembling one member of another event on the same subject joins it.",
    )

    # ---- what the storage layer gets (vectorstore/config.py) ------------------------

    def store_config(self) -> StoreConfig:
        return StoreConfig(
            chroma_dir=self.chroma_dir,
            chroma_host=self.chroma_host,
            chroma_port=self.chroma_port,
            collection_prefix=self.collection_prefix,
            repair_lease_seconds=self.repair_lease_seconds,
            repair_interval_seconds=self.repair_interval_seconds,
            min_free_disk_mb=self.min_free_disk_mb,
            syndication_min_jaccard=self.syndication_min_jaccard,
            stories=StoryConfig(
                window_hours=self.story_window_hours,
                join_threshold=self.story_join_threshold,
                merge_threshold=self.story_merge_threshold,
                term_weight=self.story_term_weight,
                neighbours=self.story_neighbours,
                min_chars=self.story_min_chars,
                links=self.story_links,
            ),
        )

    def embedding_config(self) -> EmbeddingConfig:
        if self.embedding_provider == "openai":
            # The embeddings API of the LLM endpoint, with the LLM's key and patience.
            return OpenAIEmbeddingConfig(
                model=self.openai_embedding_model,
                base_url=self.llm_base_url,
                api_key=self.llm_key,
                timeout_seconds=self.llm_timeout_seconds,
                max_retries=self.llm_max_retries,
            )
        return LocalEmbeddingConfig(
            batch_size=self.embedding_batch_size,
            threads=self.embedding_threads,
            backend=self.embedding_backend,
            cache_dir=self.model_cache_dir,
        )

    def chunking_config(self) -> ChunkingConfig:
        return ChunkingConfig(
            max_tokens=self.chunk_tokens, overlap_sentences=self.chunk_overlap_sentences
        )

    def keyword_config(self) -> KeywordConfig:
        return KeywordConfig(
            directory=self.keyword_dir,
            check_seconds=self.index_check_seconds,
            log_overlap_seconds=self.keyword_log_overlap_seconds,
            log_retention_seconds=self.keyword_log_retention_seconds,
            reconcile_seconds=self.keyword_reconcile_seconds,
        )

    def retrieval_config(self) -> RetrievalConfig:
        return RetrievalConfig(
            candidates=self.candidates,
            rrf_k=self.rrf_k,
            dense_weight=self.dense_weight,
            per_article=self.max_chunks_per_article,
        )
