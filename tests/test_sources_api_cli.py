"""Sources through the surfaces people use: /v1/sources over HTTP and the `newsdesk
sources`, `newsdesk watch` and `newsdesk ingest URL` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import service.cli
from service.api import create_app
from service.context import Newsdesk
from tests.conftest import HashingEmbedder
from tests.feed_server import FeedServer, article_html, feed_server, rss
from vectorstore.sources.identity import url_article_id

FAST_ENV = {
    "NEWSDESK_SOURCES_ALLOW_PRIVATE": "true",
    "NEWSDESK_SOURCES_HOST_INTERVAL": "0",
    "NEWSDESK_SOURCES_READ_TIMEOUT": "1",
    "NEWSDESK_SOURCES_TOTAL_TIMEOUT": "3",
}
TEXT = [
    "The ferry service between the two islands resumes on Friday after storm repairs.",
    "Operators said the timetable will be reduced for the first two weeks of service.",
]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as srv:
        srv.add("/story", body=article_html("Ferry resumes", TEXT, site_name="Island News"))
        srv.add(
            "/feed.rss",
            body=rss("Island feed", [{"title": "Ferry resumes", "link": srv.url("/story")}]),
            content_type="application/rss+xml",
        )
        yield srv


@pytest.fixture
def api(newsdesk: Newsdesk) -> Iterator[TestClient]:
    newsdesk.settings.sources_host_interval = 0.0
    newsdesk.settings.sources_allow_private = True  # the test servers are on 127.0.0.1
    with TestClient(create_app(newsdesk=newsdesk), raise_server_exceptions=False) as c:
        yield c


def test_follow_list_poll_search_and_unfollow_over_http(
    api: TestClient, server: FeedServer
) -> None:
    created = api.post("/v1/sources", json={"url": server.url("/feed.rss"), "every": "30m"})
    assert created.status_code == 201, created.text
    source = created.json()
    assert created.headers["location"] == f"/v1/sources/{source['id']}"
    assert source["every_seconds"] == 1800 and source["kind"] is None

    polled = api.post(f"/v1/sources/{source['id']}/poll")
    assert polled.status_code == 200, polled.text
    assert polled.json()["ok"] and polled.json()["items_new"] == 1

    listed = api.get("/v1/sources").json()["sources"]
    assert [s["id"] for s in listed] == [source["id"]]
    assert listed[0]["kind"] == "feed" and listed[0]["name"] == "Island feed"
    assert listed[0]["last_success_at"] and listed[0]["last_poll"]["items_new"] == 1

    hits = api.post("/v1/search", json={"query": "ferry timetable reduced", "top_k": 3}).json()
    assert hits[0]["article_id"] == url_article_id(server.url("/story"))
    article = api.get(f"/v1/articles/{hits[0]['article_id']}").json()
    assert article["url"] == server.url("/story") and article["source"] == "Island News"

    assert api.delete(f"/v1/sources/{source['id']}").status_code == 204
    assert api.get("/v1/sources").json()["sources"] == []
    # The articles it brought stay.
    assert api.get(f"/v1/articles/{hits[0]['article_id']}").status_code == 200


def test_a_failed_poll_is_reported_on_the_source(api: TestClient, server: FeedServer) -> None:
    server.add("/gone", status=410)
    sid = api.post("/v1/sources", json={"url": server.url("/gone")}).json()["id"]
    polled = api.post(f"/v1/sources/{sid}/poll").json()
    assert polled["ok"] is False and polled["error_code"] == "http_410"
    shown = api.get(f"/v1/sources/{sid}").json()
    assert shown["last_error_code"] == "http_410" and shown["consecutive_failures"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        # What the schema states is a 422 (FastAPI's validation) ...
        ({"url": "ftp://example.com/feed"}, 422, "invalid_request"),
        ({"url": "not a url"}, 422, "invalid_request"),
        ({"url": "https://example.com/feed", "every": "soon"}, 422, "invalid_request"),
        ({"every": "15m"}, 422, "invalid_request"),
        # ... and what only the service can check a 400.
        ({"url": "https://example.com/feed", "every": "1s"}, 400, "invalid_request"),
        ({"url": "https://example.com/feed", "every": "90d"}, 400, "invalid_request"),
        ({"url": "https://example.com:99999/feed"}, 400, "invalid_request"),
    ],
)
def test_bad_sources_are_4xx_with_the_error_shape(
    api: TestClient, body: dict, status: int, code: str
) -> None:
    response = api.post("/v1/sources", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_duplicates_and_unknown_ids(api: TestClient) -> None:
    first = api.post("/v1/sources", json={"url": "https://Example.com/feed?utm_source=x"})
    assert first.status_code == 201
    again = api.post("/v1/sources", json={"url": "https://example.com/feed#top"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "source_exists"
    for method, path in (
        ("GET", "/v1/sources/nope"),
        ("DELETE", "/v1/sources/nope"),
        ("POST", "/v1/sources/nope/poll"),
    ):
        response = api.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "nothing_found"


def test_a_source_being_polled_elsewhere_is_a_409(api: TestClient) -> None:
    sid = api.post("/v1/sources", json={"url": "https://example.com/feed"}).json()["id"]
    sources = api.app.state.sources  # type: ignore[attr-defined]
    assert sources.registry.claim(sid, "another-process", 60)
    response = api.post(f"/v1/sources/{sid}/poll")
    assert response.status_code == 409 and response.json()["error"]["code"] == "source_busy"
    assert api.get(f"/v1/sources/{sid}").json()["polling"] is True


# ---- command line -------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / "data"))
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(service.cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.usefixtures("cli")
def test_sources_commands(server: FeedServer) -> None:
    code, out, _ = run("sources", "add", server.url("/feed.rss"), "--every", "1h", "--name", "Isl")
    assert code == 0 and "every 1h" in out
    code, out, _ = run("sources", "list", "--json")
    (source,) = json.loads(out)
    assert source["name"] == "Isl" and source["kind"] is None
    code, out, _ = run("sources", "poll", source["id"])
    assert code == 0 and "1 new" in out
    code, out, _ = run("sources", "list")
    assert "feed" in out and "1 new" in out and "last ok" in out
    code, out, _ = run("articles", "--json")
    assert url_article_id(server.url("/story")) in out
    code, _, err = run("sources", "add", server.url("/feed.rss"))
    assert code == 1 and "already followed" in err
    assert run("sources", "remove", source["id"])[0] == 0
    code, _, err = run("sources", "remove", source["id"])
    assert code == 1 and "no source" in err


@pytest.mark.usefixtures("cli")
def test_sources_poll_exits_nonzero_when_a_source_fails(server: FeedServer) -> None:
    server.add("/broken", status=500)
    run("sources", "add", server.url("/broken"))
    run("sources", "add", server.url("/feed.rss"))
    code, out, _ = run("sources", "poll")
    assert code == 1
    assert "failed (http_500)" in out and "1 new" in out  # the good one still polled


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize(
    "args", [["add", "gopher://x"], ["add", "https://x.org/f", "--every", "x"]]
)
def test_sources_bad_input_is_one_line(args: list[str]) -> None:
    code, _, err = run("sources", *args)
    assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1


@pytest.mark.usefixtures("cli")
def test_ingest_takes_a_page_url(server: FeedServer) -> None:
    code, out, err = run("ingest", server.url("/story?utm_source=newsletter"), "--json")
    assert code == 0, err
    assert json.loads(out)["added"] == 1
    code, out, _ = run("article", url_article_id(server.url("/story")), "--json")
    assert code == 0 and json.loads(out)["url"] == server.url("/story")


@pytest.mark.usefixtures("cli")
def test_ingest_takes_a_feed_url_and_a_feed_file(server: FeedServer, tmp_path: Path) -> None:
    code, out, err = run("ingest", server.url("/feed.rss"), "--json")
    assert code == 0, err
    assert json.loads(out)["added"] == 1
    saved = tmp_path / "saved.rss"
    saved.write_bytes(server.routes["/feed.rss"].body)
    code, out, err = run("ingest", str(saved), "--json")
    assert code == 0, err
    assert json.loads(out)["unchanged"] == 1


@pytest.mark.usefixtures("cli")
def test_ingest_url_errors_name_the_url(server: FeedServer) -> None:
    code, out, err = run("ingest", server.url("/nothing-here"), "--json")
    assert code == 1
    (error,) = json.loads(out)["errors"]
    assert error["origin"] == server.url("/nothing-here") and "404" in error["reason"]
    code, _, err = run("ingest", "--api", "http://127.0.0.1:9", server.url("/story"))
    assert code == 1 and "--api" in err
