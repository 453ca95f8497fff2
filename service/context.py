"""One object per process that owns the clients: store, embedder, keyword index, LLM, and
the engine built on them.

Everything is created on first use, so a command that only lists articles never loads
the embedding model, and tests can swap any part.
"""

from __future__ import annotations

import threading
from functools import cached_property

import httpx

from service.engines.extractive.engine import ExtractiveEngine
from service.engines.extractive.vectors import SentenceEmbedder, VectorCache
from service.engines.fallback import FallbackEngine
from service.engines.llm import LLMEngine
from service.engines.protocol import Engine
from service.llm import LLMClient
from service.settings import Settings
from vectorstore.embed import Embedder, make_embedder
from vectorstore.indexer import Indexer
from vectorstore.keyword import KeywordIndex
from vectorstore.retrieve import Retriever
from vectorstore.store import ChromaStore

EMBEDDING_DIMENSIONS = {
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "openai/text-embedding-3-small": 1536,
    "openai/text-embedding-3-large": 3072,
    "openai/text-embedding-ada-002": 1536,
}


def embedding_model_id(settings: Settings) -> str:
    if settings.embedding_provider == "openai":
        return f"openai/{settings.openai_embedding_model}"
    return "sentence-transformers/all-MiniLM-L6-v2"


class Newsdesk:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        llm_http_client: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._llm_http_client = llm_http_client

    @cached_property
    def llm(self) -> LLMClient | None:
        """The configured OpenAI-compatible endpoint, or None: the extractive engine answers."""
        if not self.settings.llm_configured:
            return None
        return LLMClient(self.settings, http_client=self._llm_http_client)

    def embedder(self) -> Embedder:
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = make_embedder(self.settings.embedding_config())
            return self._embedder

    @cached_property
    def sentence_vectors(self) -> VectorCache:
        return VectorCache()

    @cached_property
    def engine(self) -> Engine:
        """The LLM with the extractive engine behind it, or the extractive engine alone when
        no LLM is configured."""
        extractive = ExtractiveEngine(SentenceEmbedder(self.embedder, self.sentence_vectors))
        if self.llm is None:
            return extractive
        return FallbackEngine(LLMEngine(self.llm, self.settings), extractive, self.settings)

    @cached_property
    def store(self) -> ChromaStore:
        model = embedding_model_id(self.settings)
        return ChromaStore(self.settings.store_config(), model, EMBEDDING_DIMENSIONS.get(model, 0))

    @cached_property
    def keyword(self) -> KeywordIndex:
        return KeywordIndex(self.store, self.settings.keyword_config())

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.embedder, self.keyword, self.settings.retrieval_config())

    @cached_property
    def indexer(self) -> Indexer:
        return Indexer(self.store, self.embedder, self.settings.chunking_config())
