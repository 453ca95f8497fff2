"""The sources registry in Redis (``NEWSDESK_REDIS_URL``): a real ``redis-server``, the
poller, local feed servers, and two "machines" (two ``Sources`` with different data dirs)
sharing one Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import tests.test_sources_poll as poll_tests
from service.context import Newsdesk
from service.settings import Settings
from service.sources import Sources
from tests.chroma_server import free_port
from tests.feed_server import FeedServer, article_html, rss
from tests.redis_server import RedisServer, redis_binary
from tests.test_sources_poll import FAST, Died, dying_poller, paragraphs, stored
from vectorstore.sources.poller import Poller, SourceBusy
from vectorstore.sources.redis_registry import RedisRegistry
from vectorstore.sources.registry import PollRecord, Registry, SourceRegistry
from vectorstore.store import StoreUnavailable

# The SQLite registry's behavioural tests, collected again here, where ``settings`` (below)
# points every ``Sources`` at Redis: the same poller behaviour on either backend.
server = poll_tests.server
sources = poll_tests.sources
test_rss_items_become_articles_identified_by_their_canonical_url = (
    poll_tests.test_rss_items_become_articles_identified_by_their_canonical_url
)
test_unchanged_feed_is_a_304_and_no_page_is_fetched = (
    poll_tests.test_unchanged_feed_is_a_304_and_no_page_is_fetched
)
test_an_item_whose_text_changes_is_re_ingested_under_the_same_id = (
    poll_tests.test_an_item_whose_text_changes_is_re_ingested_under_the_same_id
)
test_malformed_feed_is_recorded_and_backed_off = (
    poll_tests.test_malformed_feed_is_recorded_and_backed_off
)
test_retry_after_is_respected = poll_tests.test_retry_after_is_respected
test_bad_items_are_listed_and_the_good_ones_stored = (
    poll_tests.test_bad_items_are_listed_and_the_good_ones_stored
)
test_two_pollers_never_fetch_one_source_at_once = (
    poll_tests.test_two_pollers_never_fetch_one_source_at_once
)
test_claims_race_only_one_poller_wins = poll_tests.test_claims_race_only_one_poller_wins
test_a_lease_lost_mid_poll_is_not_overwritten = (
    poll_tests.test_a_lease_lost_mid_poll_is_not_overwritten
)
test_watch_follows_a_feed_new_and_updated_items_become_searchable = (
    poll_tests.test_watch_follows_a_feed_new_and_updated_items_become_searchable
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # A skip, not an error, so a machine without the system package still runs the rest
    # (the SQLite half of the parametrized registry tests included).
    if redis_binary() is None:
        pytest.skip(
            "redis-server is not installed: run scripts/system-deps.sh as root (make install "
            "does) to test the Redis sources registry"
        )
    redis_srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield redis_srv
    redis_srv.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """conftest's settings with the registry in Redis."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        chroma_host=None,
        llm_base_url=None,
        llm_api_key=None,
        index_check_seconds=0.0,
        redis_url=redis_url,
    )


@pytest.fixture
def machine_b(make_newsdesk: Callable[..., Newsdesk], tmp_path: Path) -> Iterator[Sources]:
    """A second machine: its own data dir, the same Redis."""
    s = Sources(make_newsdesk(data_dir=tmp_path / "machine-b", **FAST))
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "redis"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SourceRegistry]:
    reg: SourceRegistry
    if request.param == "redis":
        reg = RedisRegistry(request.getfixturevalue("redis_url"), prefix="t:")
    else:
        reg = Registry(tmp_path / "sources.sqlite3")
    yield reg
    reg.close()


# ---- one registry, either backend ---------------------------------------------------


def test_sources_here_are_kept_in_redis(sources: Sources, tmp_path: Path) -> None:
    assert isinstance(sources.registry, RedisRegistry)
    sources.add("https://example.com/feed")
    assert not (tmp_path / "data" / "sources.sqlite3").exists()


def test_a_stale_owner_cannot_release_or_renew_a_taken_lease(registry: SourceRegistry) -> None:
    source = registry.add("https://example.com/feed", None, 600.0)
    assert registry.claim(source.id, "slow", 0.01)
    time.sleep(0.05)
    assert registry.claim(source.id, "fast", 60)
    assert not registry.renew(source.id, "slow", 60)
    registry.release(source.id, "slow", PollRecord(ok=False, error="x", error_code="x"), 0.0)
    after = registry.get(source.id)
    assert after is not None
    assert after.lease_owner == "fast" and after.lease_until > time.time()
    assert (after.polls, after.failures, after.last_error) == (0, 0, None)
    registry.release(source.id, "fast", PollRecord(ok=True, items_seen=3), time.time() + 600)
    done = registry.get(source.id)
    assert done is not None and done.lease_owner is None and done.lease_until == 0
    assert (done.polls, done.items_seen) == (1, 3)


def test_an_expired_untaken_lease_still_records_its_poll(registry: SourceRegistry) -> None:
    source = registry.add("https://example.com/feed", "Feed", 600.0)
    assert registry.claim(source.id, "late", 0.01)
    time.sleep(0.05)
    registry.release(source.id, "late", PollRecord(ok=False, error="boom", error_code="x"), 1.0)
    after = registry.get(source.id)
    assert after is not None
    assert (after.polls, after.failures, after.last_error) == (1, 1, "boom")
    assert after.next_poll_at == 1.0 and after.name == "Feed"


def test_claim_due_hands_each_due_source_to_one_claimant(registry: SourceRegistry) -> None:
    now = time.time()
    due = {
        registry.add(f"https://example.com/f{i}", None, 600.0, now=now - i).id for i in range(12)
    }
    later = registry.add("https://example.com/later", None, 600.0).id
    registry.release(later, "nobody", PollRecord(ok=True), now + 600)  # not ours: no effect
    assert registry.claim(later, "x", 60)
    registry.release(later, "x", PollRecord(ok=True), now + 600)
    barrier = threading.Barrier(6)
    got: dict[str, list[str]] = {}

    def claimant(n: int) -> None:
        barrier.wait()
        got[f"p{n}"] = [s.id for s in registry.claim_due(f"p{n}", 60, 3)]

    threads = [threading.Thread(target=claimant, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [sid for ids in got.values() for sid in ids]
    assert sorted(claimed) == sorted(due)  # every due source once, the later one never
    assert all(len(ids) <= 3 for ids in got.values())
    for owner, ids in got.items():
        for sid in ids:
            source = registry.get(sid)
            assert source is not None and source.lease_owner == owner


def test_next_due_waits_for_a_lease_and_items_go_with_their_source(
    registry: SourceRegistry,
) -> None:
    now = time.time()
    source = registry.add("https://example.com/feed", None, 600.0, now=now)
    assert registry.next_due() == pytest.approx(now, abs=0.01)
    assert registry.claim(source.id, "p", 120)
    assert registry.next_due() == pytest.approx(now + 120, abs=1)
    row = {
        "url": "https://example.com/a",
        "article_id": "a1",
        "canonical_url": "https://example.com/a",
        "etag": '"1"',
        "last_modified": None,
        "content_hash": "h",
        "updated_at": None,
    }
    registry.save_items(source.id, [row])
    assert registry.items(source.id)["https://example.com/a"].etag == '"1"'
    assert registry.claim("no-such-source", "p", 60) is False
    assert registry.remove(source.id) and not registry.remove(source.id)
    assert registry.items(source.id) == {} and registry.sources() == []
    assert registry.next_due() is None
    with pytest.raises(KeyError):
        registry.add("https://example.com/x", None, 60.0)
        registry.add("https://EXAMPLE.com/x?utm_source=y", None, 60.0)


def test_an_unreachable_redis_is_a_store_error() -> None:
    down = RedisRegistry(f"redis://127.0.0.1:{free_port()}/0", "t:")
    with pytest.raises(StoreUnavailable, match="Redis"):
        down.sources()
    down.close()


def test_watch_outlives_a_redis_outage(sources: Sources) -> None:
    down = RedisRegistry(f"redis://127.0.0.1:{free_port()}/0", "t:")
    poller = Poller(down, sources.fetcher, sources.newsdesk.indexer.index, sources.config)
    failures: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            poller.watch(stop, idle_seconds=0.2)
        except BaseException as exc:  # noqa: BLE001 - what the test looks for
            failures.append(exc)

    watcher = threading.Thread(target=run)
    watcher.start()
    time.sleep(1.0)
    alive = watcher.is_alive()
    stop.set()
    watcher.join(30)
    down.close()
    assert alive and failures == []


# ---- two machines, one Redis --------------------------------------------------------


def test_a_source_added_on_one_machine_is_listed_on_the_other(
    sources: Sources, machine_b: Sources
) -> None:
    source = sources.add("https://example.com/feed", name="Herald", every="2h")
    (seen,) = machine_b.list()
    assert (seen.id, seen.url, seen.name, seen.every_seconds) == (
        source.id,
        "https://example.com/feed",
        "Herald",
        7200.0,
    )
    machine_b.remove(source.id)
    assert sources.list() == []


def test_racing_machines_fetch_each_source_once(
    server: FeedServer, sources: Sources, machine_b: Sources
) -> None:
    feeds = [
        server.add(f"/f{i}", body=rss(f"F{i}", []), content_type="application/rss+xml")
        for i in range(6)
    ]
    ids = [sources.registry.add(server.url(f"/f{i}"), None, 3600.0).id for i in range(6)]
    stop = threading.Event()
    watchers = [
        threading.Thread(target=m.watch, args=(stop,), kwargs={"workers": 3})
        for m in (sources, machine_b)
    ]
    for w in watchers:
        w.start()
    try:
        for _ in range(400):
            if all(sources.get(i).polls >= 1 for i in ids):
                break
            time.sleep(0.05)
        time.sleep(0.5)  # time for a wrongly second fetch to happen
    finally:
        stop.set()
        for w in watchers:
            w.join(30)
    assert [f.hits for f in feeds] == [1] * 6
    assert [sources.get(i).polls for i in ids] == [1] * 6


def test_racing_polls_of_one_source_fetch_it_once(
    server: FeedServer, sources: Sources, machine_b: Sources
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
    barrier = threading.Barrier(2)
    busy: list[str] = []

    def poll(machine: Sources, name: str) -> None:
        barrier.wait()
        try:
            machine.poller.poll(source.id)
        except SourceBusy:
            busy.append(name)

    racers = [
        threading.Thread(target=poll, args=(m, n)) for m, n in ((sources, "a"), (machine_b, "b"))
    ]
    for r in racers:
        r.start()
    assert inside.wait(10)
    for _ in range(100):  # the loser is refused at once, while the winner's fetch hangs
        if busy:
            break
        time.sleep(0.05)
    release.set()
    for r in racers:
        r.join(10)
    assert len(busy) == 1
    assert feed.hits == 1 and sources.get(source.id).polls == 1


def test_a_machine_that_dies_holding_a_lease_is_taken_over_by_another(
    server: FeedServer, sources: Sources, machine_b: Sources
) -> None:
    pages, source, doomed = dying_poller(server, sources, 5.0)
    with pytest.raises(Died):
        doomed.poll(source.id)
    assert machine_b.get(source.id).lease_owner == doomed.owner  # never released
    with pytest.raises(SourceBusy):
        machine_b.poller.poll(source.id)
    while machine_b.get(source.id).lease_until > time.time():  # Redis expires the lease
        time.sleep(0.1)
    record = machine_b.poll(source.id).record
    # The first batch (16) was stored by the dead machine: its pages answer 304 to the
    # other machine, which read their ETags from Redis.
    assert (record.items_unchanged, record.items_new) == (16, 4)
    assert sum(p.not_modified_hits for p in pages) == 16
    assert machine_b.get(source.id).lease_owner is None


def test_conditional_get_state_is_shared_between_machines(
    server: FeedServer, sources: Sources, machine_b: Sources
) -> None:
    page = server.add("/a", body=article_html("A", paragraphs("a")), etag='"p1"')
    feed = server.add(
        "/f",
        body=rss("F", [{"title": "A", "link": server.url("/a")}]),
        content_type="application/rss+xml",
        etag='"f1"',
    )
    source = sources.add(server.url("/f"))
    assert sources.poll(source.id).record.items_new == 1
    assert stored(sources, server.url("/a")) is not None
    second = machine_b.poll(source.id)  # the feed's ETag came from machine A's poll
    assert second.record.not_modified and feed.not_modified_hits == 1
    feed.etag = '"f2"'
    third = machine_b.poll(source.id)  # and the page's too
    assert third.record.items_unchanged == 1 and page.not_modified_hits == 1
    assert page.hits == 2 and machine_b.get(source.id).polls == 3


# ---- what the CLI and the API show ---------------------------------------------------


def test_the_cli_on_two_machines_shares_one_list(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import service.cli
    from tests.conftest import HashingEmbedder

    monkeypatch.setenv("NEWSDESK_REDIS_URL", redis_url)
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    runner = CliRunner()

    def on(machine: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / machine))
        result = runner.invoke(service.cli.app, list(args))
        return result.exit_code, result.stdout, result.stderr

    assert on("a", "sources", "add", "https://example.com/feed.rss", "--every", "1h")[0] == 0
    code, out, _ = on("b", "sources", "list", "--json")
    (source,) = json.loads(out)
    assert code == 0 and source["url"] == "https://example.com/feed.rss"
    code, _, err = on("b", "sources", "add", "https://example.com/feed.rss")
    assert code == 1 and "already followed" in err

    monkeypatch.setenv("NEWSDESK_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, out, err = on("a", "sources", "list")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "Redis" in err and "Traceback" not in err


def test_the_api_answers_503_when_redis_is_unreachable(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    from fastapi.testclient import TestClient

    from service.api import create_app

    newsdesk = make_newsdesk(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(newsdesk=newsdesk), raise_server_exceptions=False) as client:
        response = client.get("/v1/sources")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
