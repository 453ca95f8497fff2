"""Local HTTP servers for the source tests and the feeds bench: real sockets, real HTTP
(http.server), so the fetcher is tested as it meets the web, never the internet.

A ``FeedServer`` serves ``Route``s by path. A route answers with a status, a body and
headers, honours If-None-Match / If-Modified-Since when it has an ETag or Last-Modified
(a 304, as real servers do), and counts its hits. A route may instead have a ``handler``
that writes the raw response itself: a slow-loris trickle, an endless body, a hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    handler: Handler | None = None
    hits: int = 0
    not_modified_hits: int = 0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client hanging up (a capped body, a timed-out fetch, a closed keep-alive
        # connection) is what several tests do on purpose, not a server error.
        pass


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.bytes_sent: dict[str, int] = {}
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path
                server.requests.append((path, dict(self.headers)))
                # Routed by path alone: feed links carry tracking parameters.
                route = server.routes.get(path) or server.routes.get(urlsplit(path).path)
                if route is None:
                    self._send(404, b"not found", "text/plain")
                    return
                route.hits += 1
                if route.handler is not None:
                    route.handler(self)
                    return
                if (route.etag and self.headers.get("If-None-Match") == route.etag) or (
                    route.last_modified
                    and not route.etag
                    and self.headers.get("If-Modified-Since") == route.last_modified
                ):
                    route.not_modified_hits += 1
                    self._send(304, b"", None, route)
                    return
                self._send(route.status, route.body, route.content_type, route)

            def _send(
                self, status: int, body: bytes, content_type: str | None, route: Route | None = None
            ) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                if route is not None:
                    if route.etag:
                        self.send_header("ETag", route.etag)
                    if route.last_modified:
                        self.send_header("Last-Modified", route.last_modified)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, **kwargs: object) -> Route:
        route = Route(**kwargs)  # type: ignore[arg-type]
        self.routes[path] = route
        return route

    def start(self) -> FeedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.stop()


# ---- documents ----------------------------------------------------------------------


def article_html(
    title: str,
    paragraphs: list[str],
    *,
    canonical: str | None = None,
    og_url: str | None = None,
    site_name: str | None = None,
    published: str | None = None,
    modified: str | None = None,
    author: str | None = None,
    jsonld: str | None = None,
) -> bytes:
    head = [f"<title>{escape(title)}</title>"]
    if canonical:
        head.append(f'<link rel="canonical" href="{escape(canonical)}">')
    if og_url:
        head.append(f'<meta property="og:url" content="{escape(og_url)}">')
    if site_name:
        head.append(f'<meta property="og:site_name" content="{escape(site_name)}">')
    if published:
        head.append(f'<meta property="article:published_time" content="{published}">')
    if modified:
        head.append(f'<meta property="article:modified_time" content="{modified}">')
    if author:
        head.append(f'<meta name="author" content="{escape(author)}">')
    if jsonld:
        head.append(f'<script type="application/ld+json">{jsonld}</script>')
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html><head>{''.join(head)}</head><body>"
        f"<nav><a href='/'>Home</a> <a href='/world'>World</a></nav>"
        f"<article><h1>{escape(title)}</h1>{body}</article>"
        f"<footer>Copyright Example News</footer></body></html>"
    ).encode()


def rss(title: str, items: list[dict[str, str]]) -> bytes:
    parts = []
    for item in items:
        parts.append(
            "<item>"
            f"<title>{escape(item['title'])}</title><link>{escape(item['link'])}</link>"
            + (f"<pubDate>{item['pubDate']}</pubDate>" if "pubDate" in item else "")
            + (f"<author>{escape(item['author'])}</author>" if "author" in item else "")
            + f"<description>{escape(item.get('description', ''))}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link>"
        f"<description>news</description>{''.join(parts)}</channel></rss>"
    ).encode()


def atom(title: str, entries: list[dict[str, str]]) -> bytes:
    parts = []
    for e in entries:
        parts.append(
            f"<entry><title>{escape(e['title'])}</title>"
            f'<link rel="alternate" href="{escape(e["link"])}"/>'
            f"<id>{escape(e['link'])}</id>"
            f"<published>{e['published']}</published><updated>{e['updated']}</updated>"
            f"<author><name>{escape(e.get('author', 'Staff'))}</name></author></entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:test</id>"
        f"<updated>2024-03-05T10:00:00Z</updated>{''.join(parts)}</feed>"
    ).encode()


def news_sitemap(outlet: str, urls: list[dict[str, str]]) -> bytes:
    parts = []
    for u in urls:
        parts.append(
            f"<url><loc>{escape(u['loc'])}</loc><news:news><news:publication>"
            f"<news:name>{escape(outlet)}</news:name><news:language>en</news:language>"
            f"</news:publication><news:publication_date>{u['date']}</news:publication_date>"
            f"<news:title>{escape(u['title'])}</news:title></news:news></url>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
        f"{''.join(parts)}</urlset>"
    ).encode()


def http_date(ts: float | None = None) -> str:
    return formatdate(ts if ts is not None else time.time(), usegmt=True)
