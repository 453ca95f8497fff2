"""The sources service: follow, list, unfollow and poll feeds, sitemaps and pages, for the
CLI (``newsdesk sources``, ``newsdesk watch``, ``newsdesk ingest https://...``) and the API
(``/v1/sources``). Thin: the work is in ``vectorstore.sources``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from service.context import Newsdesk
from service.errors import InvalidRequest, NewsdeskError, NothingFound
from vectorstore.indexer import IngestReport
from vectorstore.ingest import Article, Failure, IngestError
from vectorstore.sources.config import SourcesConfig, parse_interval
from vectorstore.sources.feeds import FeedError, detect_kind, parse_entries
from vectorstore.sources.fetch import HTML_TYPES, Fetcher, FetchError
from vectorstore.sources.identity import InvalidURL, canonical_url
from vectorstore.sources.pages import page_article
from vectorstore.sources.poller import Poller, PollOutcome, SourceBusy
from vectorstore.sources.redis_registry import RedisRegistry
from vectorstore.sources.registry import Registry, Source, SourceRegistry

MAX_NAME_CHARS = 200


class UnknownSource(NothingFound):
    code: ClassVar[str] = "nothing_found"

    def __init__(self, sid: str) -> None:
        super().__init__(f"no source with id {sid!r} (see `newsdesk sources list`)")


class SourceAlreadyFollowed(InvalidRequest):
    def __init__(self, url: str, sid: str) -> None:
        super().__init__(f"{url} is already followed as source {sid}", field="url", value=url)
        self.source_id = sid


class SourcePollBusy(NewsdeskError):
    """Another poller is fetching this source right now."""

    code: ClassVar[str] = "source_busy"


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _interval(every: str | None, default: float) -> float:
    if every is None:
        return default
    try:
        return parse_interval(every)
    except ValueError as exc:
        raise InvalidRequest(str(exc), field="every", value=every) from exc


def _url(url: str) -> str:
    try:
        return canonical_url(url)
    except InvalidURL as exc:
        raise InvalidRequest(str(exc), field="url", value=url) from exc


def open_registry(config: SourcesConfig) -> SourceRegistry:
    """Redis when ``NEWSDESK_REDIS_URL`` is set (several machines), else SQLite in the
    data dir (one machine)."""
    if config.redis_url:
        return RedisRegistry(config.redis_url, prefix=config.redis_prefix)
    return Registry(config.registry_path)


class Sources:
    """One per process, like ``Newsdesk``: it owns the registry and the HTTP client."""

    def __init__(self, newsdesk: Newsdesk) -> None:
        self.newsdesk = newsdesk
        self.config = newsdesk.settings.sources_config()
        self.registry = open_registry(self.config)
        self.fetcher = Fetcher(self.config.fetch)
        self._poller: Poller | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.fetcher.close()
        self.registry.close()

    def _index(self, articles: list[Article]) -> IngestReport:
        # Repair runs here too: it limits itself to once per repair interval, and a
        # long-running watch is often the only writer.
        return self.newsdesk.indexer.index(articles)

    @property
    def poller(self) -> Poller:
        with self._lock:
            if self._poller is None:
                self._poller = Poller(self.registry, self.fetcher, self._index, self.config)
            return self._poller

    def add(self, url: str, name: str | None = None, every: str | None = None) -> Source:
        canonical = _url(url)
        seconds = _interval(every, self.config.default_every_seconds)
        if name is not None and (not name.strip() or len(name) > MAX_NAME_CHARS):
            raise InvalidRequest(
                f"name must be 1-{MAX_NAME_CHARS} characters", field="name", value=name
            )
        try:
            return self.registry.add(canonical, name.strip() if name else None, seconds)
        except KeyError as exc:
            raise SourceAlreadyFollowed(canonical, str(exc.args[0])) from exc

    def list(self) -> list[Source]:
        return self.registry.sources()

    def get(self, sid: str) -> Source:
        source = self.registry.get(sid)
        if source is None:
            raise UnknownSource(sid)
        return source

    def remove(self, sid: str) -> None:
        """Stop following; the articles already stored stay."""
        if not self.registry.remove(sid):
            raise UnknownSource(sid)

    def poll(self, sid: str) -> PollOutcome:
        try:
            outcome = self.poller.poll(sid)
        except KeyError as exc:
            raise UnknownSource(sid) from exc
        except SourceBusy as exc:
            raise SourcePollBusy(
                f"source {sid} is being polled by another process; try again shortly"
            ) from exc
        if outcome.record.items_new or outcome.record.items_updated:
            self.newsdesk.keyword.ensure_current(force=True)
        return outcome

    def poll_all(self) -> Iterator[PollOutcome | tuple[str, str]]:
        """Every source once, in turn; a busy one is reported, not waited for."""
        for source in self.list():
            try:
                yield self.poll(source.id)
            except SourcePollBusy as exc:
                yield (source.id, str(exc))

    def watch(
        self,
        stop: threading.Event,
        *,
        workers: int = 2,
        on_outcome: Callable[[Source, PollOutcome], None] | None = None,
    ) -> None:
        self.poller.watch(stop, workers=workers, on_outcome=on_outcome)

    def fetch_articles(self, urls: list[str]) -> Iterator[Article | Failure]:
        """What ``newsdesk ingest URL`` stores: a page's article, or a feed's or sitemap's
        entries' articles, each identified by its canonical URL. Nothing is recorded in
        the registry: following is ``sources add``."""
        for url in urls:
            try:
                result = self.fetcher.fetch(url)
                kind = detect_kind(result.content_type, result.body)
                if kind == "page":
                    yield page_article(result.text(), result.url).article
                    continue
                feed = parse_entries(kind, result.body)
            except (FetchError, FeedError, IngestError, InvalidURL) as exc:
                yield Failure(url, str(exc))
                continue
            for entry in feed.entries[: self.config.max_items_per_poll]:
                yield from self._entry_article(entry, feed.title)

    def feed_file_articles(self, data: bytes, origin: str) -> Iterator[Article | Failure]:
        """A feed or sitemap saved as a file (.rss, .atom, .xml): its entries' pages."""
        try:
            kind = detect_kind("application/xml", data)
            feed = parse_entries("feed" if kind == "page" else kind, data)
        except FeedError as exc:
            yield Failure(origin, str(exc))
            return
        for entry in feed.entries[: self.config.max_items_per_poll]:
            yield from self._entry_article(entry, feed.title)

    def _entry_article(self, entry: Any, feed_title: str | None) -> Iterator[Article | Failure]:
        try:
            page = self.fetcher.fetch(entry.link, accept=HTML_TYPES)
            yield page_article(page.text(), page.url, entry=entry, feed_title=feed_title).article
        except (FetchError, IngestError, InvalidURL) as exc:
            yield Failure(entry.link, str(exc))
