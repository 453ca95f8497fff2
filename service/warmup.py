"""Warm-up: load the embedding model, and with it run one search (Chroma's vector index,
the keyword index), in a background thread at startup, so the first request does not pay
for them and ``/readyz`` can say when they are loaded.

Why in the background: loading the local model takes seconds (ten more when its ONNX
export is first made), and a server that blocked its startup on it could not answer
``/healthz`` meanwhile, so a supervisor would think it hung.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from service.context import Newsdesk
from vectorstore.embed import LocalEmbedder

log = logging.getLogger("newsdesk.warmup")

# Embedded once so ONNX Runtime (or torch) has run a batch before the first real question.
PROBE = "How many people fled the region?"


class Warmup:
    def __init__(self, newsdesk: Callable[[], Newsdesk]) -> None:
        self._newsdesk = newsdesk
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._state = "not started"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._set("warming up: loading the embedding model")
        self._thread = threading.Thread(target=self._run, name="warmup", daemon=True)
        self._thread.start()

    def _set(self, state: str) -> None:
        with self._lock:
            self._state = state

    def _run(self) -> None:
        started = time.perf_counter()
        newsdesk = self._newsdesk()
        try:
            embedder = newsdesk.embedder()
            # Only the local model has anything to warm; the OpenAI embedder would spend a
            # paid request, and test stand-ins have nothing to load.
            if isinstance(embedder, LocalEmbedder):
                embedder.embed([PROBE])
        except Exception as exc:
            # Every search embeds its question, so without a model the replica can't serve.
            log.exception("warm-up failed: the embedding model did not load")
            self._set(f"failed: the embedding model did not load ({type(exc).__name__}: {exc})")
            self._done.set()
            return
        try:
            if isinstance(embedder, LocalEmbedder):
                # One search opens what the first question would: Chroma's vector index
                # (loaded from disk on first query), the BM25 index, the fusion path.
                self._set("warming up: running a first search")
                newsdesk.retriever.search(PROBE, top_k=1)
            else:
                self._set("warming up: loading the keyword index")
                newsdesk.keyword.ensure_current(force=True)
        except Exception as exc:
            # Only a head start: all of it happens on first use anyway, and an unreachable
            # store is what /readyz's store check reports.
            log.warning("warm-up: first search failed (%s)", exc)
        log.info("warm-up done in %.1f s", time.perf_counter() - started)
        self._set("ok")
        self._done.set()

    def status(self, wait: float = 0.0) -> str:
        """The state, "ok" or why not yet; waits up to ``wait`` seconds for a warm-up in
        progress to end."""
        if wait > 0:
            self._done.wait(wait)
        with self._lock:
            return self._state
