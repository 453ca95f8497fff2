"""robots.txt, read with Protego (Scrapy's parser: wildcards, Allow/Disallow precedence,
Crawl-delay) and kept per host for a while."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from protego import Protego

if TYPE_CHECKING:
    from vectorstore.sources.fetch import Fetcher

# robots.txt files are small; one larger than this is not a robots.txt.
MAX_ROBOTS_BYTES = 512 * 1024


class RobotsCache:
    """Whether our user agent may fetch a URL, per its host's robots.txt.

    As Google reads robots.txt: a 4xx (no file) allows everything; a 5xx or a network
    failure disallows the host until the next check, since the site may be down or
    saying no and we cannot tell which."""

    def __init__(self, fetcher: Fetcher, cache_seconds: float) -> None:
        self.fetcher = fetcher
        self.cache_seconds = cache_seconds
        self._rules: dict[str, tuple[float, Protego | None, bool]] = {}
        self._lock = threading.Lock()

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        with self._lock:
            cached = self._rules.get(origin)
        if cached is None or cached[0] < time.monotonic():
            cached = self._load(origin)
            with self._lock:
                self._rules[origin] = cached
        _, rules, allow_all = cached
        if rules is None:
            return allow_all
        return rules.can_fetch(url, self.fetcher.config.user_agent)

    def _load(self, origin: str) -> tuple[float, Protego | None, bool]:
        from vectorstore.sources.fetch import FetchError

        expires = time.monotonic() + self.cache_seconds
        try:
            result = self.fetcher.fetch(
                f"{origin}/robots.txt",
                check_robots=False,
                cap=MAX_ROBOTS_BYTES,
                accept=("text/plain", "", "application/octet-stream", "text/html"),
            )
        except FetchError as exc:
            if exc.code.startswith("http_4") or exc.code == "unsupported_content_type":
                return expires, None, True
            # Unreachable or erroring: ask again soon rather than for the whole cache time.
            return time.monotonic() + min(60.0, self.cache_seconds), None, False
        return expires, Protego.parse(result.text()), True
