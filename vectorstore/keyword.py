"""BM25 keyword index over the stored chunks, kept in step with Chroma.

Chroma is the source of truth. The index records a signature of the articles it was
built from (ids and content hashes); whenever Chroma's signature differs (another
process ingested, a delete, a crash) the index is rebuilt from Chroma's chunks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer

from vectorstore.config import KeywordConfig
from vectorstore.ingest import published_timestamp
from vectorstore.store import ArticleFilter, ChromaStore, StoredChunk

log = logging.getLogger(__name__)
INDEX_FORMAT = 1


def signature(versions: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for aid in sorted(versions):
        digest.update(f"{aid}\x00{versions[aid]}\n".encode())
    return digest.hexdigest()


@dataclass
class _Built:
    signature: str
    bm25: bm25s.BM25 | None
    chunks: list[StoredChunk]
    meta: list[dict[str, Any]]


class KeywordIndex:
    def __init__(self, store: ChromaStore, config: KeywordConfig) -> None:
        self.store = store
        self.directory = config.directory
        self.check_seconds = config.check_seconds
        self.stemmer = Stemmer.Stemmer("english")
        self._built: _Built | None = None
        self._checked_at = 0.0
        self._versions: dict[str, str] = {}
        self._sources: set[str] = set()
        self._generation: str | None = None
        self._lock = threading.Lock()

    def _tokenize(self, texts: list[str]) -> Any:
        return bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False)

    def versions(self, force: bool = False) -> dict[str, str]:
        """Article versions from Chroma, re-read at most every check_seconds."""
        self.ensure_current(force=force)
        return self._versions

    def sources(self) -> set[str]:
        """Every outlet named in the store's article metadata."""
        self.ensure_current()
        return self._sources

    def invalidate(self) -> None:
        self._checked_at = 0.0

    def ensure_current(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and self._built and now - self._checked_at < self.check_seconds:
                return
            self._checked_at = now
            # One tiny read tells whether anything was written since the last look.
            generation = self.store.generation()
            if not force and self._built and generation == self._generation:
                return
            catalog = self.store.article_catalog()
            self._generation = generation
            self._versions = {aid: version for aid, (version, _) in catalog.items()}
            self._sources = {source for _, source in catalog.values() if source}
            sig = signature(self._versions)
            if self._built and self._built.signature == sig:
                return
            loaded = self._load(sig)
            self._built = loaded or self._build(sig)

    def _build(self, sig: str) -> _Built:
        started = time.perf_counter()
        chunks = [
            c for c in self.store.iter_chunks() if self._versions.get(c.article_id) == c.version
        ]
        chunks.sort(key=lambda c: (c.article_id, c.index))
        built = self._fit(sig, chunks)
        self._save(built)
        log.info(
            "keyword index rebuilt: %d chunks in %.2fs", len(chunks), time.perf_counter() - started
        )
        return built

    def _fit(self, sig: str, chunks: list[StoredChunk]) -> _Built:
        if not chunks:
            return _Built(sig, None, [], [])
        tokens = self._tokenize([c.text for c in chunks])
        if not tokens.vocab:
            # Every word is a stopword or punctuation (an article that is just "A"):
            # bm25s cannot index an empty vocabulary, and there is nothing to match.
            return self._fit_meta(sig, None, chunks)
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
        return self._fit_meta(sig, bm25, chunks)

    # Saved to disk so a restart doesn't re-tokenise the whole corpus.
    def _save(self, built: _Built) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / "index.tmp"
            _rmtree(tmp)
            tmp.mkdir()
            if built.bm25 is not None:
                built.bm25.save(str(tmp / "bm25"))
            rows = [
                [
                    c.id,
                    c.article_id,
                    c.version,
                    c.index,
                    c.start,
                    c.end,
                    c.text,
                    c.title,
                    c.source,
                    c.published_at,
                ]
                for c in built.chunks
            ]
            (tmp / "chunks.json").write_text(json.dumps(rows), encoding="utf-8")
            (tmp / "signature.json").write_text(
                json.dumps({"format": INDEX_FORMAT, "signature": built.signature}), "utf-8"
            )
            final = self.directory / "index"
            old = self.directory / "index.old"
            if final.exists():
                _rmtree(old)
                final.rename(old)
            tmp.rename(final)
            _rmtree(old)
        except OSError as exc:
            log.warning("could not save keyword index: %s", exc)

    def _load(self, sig: str) -> _Built | None:
        final = self.directory / "index"
        try:
            info = json.loads((final / "signature.json").read_text("utf-8"))
            if info.get("format") != INDEX_FORMAT or info.get("signature") != sig:
                return None
            rows = json.loads((final / "chunks.json").read_text("utf-8"))
            chunks = [StoredChunk(*row) for row in rows]
            # No "bm25" folder with chunks: none of them had a searchable word.
            saved = final / "bm25"
            bm25 = bm25s.BM25.load(str(saved)) if chunks and saved.is_dir() else None
        except (OSError, ValueError, TypeError):
            return None
        return self._fit_meta(sig, bm25, chunks)

    def _fit_meta(self, sig: str, bm25: bm25s.BM25 | None, chunks: list[StoredChunk]) -> _Built:
        meta = [
            {"article_id": c.article_id, "source": c.source, "published_ts": _ts(c.published_at)}
            for c in chunks
        ]
        return _Built(sig, bm25, chunks, meta)

    def search(
        self, query: str, n: int, filters: ArticleFilter | None = None
    ) -> list[tuple[StoredChunk, float]]:
        self.ensure_current()
        built = self._built
        if built is None or built.bm25 is None or not built.chunks:
            return []
        tokens = self._tokenize([query])
        if not tokens.ids or not tokens.ids[0]:
            return []
        mask = None
        if filters and not filters.is_empty():
            mask = np.array([1.0 if filters.matches(m) else 0.0 for m in built.meta])
            if not mask.any():
                return []
        k = min(n, len(built.chunks))
        docs, scores = built.bm25.retrieve(
            tokens, k=k, show_progress=False, weight_mask=mask, n_threads=0
        )
        out = []
        for idx, score in zip(docs[0], scores[0], strict=True):
            if score <= 0:
                continue
            out.append((built.chunks[int(idx)], float(score)))
        return out


def _ts(published_at: str | None) -> int | None:
    return published_timestamp(published_at)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
