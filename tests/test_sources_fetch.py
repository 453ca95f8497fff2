"""The fetcher against real local HTTP servers: conditional GET, errors, timeouts, a
slow-loris server, a 50 MB body, redirects, content types and robots.txt."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.feed_server import FeedServer, feed_server, http_date
from vectorstore.sources.config import FetchConfig
from vectorstore.sources.fetch import Fetcher, FetchError

PAGE = b"<html><body><p>hello</p></body></html>"


def config(**changes: object) -> FetchConfig:
    base = {
        "user_agent": "NewsdeskBot/0.1",
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
        "total_timeout": 2.0,
        "max_bytes": 1_000_000,
        "max_redirects": 3,
        "host_interval": 0.0,
        "host_concurrency": 2,
        "respect_robots": True,
        "robots_cache_seconds": 3600.0,
        "allow_private": True,  # the test servers are on 127.0.0.1
    }
    return FetchConfig(**(base | changes))  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as srv:
        yield srv


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(config()) as f:
        yield f


def code_of(fetcher: Fetcher, url: str) -> str:
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url)
    return info.value.code


def test_conditional_get_with_etag_gets_a_304(server: FeedServer, fetcher: Fetcher) -> None:
    route = server.add("/a", body=PAGE, etag='"v1"')
    first = fetcher.fetch(server.url("/a"))
    assert first.status == 200 and first.body == PAGE and first.etag == '"v1"'
    again = fetcher.fetch(server.url("/a"), etag=first.etag)
    assert again.not_modified and route.not_modified_hits == 1
    route.etag = '"v2"'
    assert fetcher.fetch(server.url("/a"), etag=first.etag).status == 200


def test_conditional_get_with_last_modified(server: FeedServer, fetcher: Fetcher) -> None:
    stamp = http_date(1_700_000_000)
    server.add("/a", body=PAGE, last_modified=stamp)
    first = fetcher.fetch(server.url("/a"))
    assert first.last_modified == stamp
    assert fetcher.fetch(server.url("/a"), last_modified=stamp).not_modified


@pytest.mark.parametrize("status", [404, 410, 500, 503])
def test_http_errors_are_fetch_errors(server: FeedServer, fetcher: Fetcher, status: int) -> None:
    server.add("/a", body=b"nope", status=status, headers={"Retry-After": "120"})
    with pytest.raises(FetchError) as info:
        fetcher.fetch(server.url("/a"))
    assert info.value.code == f"http_{status}"
    assert info.value.retry_after == 120


def test_a_server_that_never_answers_times_out(server: FeedServer, fetcher: Fetcher) -> None:
    server.add("/hang", handler=lambda h: time.sleep(5))
    assert code_of(fetcher, server.url("/hang")) == "timeout"


def test_slow_loris_is_cut_off_at_the_total_timeout(server: FeedServer) -> None:
    sent = {"bytes": 0}
    done = threading.Event()

    def slow_loris(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        try:
            for _ in range(100):  # a byte every 0.1 s: never idle long enough for a timeout
                handler.wfile.write(b"x")
                handler.wfile.flush()
                sent["bytes"] += 1
                time.sleep(0.1)
        except OSError:
            pass
        finally:
            done.set()

    server.add("/slow", handler=slow_loris)
    with Fetcher(config(read_timeout=1.0, total_timeout=1.5)) as fetcher:
        assert code_of(fetcher, server.url("/slow")) == "timeout"
    assert done.wait(30)
    # The client hung up long before the 100th byte (each byte resets a read timeout).
    assert sent["bytes"] < 60


def test_a_50_mb_body_is_never_read_whole(server: FeedServer) -> None:
    sent = {"bytes": 0}

    def huge(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Connection", "close")  # no length: only the cap stops it
        handler.end_headers()
        block = b"<p>" + b"a" * 65_533
        try:
            for _ in range(50 * 16):  # 50 MB
                handler.wfile.write(block)
                sent["bytes"] += len(block)
        except OSError:
            pass

    server.add("/big", handler=huge)
    with (
        Fetcher(config(max_bytes=1_000_000, total_timeout=30)) as fetcher,
        pytest.raises(FetchError) as info,
    ):
        fetcher.fetch(server.url("/big"))
    assert info.value.code == "too_large"
    time.sleep(0.2)
    # What was written before the socket closed is bounded by buffers, not by the body.
    assert sent["bytes"] < 20_000_000


def test_a_declared_length_over_the_cap_is_refused_before_reading(server: FeedServer) -> None:
    server.add("/big", body=b"a" * 2_000_000)
    with Fetcher(config(max_bytes=1_000_000)) as fetcher:
        assert code_of(fetcher, server.url("/big")) == "too_large"


def test_a_gzip_bomb_is_capped_after_decompression(server: FeedServer) -> None:
    bomb = gzip.compress(b"a" * 5_000_000)
    server.add("/bomb", body=bomb, headers={"Content-Encoding": "gzip"})
    with Fetcher(config(max_bytes=1_000_000)) as fetcher:
        assert code_of(fetcher, server.url("/bomb")) == "too_large"
    small = gzip.compress(PAGE)
    server.add("/ok", body=small, headers={"Content-Encoding": "gzip"})
    with Fetcher(config()) as fetcher:
        assert fetcher.fetch(server.url("/ok")).body == PAGE


def test_redirects_are_followed_and_loops_refused(server: FeedServer, fetcher: Fetcher) -> None:
    server.add("/old", status=301, headers={"Location": "/new"})
    server.add("/new", body=PAGE)
    result = fetcher.fetch(server.url("/old"))
    assert result.url == server.url("/new") and result.body == PAGE
    server.add("/a", status=302, headers={"Location": "/b"})
    server.add("/b", status=302, headers={"Location": "/a"})
    assert code_of(fetcher, server.url("/a")) == "redirect_loop"
    for i in range(6):
        server.add(f"/r{i}", status=302, headers={"Location": f"/r{i + 1}"})
    server.add("/r6", body=PAGE)
    assert code_of(fetcher, server.url("/r0")) == "too_many_redirects"


def test_content_we_cannot_read_is_refused_with_its_type(
    server: FeedServer, fetcher: Fetcher
) -> None:
    server.add("/img", body=b"\x89PNG....", content_type="image/png")
    with pytest.raises(FetchError) as info:
        fetcher.fetch(server.url("/img"))
    assert info.value.code == "unsupported_content_type"
    assert "image/png" in str(info.value)


def test_robots_txt_disallow_is_honoured(server: FeedServer, fetcher: Fetcher) -> None:
    server.add(
        "/robots.txt",
        body=b"User-agent: NewsdeskBot\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n",
        content_type="text/plain",
    )
    private = server.add("/private/a", body=PAGE)
    server.add("/public/a", body=PAGE)
    assert code_of(fetcher, server.url("/private/a")) == "robots_disallowed"
    assert private.hits == 0
    assert fetcher.fetch(server.url("/public/a")).body == PAGE
    # Read once, then kept.
    assert server.routes["/robots.txt"].hits == 1


def test_no_robots_txt_allows_everything(server: FeedServer, fetcher: Fetcher) -> None:
    server.add("/a", body=PAGE)
    assert fetcher.fetch(server.url("/a")).body == PAGE


def test_an_unreachable_host_is_a_network_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with Fetcher(config(respect_robots=False)) as fetcher:
        assert code_of(fetcher, f"http://127.0.0.1:{port}/a") == "network"


def test_the_user_agent_and_encodings_sent(server: FeedServer, fetcher: Fetcher) -> None:
    server.add("/a", body=PAGE)
    fetcher.fetch(server.url("/a"))
    headers = dict(server.requests[-1][1])
    assert headers["User-Agent"] == "NewsdeskBot/0.1"
    assert headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a",
        "http://localhost/a",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/feed",
        "http://[::1]/a",
    ],
)
def test_local_and_private_addresses_are_refused_by_default(url: str) -> None:
    with Fetcher(config(allow_private=False)) as fetcher, pytest.raises(FetchError) as info:
        fetcher.fetch(url)
    assert info.value.code == "private_address"
    assert "NEWSDESK_SOURCES_ALLOW_PRIVATE" in str(info.value)
