"""Following sources end to end: local feed servers, the poller, the real indexer and
store (with the hashing embedder), and the registry's record of every poll."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from service.context import Newsdesk
from service.sources import Sources
from tests.feed_server import (
    FeedServer,
    article_html,
    atom,
    feed_server,
    news_sitemap,
    rss,
)
from vectorstore.ingest import read_file
from vectorstore.sources.identity import url_article_id
from vectorstore.sources.pages import page_article
from vectorstore.sources.poller import Poller, SourceBusy

FAST = {
    "sources_allow_private": True,  # the test servers are on 127.0.0.1
    "sources_host_interval": 0.0,
    "sources_read_timeout": 1.0,
    "sources_total_timeout": 3.0,
}


def paragraphs(topic: str, n: int = 3) -> list[str]:
    return [
        f"The council confirmed on Monday that the {topic} project will go ahead after a "
        f"long debate among members about costs and timing (part {i})."
        for i in range(n)
    ]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as srv:
        yield srv


@pytest.fixture
def sources(make_newsdesk: Callable[..., Newsdesk]) -> Iterator[Sources]:
    s = Sources(make_newsdesk(**FAST))
    yield s
    s.close()


def stored(sources: Sources, url: str):  # noqa: ANN201 - a StoredArticle
    return sources.newsdesk.store.get_article(url_article_id(url))


def search_ids(sources: Sources, query: str) -> list[str]:
    hits = sources.newsdesk.retriever.search(query, top_k=5, mode="keyword")
    return [h.chunk.article_id if hasattr(h, "chunk") else h.article_id for h in hits]


def test_rss_items_become_articles_identified_by_their_canonical_url(
    server: FeedServer, sources: Sources
) -> None:
    for i in range(2):
        server.add(
            f"/story/{i}",
            body=article_html(
                f"Tram story {i}",
                paragraphs(f"tram line {i}"),
                canonical=server.url(f"/story/{i}?utm_source=canonical"),
                site_name="City Herald",
                published="2024-03-04T08:00:00Z",
            ),
        )
    items = [
        {
            "title": f"Tram story {i} (feed)",
            "link": server.url(f"/story/{i}?utm_medium=rss&fbclid=abc"),
            "pubDate": "Tue, 05 Mar 2024 10:00:00 GMT",
            "author": "Ana Lopez",
        }
        for i in range(2)
    ]
    server.add("/feed.xml", body=rss("Herald feed", items), content_type="application/rss+xml")
    source = sources.add(server.url("/feed.xml"))
    outcome = sources.poll(source.id)
    assert outcome.record.ok and outcome.record.kind == "feed"
    assert (outcome.record.items_seen, outcome.record.items_new) == (2, 2)

    article = stored(sources, server.url("/story/0"))
    assert article is not None
    assert article.url == server.url("/story/0")  # tracking parameters gone
    assert article.source == "City Herald"  # og:site_name
    assert article.title == "Tram story 0 (feed)"  # the feed entry speaks first
    assert article.published_at == "2024-03-05T10:00:00+00:00"
    assert "tram line 0 project will go ahead" in article.text
    assert "Copyright" not in article.text and "World" not in article.text
    assert url_article_id(server.url("/story/1")) in search_ids(sources, "tram line 1 project")

    record = sources.get(source.id).to_json()
    assert record["kind"] == "feed" and record["name"] == "Herald feed"
    assert record["last_success_at"] and record["last_error"] is None
    assert record["last_poll"]["items_new"] == 2


def test_atom_entries_with_published_and_updated(server: FeedServer, sources: Sources) -> None:
    server.add("/a", body=article_html("Bridge", paragraphs("bridge")))
    server.add(
        "/atom",
        body=atom(
            "Atom News",
            [
                {
                    "title": "Bridge reopens",
                    "link": server.url("/a"),
                    "published": "2024-03-01T09:00:00Z",
                    "updated": "2024-03-02T12:30:00Z",
                    "author": "Kim Lee",
                }
            ],
        ),
        content_type="application/atom+xml",
    )
    source = sources.add(server.url("/atom"))
    assert sources.poll(source.id).record.items_new == 1
    article = stored(sources, server.url("/a"))
    assert article.title == "Bridge reopens" and article.author == "Kim Lee"
    assert article.source == "Atom News"  # no og:site_name: the feed's title
    assert article.published_at == "2024-03-01T09:00:00+00:00"
    state = sources.registry.items(source.id)[server.url("/a")]
    assert state.article_id == article.id


def test_news_sitemap(server: FeedServer, sources: Sources) -> None:
    server.add("/n/1", body=article_html("Harbour", paragraphs("harbour")))
    server.add(
        "/news-sitemap.xml",
        body=news_sitemap(
            "Harbour Times",
            [{"loc": server.url("/n/1"), "date": "2024-02-10T07:15:00+01:00", "title": "Port"}],
        ),
        content_type="application/xml",
    )
    source = sources.add(server.url("/news-sitemap.xml"))
    outcome = sources.poll(source.id)
    assert outcome.record.kind == "sitemap" and outcome.record.items_new == 1
    article = stored(sources, server.url("/n/1"))
    assert article.published_at == "2024-02-10T07:15:00+01:00"
    assert article.source == "Harbour Times" and article.title == "Port"


def test_a_page_source_with_og_metadata_and_json_ld(server: FeedServer, sources: Sources) -> None:
    jsonld = json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": "Dam approved",
            "datePublished": "2024-01-20T06:00:00Z",
            "dateModified": "2024-01-21T06:00:00Z",
            "author": {"@type": "Person", "name": "Sam Okoro"},
            "publisher": {"@type": "Organization", "name": "Valley Post"},
        }
    )
    server.add(
        "/p",
        body=article_html(
            "Dam approved", paragraphs("dam"), og_url=server.url("/dam?ref_src=tw"), jsonld=jsonld
        ),
    )
    source = sources.add(server.url("/p"))
    outcome = sources.poll(source.id)
    assert outcome.record.kind == "page" and outcome.record.items_new == 1
    article = stored(sources, server.url("/dam"))  # og:url is the identity
    assert article is not None
    assert article.published_at == "2024-01-20T06:00:00+00:00"
    assert article.author == "Sam Okoro" and article.source == "Valley Post"


NO_DATE_BODY = [
    "The tram line was first proposed in 2019 and the city has argued about it since 1998.",
    "Residents have campaigned since 1998 for better transport, and the plan first proposed "
    "in 2019 has now been approved by the council after a long debate about its cost.",
]


def test_dates_never_come_from_body_text(
    server: FeedServer, sources: Sources, tmp_path: Path
) -> None:
    html = article_html("Tram plan", NO_DATE_BODY)
    # The page fetcher.
    assert page_article(html.decode(), "https://example.com/tram").article.published_at is None
    # The HTML file reader (newsdesk ingest file.html) too.
    path = tmp_path / "tram.html"
    path.write_bytes(html)
    (article,) = read_file(path)
    assert article.published_at is None, article.published_at
    # Markup that states a date is still read.
    dated = article_html("Tram plan", NO_DATE_BODY, published="2024-03-05T10:00:00Z")
    path.write_bytes(dated)
    (article,) = read_file(path)
    assert article.published_at == "2024-03-05"


def test_time_element_is_metadata() -> None:
    html = article_html("Tram plan", NO_DATE_BODY).replace(
        b"<h1>", b'<time datetime="2023-07-01T08:00:00Z" pubdate>1 July</time><h1>'
    )
    page = page_article(html.decode(), "https://example.com/t")
    assert page.article.published_at == "2023-07-01T08:00:00+00:00"


def test_unchanged_feed_is_a_304_and_no_page_is_fetched(
    server: FeedServer, sources: Sources
) -> None:
    page = server.add("/a", body=article_html("A", paragraphs("a")), etag='"p1"')
    feed = server.add(
        "/f",
        body=rss("F", [{"title": "A", "link": server.url("/a")}]),
        content_type="application/rss+xml",
        etag='"f1"',
    )
    source = sources.add(server.url("/f"))
    sources.poll(source.id)
    second = sources.poll(source.id)
    assert second.record.ok and second.record.not_modified
    assert feed.not_modified_hits == 1 and page.hits == 1
    # The feed changes but the page does not: the page answers 304.
    feed.etag = '"f2"'
    third = sources.poll(source.id)
    assert third.record.items_unchanged == 1 and page.not_modified_hits == 1


def test_an_item_whose_text_changes_is_re_ingested_under_the_same_id(
    server: FeedServer, sources: Sources
) -> None:
    page = server.add(
        "/tram",
        body=article_html(
            "Tram", ["The tram will open in 2027, the mayor said.", "Work starts soon."]
        ),
        etag='"v1"',
    )
    server.add(
        "/f",
        body=rss("F", [{"title": "Tram", "link": server.url("/tram")}]),
        content_type="application/rss+xml",
    )
    source = sources.add(server.url("/f"))
    assert sources.poll(source.id).record.items_new == 1
    page.body = article_html(
        "Tram", ["The tram will open in 2028, the mayor said.", "Work starts soon."]
    )
    page.etag = '"v2"'
    outcome = sources.poll(source.id)
    assert (outcome.record.items_updated, outcome.record.items_new) == (1, 0)
    article = stored(sources, server.url("/tram"))
    assert "2028" in article.text and "2027" not in article.text
    assert len(sources.newsdesk.store.article_meta([article.id])) == 1


def test_malformed_feed_is_recorded_and_backed_off(server: FeedServer, sources: Sources) -> None:
    server.add("/bad", body=b"<rss><channel><title>x</ti", content_type="application/rss+xml")
    source = sources.add(server.url("/bad"), every="10m")
    first = sources.poll(source.id)
    assert not first.record.ok and first.record.error_code == "bad_feed"
    record = sources.get(source.id)
    assert record.failures == 1 and "malformed" in record.last_error
    assert record.next_poll_at - record.last_polled_at == pytest.approx(600, abs=1)
    sources.poll(source.id)
    record = sources.get(source.id)
    # Backoff doubles after each failure.
    assert record.failures == 2
    assert record.next_poll_at - record.last_polled_at == pytest.approx(1200, abs=1)


@pytest.mark.parametrize(("status", "code"), [(404, "http_404"), (500, "http_500")])
def test_http_errors_are_recorded(
    server: FeedServer, sources: Sources, status: int, code: str
) -> None:
    server.add("/f", status=status, body=b"no")
    source = sources.add(server.url("/f"))
    assert sources.poll(source.id).record.error_code == code
    assert sources.get(source.id).to_json()["last_error_code"] == code


def test_retry_after_is_respected(server: FeedServer, sources: Sources) -> None:
    server.add("/f", status=503, body=b"busy", headers={"Retry-After": "7200"})
    source = sources.add(server.url("/f"), every="1m")
    sources.poll(source.id)
    record = sources.get(source.id)
    assert record.next_poll_at - record.last_polled_at == pytest.approx(7200, abs=1)


def test_robots_disallowed_source(server: FeedServer, sources: Sources) -> None:
    server.add("/robots.txt", body=b"User-agent: *\nDisallow: /\n", content_type="text/plain")
    feed = server.add("/f", body=rss("F", []), content_type="application/rss+xml")
    source = sources.add(server.url("/f"))
    assert sources.poll(source.id).record.error_code == "robots_disallowed"
    assert feed.hits == 0


def test_bad_items_are_listed_and_the_good_ones_stored(
    server: FeedServer, sources: Sources
) -> None:
    server.add("/good", body=article_html("Good", paragraphs("school")))
    server.add("/img", body=b"\x89PNG", content_type="image/png")
    server.add("/loop", status=302, headers={"Location": "/loop2"})
    server.add("/loop2", status=302, headers={"Location": "/loop"})
    server.add("/empty", body=b"<html><body><nav>Home</nav></body></html>")
    links = ["/good", "/img", "/loop", "/empty", "/missing"]
    server.add(
        "/f",
        body=rss("F", [{"title": p, "link": server.url(p)} for p in links]),
        content_type="application/rss+xml",
    )
    source = sources.add(server.url("/f"))
    record = sources.poll(source.id).record
    assert record.ok and record.items_new == 1 and record.items_failed == 4
    reasons = " ".join(e["reason"] for e in record.item_errors)
    assert "image/png" in reasons and "redirect loop" in reasons and "404" in reasons
    assert "no article text" in reasons
    # Nothing half-extracted was stored: only the good page is an article.
    assert stored(sources, server.url("/empty")) is None
    assert stored(sources, server.url("/good")) is not None
    shown = sources.get(source.id).to_json()
    assert shown["last_error_code"] == "items_failed" and shown["consecutive_failures"] == 0


def test_one_bad_source_does_not_stop_the_others(server: FeedServer, sources: Sources) -> None:
    server.add("/a", body=article_html("Good", paragraphs("library")))
    server.add("/good", body=rss("G", [{"title": "L", "link": server.url("/a")}]))
    server.add("/broken", status=500)
    server.add("/hang", handler=lambda h: time.sleep(5))
    ids = [sources.add(server.url(p)).id for p in ("/broken", "/hang", "/good")]
    stop = threading.Event()
    watcher = threading.Thread(target=sources.watch, args=(stop,), kwargs={"workers": 2})
    watcher.start()
    try:
        for _ in range(300):
            if all(sources.get(i).polls >= 1 for i in ids):
                break
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(30)
    broken, hang, good = (sources.get(i) for i in ids)
    assert broken.last_error_code == "http_500" and hang.last_error_code == "timeout"
    assert good.last_success_at is not None and good.items_new == 1
    assert stored(sources, server.url("/a")) is not None


def test_two_pollers_never_fetch_one_source_at_once(
    server: FeedServer, sources: Sources, make_newsdesk: Callable[..., Newsdesk]
) -> None:
    inside = threading.Event()
    release = threading.Event()

    def held(handler: BaseHTTPRequestHandler) -> None:
        inside.set()
        release.wait(10)
        body = rss("F", [])
        handler.send_response(200)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    feed = server.add("/f", handler=held)
    source = sources.add(server.url("/f"))
    other = Sources(make_newsdesk(**FAST))  # a second process's poller on the same data dir
    first = threading.Thread(target=sources.poll, args=(source.id,))
    first.start()
    try:
        assert inside.wait(10)
        assert sources.get(source.id).to_json()["polling"] is True
        with pytest.raises(SourceBusy):
            other.poller.poll(source.id)
        assert other.registry.claim_due(other.poller.owner, 60, 5) == []
    finally:
        release.set()
        first.join(10)
        other.close()
    assert feed.hits == 1
    assert sources.get(source.id).polls == 1


def test_claims_race_only_one_poller_wins(sources: Sources) -> None:
    source = sources.add("https://example.com/feed")
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def race(n: int) -> None:
        barrier.wait()
        if sources.registry.claim(source.id, f"poller-{n}", 60):
            wins.append(f"poller-{n}")

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert sources.get(source.id).lease_owner == wins[0]


class Died(BaseException):
    """A poller process killed mid-poll: nothing of it runs after this."""


def dying_poller(server: FeedServer, sources: Sources, lease_seconds: float) -> tuple:
    """A feed of 20 stories and a poller that dies on its second batch, lease held:
    (pages, source, poller)."""
    pages = [
        server.add(f"/s/{i}", body=article_html(f"S{i}", paragraphs(f"story {i}")), etag=f'"{i}"')
        for i in range(20)
    ]
    server.add(
        "/f",
        body=rss("F", [{"title": f"S{i}", "link": server.url(f"/s/{i}")} for i in range(20)]),
        content_type="application/rss+xml",
    )
    source = sources.add(server.url("/f"))
    calls = {"n": 0}

    def dies_on_second_batch(articles: list) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Died
        return sources.newsdesk.indexer.index(articles)

    config = sources.config.__class__(**{**vars(sources.config), "lease_seconds": lease_seconds})
    return pages, source, Poller(sources.registry, sources.fetcher, dies_on_second_batch, config)


def test_a_poller_that_dies_is_resumed_after_its_lease_expires(
    server: FeedServer, sources: Sources, make_newsdesk: Callable[..., Newsdesk]
) -> None:
    pages, source, doomed = dying_poller(server, sources, 5.0)
    with pytest.raises(Died):
        doomed.poll(source.id)
    assert sources.get(source.id).lease_owner == doomed.owner  # never released
    survivor = Sources(make_newsdesk(**FAST))
    try:
        with pytest.raises(SourceBusy):
            survivor.poller.poll(source.id)
        while sources.get(source.id).lease_until > time.time():  # the lease runs out
            time.sleep(0.2)
        record = survivor.poll(source.id).record
    finally:
        survivor.close()
    # The first batch (16) was stored before the crash: those pages answer 304 now.
    assert (record.items_unchanged, record.items_new) == (16, 4)
    assert sum(p.not_modified_hits for p in pages) == 16


def test_a_lease_lost_mid_poll_is_not_overwritten(sources: Sources) -> None:
    source = sources.add("https://example.com/feed")
    assert sources.registry.claim(source.id, "slow", 0.01)
    time.sleep(0.05)
    assert sources.registry.claim(source.id, "fast", 60)
    assert not sources.registry.renew(source.id, "slow", 60)
    assert sources.get(source.id).lease_owner == "fast"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_watch_follows_a_feed_new_and_updated_items_become_searchable(
    server: FeedServer, sources: Sources
) -> None:
    first = server.add(
        "/one", body=article_html("One", ["The harbour bridge toll rises to four euros in May."])
    )
    items = [{"title": "One", "link": server.url("/one")}]
    feed = server.add("/f", body=rss("F", items), content_type="application/rss+xml")
    # One second between polls (the CLI and API allow 30 s at least).
    source = sources.registry.add(server.url("/f"), None, 1.0)
    stop = threading.Event()
    watcher = threading.Thread(target=sources.watch, args=(stop,))
    watcher.start()
    try:
        wait_for(lambda: stored(sources, server.url("/one")) is not None, "first item stored")
        first.body = article_html("One", ["The harbour bridge toll rises to five euros in May."])
        server.add("/two", body=article_html("Two", ["A night ferry to the islands starts."]))
        feed.body = rss("F", items + [{"title": "Two", "link": server.url("/two")}])
        wait_for(lambda: stored(sources, server.url("/two")) is not None, "new item stored")
        wait_for(lambda: "five euros" in stored(sources, server.url("/one")).text, "update stored")
    finally:
        stop.set()
        watcher.join(30)
    sources.newsdesk.keyword.ensure_current(force=True)
    assert url_article_id(server.url("/two")) in search_ids(sources, "night ferry islands")
    assert url_article_id(server.url("/one")) in search_ids(sources, "bridge toll five euros")
    assert sources.get(source.id).polls >= 2
