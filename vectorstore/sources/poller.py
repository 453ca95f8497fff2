"""Poll a source once, or keep polling every due source (``watch``).

One poll: take the source's lease, fetch it (conditionally), and for a feed or sitemap
fetch each entry's page (conditionally too, with the validators kept per item), extract
it, and hand the articles to the indexer in small batches, renewing the lease after each.
Every outcome is written to the source's record when the lease is released: the items
seen, new, updated, unchanged and failed, or the error and when the next try is (doubling
after each failure, up to ``max_backoff_seconds``, never before the server's
Retry-After).

Nothing is stored half-extracted: a page either becomes a whole article or an item error.
The indexer writes each article atomically, so a poller killed mid-poll leaves whole
articles, and its successor skips them (same text: unchanged).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vectorstore.indexer import IngestReport
from vectorstore.ingest import Article, IngestError
from vectorstore.sources.config import SourcesConfig
from vectorstore.sources.feeds import Entry, FeedError, detect_kind, parse_entries
from vectorstore.sources.fetch import HTML_TYPES, Fetcher, FetchError, FetchResult
from vectorstore.sources.identity import InvalidURL, canonical_url
from vectorstore.sources.pages import Page, page_article
from vectorstore.sources.registry import ItemState, PollRecord, Source, SourceRegistry

log = logging.getLogger("newsdesk.sources")

IndexFn = Callable[[list[Article]], IngestReport]
# Articles per indexer call within one poll: small enough that a killed poller loses
# little, and the lease is renewed after each.
INDEX_BATCH = 16


class SourceBusy(Exception):
    """Another poller holds this source's lease."""


@dataclass
class StageTimes:
    """Seconds spent per stage of a poll, for the bench (bench/feeds.py)."""

    fetch_feed: float = 0.0
    fetch_pages: float = 0.0
    extract: float = 0.0
    index: float = 0.0
    embed: float = 0.0

    def add(self, other: StageTimes) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Item:
    entry: Entry
    url: str
    page: Page | None = None
    result: FetchResult | None = None
    error: str | None = None
    seconds_fetch: float = 0.0
    seconds_extract: float = 0.0


@dataclass
class PollOutcome:
    source_id: str
    record: PollRecord
    next_poll_at: float
    times: StageTimes = field(default_factory=StageTimes)

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "next_poll_in_seconds": max(0.0, round(self.next_poll_at - time.time(), 1)),
        } | self.record.to_json()


def poller_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Poller:
    def __init__(
        self,
        registry: SourceRegistry,
        fetcher: Fetcher,
        index: IndexFn,
        config: SourcesConfig,
        *,
        owner: str | None = None,
    ) -> None:
        self.registry = registry
        self.fetcher = fetcher
        self.index = index
        self.config = config
        self.owner = owner or poller_id()

    # ---- one source ---------------------------------------------------------------

    def poll(self, sid: str) -> PollOutcome:
        """Poll one source now, due or not. Raises ``SourceBusy`` if another poller has
        it and ``KeyError`` if there is no such source."""
        if self.registry.get(sid) is None:
            raise KeyError(sid)
        if not self.registry.claim(sid, self.owner, self.config.lease_seconds):
            raise SourceBusy(sid)
        source = self.registry.get(sid)
        assert source is not None
        return self._run(source)

    def run_leased(self, sid: str) -> PollOutcome | None:
        """Poll a source whose lease was taken for this poller's owner by someone else (a
        watcher that queued the poll for a worker). None, and nothing fetched, when that
        lease has run out meanwhile: another poll of the source may be under way."""
        if not self.registry.renew(sid, self.owner, self.config.lease_seconds):
            return None
        source = self.registry.get(sid)
        if source is None:
            return None
        return self._run(source)

    def _run(self, source: Source) -> PollOutcome:
        """Poll a source whose lease we hold, then release it with the outcome."""
        times = StageTimes()
        try:
            record = self._poll(source, times)
        except (FetchError, FeedError, IngestError, InvalidURL) as exc:
            record = PollRecord(
                ok=False,
                error=str(exc),
                error_code=getattr(exc, "code", "no_article_text"),
                retry_after=getattr(exc, "retry_after", None),
            )
        except Exception as exc:  # noqa: BLE001 - one bad source must not stop the others
            log.exception("polling %s failed", source.url)
            record = PollRecord(ok=False, error=f"internal error: {exc}", error_code="internal")
        now = time.time()
        if record.ok:
            next_poll = now + source.every_seconds
        else:
            backoff = source.every_seconds * 2 ** min(source.failures, 16)
            next_poll = now + max(
                min(backoff, self.config.max_backoff_seconds), record.retry_after or 0.0
            )
        self.registry.release(source.id, self.owner, record, next_poll, now)
        return PollOutcome(source.id, record, next_poll, times)

    def _poll(self, source: Source, times: StageTimes) -> PollRecord:
        t0 = time.perf_counter()
        result = self.fetcher.fetch(
            source.url, etag=source.etag, last_modified=source.last_modified
        )
        times.fetch_feed += time.perf_counter() - t0
        if result.not_modified:
            return PollRecord(ok=True, kind=source.kind, not_modified=True)
        kind = detect_kind(result.content_type, result.body)
        record = PollRecord(
            ok=True, kind=kind, etag=result.etag, last_modified=result.last_modified
        )
        if kind == "page":
            self._poll_page(source, result, record, times)
            return record
        feed = parse_entries(kind, result.body)
        record.feed_title = feed.title
        entries = feed.entries[: self.config.max_items_per_poll]
        record.items_seen = len(entries)
        known = self.registry.items(source.id)
        name = source.name or feed.title
        for batch in _batches(entries, INDEX_BATCH):
            items = self._fetch_items(batch, known, name, times)
            self._store(source, items, record, times)
            if not self.registry.renew(source.id, self.owner, self.config.lease_seconds):
                raise FetchError("lease_lost", "lease expired mid-poll; another poller took over")
        return record

    def _poll_page(
        self, source: Source, result: FetchResult, record: PollRecord, times: StageTimes
    ) -> None:
        t0 = time.perf_counter()
        page = page_article(result.text(), result.url, feed_title=source.name)
        times.extract += time.perf_counter() - t0
        record.items_seen = 1
        item = _Item(Entry(link=source.url), source.url, page=page, result=result)
        self._store(source, [item], record, times)

    def _fetch_items(
        self,
        entries: list[Entry],
        known: dict[str, ItemState],
        feed_name: str | None,
        times: StageTimes,
    ) -> list[_Item]:
        def one(entry: Entry) -> _Item:
            try:
                url = canonical_url(entry.link)
            except InvalidURL as exc:
                return _Item(entry, entry.link, error=str(exc))
            item = _Item(entry, url)
            state = known.get(url)
            t0 = time.perf_counter()
            try:
                item.result = self.fetcher.fetch(
                    entry.link,
                    etag=state.etag if state else None,
                    last_modified=state.last_modified if state else None,
                    accept=HTML_TYPES,
                )
            except FetchError as exc:
                item.error = str(exc)
                return item
            finally:
                item.seconds_fetch = time.perf_counter() - t0
            if item.result.not_modified:
                return item
            t0 = time.perf_counter()
            try:
                item.page = page_article(
                    item.result.text(), item.result.url, entry=entry, feed_title=feed_name
                )
            except IngestError as exc:
                item.error = f"{url}: {exc}"
            item.seconds_extract = time.perf_counter() - t0
            return item

        workers = max(1, self.fetcher.config.host_concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="fetch") as pool:
            items = list(pool.map(one, entries))
        for item in items:
            times.fetch_pages += item.seconds_fetch
            times.extract += item.seconds_extract
        return items

    def _store(
        self, source: Source, items: list[_Item], record: PollRecord, times: StageTimes
    ) -> None:
        articles = [i.page.article for i in items if i.page is not None]
        report = None
        if articles:
            t0 = time.perf_counter()
            report = self.index(articles)
            times.index += time.perf_counter() - t0
            times.embed += report.embed_seconds
            record.items_new += report.added
            record.items_updated += report.updated
            record.items_unchanged += report.unchanged
        failed_ids = {e["origin"] for e in report.errors} if report else set()
        rows = []
        for item in items:
            if item.error is not None:
                record.items_failed += 1
                record.item_errors.append({"url": item.url, "reason": item.error})
                continue
            if item.result is not None and item.result.not_modified:
                record.items_unchanged += 1
                continue
            if item.page is None or item.page.article.origin in failed_ids:
                continue
            rows.append(
                {
                    "url": item.url,
                    "article_id": item.page.article.id,
                    "canonical_url": item.page.canonical_url,
                    "etag": item.result.etag if item.result else None,
                    "last_modified": item.result.last_modified if item.result else None,
                    "content_hash": item.page.article.content_hash,
                    "updated_at": item.page.updated_at,
                }
            )
        if report is not None:
            record.items_failed += report.failed
            for error in report.errors:
                record.item_errors.append({"url": error["origin"], "reason": error["reason"]})
        self.registry.save_items(source.id, rows)

    # ---- every due source ---------------------------------------------------------

    def watch(
        self,
        stop: threading.Event,
        *,
        workers: int = 2,
        idle_seconds: float = 5.0,
        on_outcome: Callable[[Source, PollOutcome], None] | None = None,
    ) -> None:
        """Poll due sources until ``stop`` is set, ``workers`` at a time. Sources leased
        by other processes are left to them."""
        running: dict[str, Future[PollOutcome]] = {}
        with ThreadPoolExecutor(workers, thread_name_prefix="poll") as pool:
            while not stop.is_set():
                for sid, future in list(running.items()):
                    if future.done():
                        del running[sid]
                free = workers - len(running)
                try:
                    due_now = (
                        self.registry.claim_due(self.owner, self.config.lease_seconds, free)
                        if free > 0
                        else []
                    )
                    due = self.registry.next_due()
                # A locked SQLite file or an unreachable Redis: try again.
                except self.registry.errors as exc:
                    log.warning("sources registry: %s", exc)
                    stop.wait(idle_seconds)
                    continue
                for source in due_now:
                    future = pool.submit(self._run, source)
                    if on_outcome is not None:
                        future.add_done_callback(
                            lambda f, s=source: (
                                on_outcome(s, f.result()) if f.exception() is None else None
                            )
                        )
                    running[source.id] = future
                wait = idle_seconds if due is None else min(idle_seconds, due - time.time())
                stop.wait(max(0.2, wait))


def _batches(items: list[Entry], size: int) -> Iterator[list[Entry]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
