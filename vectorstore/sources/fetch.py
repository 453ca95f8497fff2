"""Fetch one URL politely and defensively.

Polite: robots.txt is honoured, one host gets at most ``host_concurrency`` requests at a
time and one request per ``host_interval`` seconds, and a page that has not changed since
the last poll costs a 304 (conditional GET with the ETag and Last-Modified we kept).
Defensive: redirects are followed by hand, at most ``max_redirects`` and never in a loop;
the body is streamed and abandoned past ``max_bytes`` (a 50 MB page is never read whole);
the whole fetch, headers to last byte, must finish within ``total_timeout`` (a server
sending one byte every few seconds would never trip a read timeout); and content types we
cannot read are refused before the body is read.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from vectorstore.sources.config import FetchConfig

HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
    "application/feed+json",
)
# Some servers label a feed text/plain or send no type at all: the content decides then.
SNIFFED_TYPES = ("text/plain", "application/octet-stream", "")
READABLE_TYPES = HTML_TYPES + FEED_TYPES + SNIFFED_TYPES


class FetchError(Exception):
    """A fetch that gave nothing to read. ``code`` is stable (for the source's record and
    for tests); ``retry_after`` is the server's Retry-After, in seconds, when it sent one."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


@dataclass
class FetchResult:
    url: str  # after redirects
    status: int
    content_type: str
    body: bytes
    etag: str | None
    last_modified: str | None
    seconds: float

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def text(self) -> str:
        charset = "utf-8"
        for part in self.content_type.split(";")[1:]:
            name, _, value = part.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _refuse_private(url: str) -> None:
    """Raise unless every address the URL's host resolves to is public. (The connection
    resolves again: a DNS answer that changes in between is not caught.)"""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise FetchError("network", f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise FetchError(
                "private_address",
                f"{host} is a private or local address ({address}); set "
                "NEWSDESK_SOURCES_ALLOW_PRIVATE=true to fetch from your own network",
            )


@dataclass
class _Host:
    slots: threading.Semaphore
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_start: float = 0.0


class HostLimiter:
    """Per host: at most ``concurrency`` requests at once and a start every ``interval``
    seconds. Shared by every thread of one poller process; other processes keep their
    own, which is why sources, not hosts, are leased (see registry.py)."""

    def __init__(self, interval: float, concurrency: int) -> None:
        self.interval = interval
        self.concurrency = max(1, concurrency)
        self._hosts: dict[str, _Host] = {}
        self._lock = threading.Lock()

    def _host(self, host: str) -> _Host:
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = _Host(threading.Semaphore(self.concurrency))
            return self._hosts[host]

    def acquire(self, host: str) -> Callable[[], None]:
        entry = self._host(host)
        entry.slots.acquire()
        with entry.lock:
            now = time.monotonic()
            start = max(now, entry.next_start)
            entry.next_start = start + self.interval
        if start > now:
            time.sleep(start - now)
        return entry.slots.release


class Fetcher:
    """One HTTP client for a poller process; thread-safe."""

    def __init__(
        self,
        config: FetchConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        robots: object | None = None,
    ) -> None:
        from vectorstore.sources.robots import RobotsCache

        self.config = config
        self.client = httpx.Client(
            # Only the encodings _decoded unpacks (and caps): httpx would offer br and zstd.
            headers={"User-Agent": config.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.total_timeout,
            ),
            follow_redirects=False,
            transport=transport,
        )
        self.hosts = HostLimiter(config.host_interval, config.host_concurrency)
        self.robots = robots or RobotsCache(self, config.robots_cache_seconds)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: Iterable[str] = READABLE_TYPES,
        check_robots: bool = True,
        cap: int | None = None,
    ) -> FetchResult:
        """GET ``url`` (conditionally when ``etag`` / ``last_modified`` are given).

        Raises ``FetchError`` for anything that is not a readable 2xx or a 304: robots.txt
        disallows it, too many or looping redirects, 4xx/5xx, timeouts, a body over the
        cap, a content type outside ``accept``."""
        accept = tuple(accept)
        limit = cap or self.config.max_bytes
        started = time.monotonic()
        deadline = started + self.config.total_timeout
        seen: list[str] = []
        current = url
        while True:
            if current in seen:
                raise FetchError("redirect_loop", f"redirect loop: {' -> '.join(seen + [current])}")
            if len(seen) > self.config.max_redirects:
                raise FetchError(
                    "too_many_redirects", f"more than {self.config.max_redirects} redirects"
                )
            seen.append(current)
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError("bad_url", f"not an http(s) URL: {current}")
            if not self.config.allow_private:
                _refuse_private(current)
            if check_robots and self.config.respect_robots and not self.robots.allowed(current):
                raise FetchError("robots_disallowed", f"robots.txt disallows {current}")
            headers = {}
            # Only on the URL the validators came from: a redirect target is another file.
            if current == url and etag:
                headers["If-None-Match"] = etag
            if current == url and last_modified:
                headers["If-Modified-Since"] = last_modified
            result = self._get(current, headers, accept, limit, deadline)
            if isinstance(result, str):
                current = urljoin(current, result)
                continue
            result.seconds = time.monotonic() - started
            return result

    def _get(
        self,
        url: str,
        headers: dict[str, str],
        accept: tuple[str, ...],
        limit: int,
        deadline: float,
    ) -> FetchResult | str:
        """One request: the result, or the redirect's Location."""
        host = urlsplit(url).netloc.lower()
        release = self.hosts.acquire(host)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError("timeout", f"gave up after {self.config.total_timeout:g}s")
            timeout = httpx.Timeout(
                connect=min(self.config.connect_timeout, remaining),
                read=min(self.config.read_timeout, remaining),
                write=min(self.config.read_timeout, remaining),
                pool=remaining,
            )
            with self.client.stream("GET", url, headers=headers, timeout=timeout) as response:
                if response.status_code in (301, 302, 303, 307, 308):
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("bad_redirect", f"{response.status_code} without Location")
                    return location
                if response.status_code == 304:
                    return FetchResult(
                        url,
                        304,
                        "",
                        b"",
                        response.headers.get("etag"),
                        response.headers.get("last-modified"),
                        0.0,
                    )
                if response.status_code >= 400:
                    raise FetchError(
                        f"http_{response.status_code}",
                        f"HTTP {response.status_code} from {url}",
                        retry_after=_retry_after(response),
                    )
                content_type = response.headers.get("content-type", "").strip()
                media = content_type.split(";")[0].strip().lower()
                if media not in accept:
                    raise FetchError(
                        "unsupported_content_type",
                        f"{url} is {media or 'untyped'}, not a page or feed we read",
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise FetchError(
                        "too_large", f"{url} is {int(declared)} bytes; the cap is {limit}"
                    )
                body = bytearray()
                # No chunk size: httpx would wait for a full chunk before yielding, and a
                # server trickling bytes would never reach the deadline check.
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) > limit:
                        raise FetchError("too_large", f"{url} is over the {limit}-byte cap")
                    if time.monotonic() > deadline:
                        raise FetchError(
                            "timeout",
                            f"{url} took more than {self.config.total_timeout:g}s to send",
                        )
                data = self._decoded(bytes(body), response, limit, url)
                return FetchResult(
                    str(response.url),
                    response.status_code,
                    content_type,
                    data,
                    response.headers.get("etag"),
                    response.headers.get("last-modified"),
                    0.0,
                )
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", f"timed out fetching {url} ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise FetchError("network", f"could not fetch {url}: {exc}") from exc
        finally:
            release()

    @staticmethod
    def _decoded(raw: bytes, response: httpx.Response, limit: int, url: str) -> bytes:
        """The body without its content encoding, capped again: a small gzip can unpack to
        gigabytes."""
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return raw
        import zlib

        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise FetchError("unsupported_encoding", f"{url} uses content-encoding {encoding}")
        wbits = 47 if encoding != "deflate" else zlib.MAX_WBITS
        try:
            decoder = zlib.decompressobj(wbits)
            data = decoder.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise FetchError("bad_encoding", f"{url}: corrupt {encoding} body") from exc
        if len(data) > limit or decoder.unconsumed_tail:
            raise FetchError("too_large", f"{url} unpacks to over the {limit}-byte cap")
        return data
