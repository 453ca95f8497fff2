"""Turn articles into stored chunks: chunk, embed in batches, write, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from vectorstore.chunk import Chunk, chunk_text
from vectorstore.config import ChunkingConfig
from vectorstore.embed import Embedder
from vectorstore.ingest import Article, Failure, identity_id
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


@dataclass
class IngestProgress:
    """Where a run stands, counted in articles and chunks as they are stored.

    An article counts as done only once it is stored (added or updated), found already
    stored (unchanged) or rejected (failed). Chunk totals grow as batches are chunked, so
    ``chunks_expected`` estimates the rest from the chunks per article seen so far.
    """

    articles_total: int | None = None
    articles_read: int = 0
    articles_done: int = 0
    articles_added: int = 0
    articles_updated: int = 0
    articles_unchanged: int = 0
    articles_failed: int = 0
    articles_sized: int = 0  # articles whose chunk count is known (chunked or skipped)
    articles_chunked: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_written: int = 0
    elapsed: float = 0.0

    def chunks_expected(self) -> int | None:
        """All chunks this run will embed: exact once every article is chunked."""
        total = self.articles_total
        if total is None:
            return None
        unknown = max(0, total - self.articles_sized)
        if not unknown:
            return self.chunks_total
        if not self.articles_chunked:
            return None
        return self.chunks_total + round(unknown * self.chunks_total / self.articles_chunked)

    def chunks_per_second(self) -> float:
        # Embedding is nearly all of the time (see the README's ingestion benchmark).
        return self.chunks_embedded / self.elapsed if self.elapsed > 0 else 0.0

    def articles_per_second(self) -> float:
        return self.articles_done / self.elapsed if self.elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        if self.articles_total is not None and self.articles_done >= self.articles_total:
            return 0.0
        expected = self.chunks_expected()
        rate = self.chunks_per_second()
        if expected is None or rate <= 0:
            return None
        return max(0.0, expected - self.chunks_embedded) / rate

    def to_json(self) -> dict[str, Any]:
        eta = self.eta_seconds()
        return {
            "articles": {
                "total": self.articles_total,
                "read": self.articles_read,
                "done": self.articles_done,
                "added": self.articles_added,
                "updated": self.articles_updated,
                "unchanged": self.articles_unchanged,
                "failed": self.articles_failed,
            },
            "chunks": {
                "expected": self.chunks_expected(),
                "embedded": self.chunks_embedded,
                "written": self.chunks_written,
            },
            "chunks_per_second": round(self.chunks_per_second(), 2),
            "articles_per_second": round(self.articles_per_second(), 2),
            "eta_seconds": None if eta is None else round(eta, 1),
            "elapsed_seconds": round(self.elapsed, 1),
        }


ProgressCallback = Callable[[IngestProgress], None]


@dataclass
class _Run:
    """One call of ``Indexer.index``: kept apart from the indexer, which threads share."""

    report: IngestReport
    progress: IngestProgress
    on_progress: ProgressCallback | None
    started: float

    def tick(self) -> None:
        report, progress = self.report, self.progress
        progress.articles_added = report.added
        progress.articles_updated = report.updated
        progress.articles_unchanged = report.unchanged
        progress.articles_failed = report.failed
        progress.articles_done = report.added + report.updated + report.unchanged + report.failed
        progress.elapsed = time.perf_counter() - self.started
        if self.on_progress is not None:
            self.on_progress(progress)


class Indexer:
    def __init__(
        self,
        store: ChromaStore,
        embedder: Callable[[], Embedder],
        chunking: ChunkingConfig,
        *,
        # Chunks per store write: about 5 s of embedding on this 2-core machine, so progress
        # reports stored articles that often. With the hashing embedder, writing 1,236
        # chunks took as long in writes of 64 as of 256 (within run-to-run noise).
        batch_chunks: int = 64,
        batch_articles: int = 500,
        embed_slice: int = 32,
    ) -> None:
        self.store = store
        self._embedder = embedder
        self.chunking = chunking
        self.batch_chunks = batch_chunks
        self.batch_articles = batch_articles
        # Chunks per embedding call: small enough that progress moves every few seconds
        # on a CPU, large enough that the model still runs full batches.
        self.embed_slice = embed_slice

    def index(
        self,
        items: Iterable[Article | Failure],
        *,
        on_item: Callable[[str], None] | None = None,
        on_progress: ProgressCallback | None = None,
        total: int | None = None,
        repair: bool = True,
    ) -> IngestReport:
        """Store every article that is new or changed; failures are reported, not raised.

        Articles are written in batches (embedded ``embed_slice`` chunks at a time); each
        batch commits article by article, so an interrupted run leaves complete articles
        and unreferenced chunks, never a half-visible article.

        ``on_progress`` gets an ``IngestProgress`` after each record read, batch chunked,
        slice embedded and batch written; ``total`` is the number of records expected
        (``len(items)`` when it has one). An exception raised by ``on_progress`` stops the
        run; what was written before stays written.
        """
        started = time.perf_counter()
        report = IngestReport()
        if total is None and isinstance(items, Sized):
            total = len(items)
        progress = IngestProgress(articles_total=total)
        run = _Run(report, progress, on_progress, started)
        if repair:
            report.repaired_chunks = self.store.repair()
        batch: list[Article] = []
        for item in items:
            progress.articles_read += 1
            if progress.articles_total is not None:
                # A miscounted total must not leave the run finishing short of it.
                progress.articles_total = max(progress.articles_total, progress.articles_read)
            if isinstance(item, Failure):
                progress.articles_sized += 1
                report.failed += 1
                report.errors.append({"origin": item.origin, "reason": item.reason})
            else:
                for warning in item.warnings:
                    report.warnings.append({"origin": item.origin or item.id, "warning": warning})
                batch.append(item)
                report.article_ids.append(item.id)
                if len(batch) >= self.batch_articles:
                    self._process(batch, run)
                    batch = []
            if on_item:
                on_item(item.origin or item.id)
            run.tick()
        self._process(batch, run)
        # Whatever was counted, the run is over: the totals are what was read.
        progress.articles_total = progress.articles_read
        run.tick()
        report.seconds = time.perf_counter() - started
        return report

    def _process(self, batch: list[Article], run: _Run) -> None:
        """Look the batch up in one call, then chunk, embed and write what changed."""
        report = run.report
        latest: dict[str, Article] = {}
        batch = self._revising_stored_identities(batch)
        for article in batch:
            earlier = latest.pop(article.id, None)
            if earlier is not None:
                # The same id twice in one run: the later record wins.
                if earlier.content_hash == article.content_hash:
                    report.unchanged += 1
                else:
                    report.updated += 1
            latest[article.id] = article
        run.progress.articles_sized += len(batch) - len(latest)
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
                    run.progress.articles_sized += 1
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
            run.progress.articles_sized += 1
            run.progress.articles_chunked += 1
            run.progress.chunks_total += len(chunks)
            if pending_chunks >= self.batch_chunks:
                self._flush(pending, run)
                pending, pending_chunks = [], 0
        run.tick()
        self._flush(pending, run)

    def _revising_stored_identities(self, batch: list[Article]) -> list[Article]:
        """A file's new text takes the id its first text was stored under; a new file whose
        text another file already holds gets an id of its own, so editing one of the two
        later leaves the other's text in place."""
        keys = [a.identity for a in batch if a.identity]
        if not keys:
            return batch
        stored = self.store.ids_by_identity(keys)
        fresh = [a.id for a in batch if a.identity and a.identity not in stored]
        holders = {
            aid: meta.get("identity") for aid, meta in self.store.article_meta(fresh).items()
        }
        out: list[Article] = []
        for a in batch:
            if a.identity in stored:
                a = replace(a, id=stored[a.identity])
            elif a.identity:
                # A record from before identities were kept (None) is this file's own.
                holder = holders.get(a.id)
                if holder is not None and holder != a.identity:
                    a = replace(a, id=identity_id(a.identity))
                holders.setdefault(a.id, a.identity)
            out.append(a)
        return out

    def _flush(self, pending: list[tuple[Article, list[Chunk], bool]], run: _Run) -> None:
        if not pending:
            return
        report = run.report
        texts = [c.text for _, chunks, _ in pending for c in chunks]
        parts = []
        for i in range(0, len(texts), self.embed_slice):
            t0 = time.perf_counter()
            parts.append(self._embedder().embed(texts[i : i + self.embed_slice]))
            report.embed_seconds += time.perf_counter() - t0
            run.progress.chunks_embedded += len(parts[-1])
            run.tick()
        vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
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
        run.progress.chunks_written += len(texts)
        run.tick()
