"""Sentence and query vectors for the extractive engine, with a process-wide cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from service.engines.extractive.sentences import Sentence
from vectorstore.embed import Embedder

# Width of the empty array returned for no sentences: all-MiniLM-L6-v2's. Nothing reads an
# empty array's rows, so another embedder's width does not matter here.
EMPTY_WIDTH = 384
# Bounds the cache at about 77 MB of 384-d float32 vectors.
MAX_CACHED_VECTORS = 50_000

SpanKey = tuple[str, str, int, int]


class VectorCache:
    """Sentence vectors by (article, version, span), shared by every request of a process.

    The same passages come back for related questions; embedding them again is what
    dominates the extractive engine's time.
    """

    def __init__(self, max_entries: int = MAX_CACHED_VECTORS) -> None:
        self.max_entries = max_entries
        self._vectors: OrderedDict[SpanKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[SpanKey]) -> list[np.ndarray | None]:
        with self._lock:
            out: list[np.ndarray | None] = []
            for key in keys:
                vector = self._vectors.get(key)
                if vector is not None:
                    self._vectors.move_to_end(key)
                out.append(vector)
            return out

    def put_many(self, items: Sequence[tuple[SpanKey, np.ndarray]]) -> None:
        with self._lock:
            for key, vector in items:
                self._vectors[key] = vector
            while len(self._vectors) > self.max_entries:
                self._vectors.popitem(last=False)


class SentenceEmbedder:
    """Embeds sentences (through the cache) and queries."""

    def __init__(self, embedder: Callable[[], Embedder], cache: VectorCache | None = None) -> None:
        self._embedder = embedder
        self.cache = cache or VectorCache()

    def vectors(self, sentences: Sequence[Sentence]) -> np.ndarray:
        if not sentences:
            return np.zeros((0, EMPTY_WIDTH), dtype=np.float32)
        keys = [(s.article.id, s.article.content_hash, s.start, s.end) for s in sentences]
        found = self.cache.get_many(keys)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            fresh = self._embedder().embed([sentences[i].text for i in missing])
            self.cache.put_many([(keys[i], fresh[k]) for k, i in enumerate(missing)])
            for k, i in enumerate(missing):
                found[i] = fresh[k]
        return np.vstack(found)  # type: ignore[arg-type]

    def query_vector(self, text: str) -> np.ndarray:
        return self._embedder().embed([text])[0]
