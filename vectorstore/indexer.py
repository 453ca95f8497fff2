"""Turn articles into stored chunks: chunk, embed in batches, write, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vectorstore.chunk import Chunk, chunk_text
from vectorstore.config import ChunkingConfig
from vectorstore.embed import Embedder
from vectorstore.ingest import Article, Failure
from vectorstore.store import ChromaStore, record_version


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    article_ids: list[str] = field(default_factory=list)
    repaired_chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["embed_seconds"] = round(self.embed_seconds, 3)
        return data

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.failed} failed; {self.chunks} chunks written in {self.seconds:.1f}s"
        )


class Indexer:
    def __init__(
        self,
        store: ChromaStore,
        embedder: Callable[[], Embedder],
        chunking: ChunkingConfig,
        *,
        batch_chunks: int = 256,
        batch_articles: int = 500,
    ) -> None:
        self.store = store
        self._embedder = embedder
        self.chunking = chunking
        self.batch_chunks = batch_chunks
        self.batch_articles = batch_articles

    def index(
        self,
        items: Iterable[Article | Failure],
        *,
        on_item: Callable[[str], None] | None = None,
        repair: bool = True,
    ) -> IngestReport:
        """Store every article that is new or changed; failures are reported, not raised.

        Articles are written in batches (one embedding call per batch); each batch
        commits article by article, so an interrupted run leaves complete articles and
        unreferenced chunks, never a half-visible article.
        """
        started = time.perf_counter()
        report = IngestReport()
        if repair:
            report.repaired_chunks = self.store.repair()
        batch: list[Article] = []
        for item in items:
            if isinstance(item, Failure):
                report.failed += 1
                report.errors.append({"origin": item.origin, "reason": item.reason})
            else:
                for warning in item.warnings:
                    report.warnings.append({"origin": item.origin or item.id, "warning": warning})
                batch.append(item)
                report.article_ids.append(item.id)
                if len(batch) >= self.batch_articles:
                    self._process(batch, report)
                    batch = []
            if on_item:
                on_item(item.origin or item.id)
        self._process(batch, report)
        report.seconds = time.perf_counter() - started
        return report

    def _process(self, batch: list[Article], report: IngestReport) -> None:
        """Look the batch up in one call, then chunk, embed and write what changed."""
        latest: dict[str, Article] = {}
        for article in batch:
            earlier = latest.pop(article.id, None)
            if earlier is not None:
                # The same id twice in one run: the later record wins.
                if earlier.content_hash == article.content_hash:
                    report.unchanged += 1
                else:
                    report.updated += 1
            latest[article.id] = article
        existing = self.store.article_meta(list(latest))
        same = [
            a.id
            for a in latest.values()
            if existing.get(a.id, {}).get("content_hash") == a.content_hash
        ]
        counts = self.store.chunk_counts(same) if same else {}
        pending: list[tuple[Article, list[Chunk], bool]] = []
        pending_chunks = 0
        for article in latest.values():
            stored = existing.get(article.id)
            if stored and stored.get("content_hash") == article.content_hash:
                present = counts.get((article.id, record_version(stored)), 0)
                if present == int(stored.get("chunks", 0)):
                    report.unchanged += 1
                    continue
                # Same text but chunks missing (a store damaged before writers were made
                # safe): write it again rather than answer "unchanged" forever.
                report.warnings.append(
                    {
                        "origin": article.origin or article.id,
                        "warning": f"stored copy had {present} of {stored.get('chunks')} "
                        "chunks; rewritten",
                    }
                )
            chunks = chunk_text(
                article.id,
                article.text,
                self.chunking.max_tokens,
                self.chunking.overlap_sentences,
            )
            pending.append((article, chunks, stored is not None))
            pending_chunks += len(chunks)
            if pending_chunks >= self.batch_chunks:
                self._flush(pending, report)
                pending, pending_chunks = [], 0
        self._flush(pending, report)

    def _flush(
        self, pending: list[tuple[Article, list[Chunk], bool]], report: IngestReport
    ) -> None:
        if not pending:
            return
        texts = [c.text for _, chunks, _ in pending for c in chunks]
        t0 = time.perf_counter()
        vectors = self._embedder().embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
        report.embed_seconds += time.perf_counter() - t0
        items = []
        offset = 0
        for article, chunks, _ in pending:
            items.append((article, chunks, vectors[offset : offset + len(chunks)]))
            offset += len(chunks)
        self.store.write_articles(items)
        for _, chunks, existed in pending:
            report.chunks += len(chunks)
            if existed:
                report.updated += 1
            else:
                report.added += 1
