"""Stories through every surface: the HTTP API (and a chat question naming a story, sent
with the openai SDK), the command line (typer's CliRunner) and Slack's /stories and
/brief (signed slash commands shaped as Slack sends them).

Three constructed stories: a market shelling in Dovra covered by three outlets (two giving
different death tolls), a shelling in Velka six weeks later covered by two, and a bridge
reopening two hours ago covered by two."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import service.cli
from service.api import create_app
from service.context import Newsdesk
from service.settings import Settings
from service.slack import build_app, mount_slack
from tests.conftest import HashingEmbedder
from tests.slack_helpers import (
    BOT_TOKEN,
    SIGNING_SECRET,
    USER,
    SlackStub,
    command_body,
    signature_headers,
)
from tests.test_story_coverage import HERALD, SHORT_REPORTS, market_story
from vectorstore.ingest import Article, make_article

RECENT = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0).isoformat()


def articles() -> list[Article]:
    # The Dovra reports are tests/test_story_coverage.py's market story, its copy and the
    # next day's chess article left out.
    dovra = [a for a in market_story() if a.id in STORIES["dovra"]]
    return [
        *dovra,
        make_article(
            "Velka market hit by rockets\n\nRockets hit the fish market in Velka on Tuesday "
            "morning, destroying stalls along the Velka harbour front, the port authority said.",
            article_id="velka-gazette",
            source="Gazette",
            published_at="2024-04-23T08:00:00+00:00",
        ),
        make_article(
            "Rockets strike Velka fish market\n\nTraders in Velka counted the damage after "
            "rockets hit the harbour fish market on Tuesday, the Velka port authority said.",
            article_id="velka-chronicle",
            source="Chronicle",
            published_at="2024-04-23T11:00:00+00:00",
        ),
        make_article(
            "Ostrava harbour bridge reopens\n\nThe Ostrava harbour bridge reopened to traffic "
            "after a two-year repair, the city council of Ostrava said on Friday.",
            article_id="bridge-tribune",
            source="Tribune",
            published_at=RECENT,
        ),
        make_article(
            "Ostrava bridge open again\n\nDrivers crossed the Ostrava harbour bridge again on "
            "Friday after the city council of Ostrava ended a two-year repair.",
            article_id="bridge-herald",
            source="Herald",
            published_at=RECENT,
        ),
    ]


STORIES = {
    "dovra": ["gazette", "herald", "tribune"],
    "velka": ["velka-gazette", "velka-chronicle"],
    "bridge": ["bridge-tribune", "bridge-herald"],
}


def settings_for(data: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data,
        "chroma_host": None,
        "llm_base_url": None,
        "llm_api_key": None,
        "index_check_seconds": 0.0,
        **SHORT_REPORTS,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[arg-type]


def ingest(data: Path) -> dict[str, str]:
    """The articles stored in ``data``; the story id of each constructed story."""
    nd = Newsdesk(settings_for(data), embedder=HashingEmbedder())  # type: ignore[arg-type]
    nd.indexer.index(articles())
    of = nd.store.story_ids_of([a for ids in STORIES.values() for a in ids])
    ids = {name: {of[a] for a in members} for name, members in STORIES.items()}
    # What every test stands on: clustering made exactly these three stories.
    assert all(len(v) == 1 for v in ids.values()) and len(set.union(*ids.values())) == 3, ids
    nd.store.close()
    return {name: next(iter(v)) for name, v in ids.items()}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    data = tmp_path_factory.mktemp("stories")
    return data, ingest(data)


@pytest.fixture
def ids(stored: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return stored[1]


@pytest.fixture
def api(stored: tuple[Path, dict[str, str]]) -> Iterator[TestClient]:
    nd = Newsdesk(settings_for(stored[0]), embedder=HashingEmbedder())  # type: ignore[arg-type]
    with TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as client:
        yield client


def listed(api: TestClient, query: str = "") -> list[str]:
    r = api.get(f"/v1/stories{query}")
    assert r.status_code == 200, r.text
    return [s["id"] for s in r.json()["stories"]]


def error(r: Any, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return str(body["error"]["message"])


# ---- HTTP API -------------------------------------------------------------------------------


def test_stories_are_listed_most_recently_seen_first(api: TestClient, ids: dict[str, str]) -> None:
    r = api.get("/v1/stories")
    stories = r.json()["stories"]
    assert [s["id"] for s in stories] == [ids["bridge"], ids["velka"], ids["dovra"]]
    dovra = stories[2]
    assert dovra["outlets"] == ["Gazette", "Herald", "Tribune"] and dovra["outlets_count"] == 3
    assert (dovra["first_seen"], dovra["last_seen"]) == (
        "2024-03-09T10:00:00+00:00",
        "2024-03-09T15:00:00+00:00",
    )
    assert listed(api, "?limit=1") == [ids["bridge"]]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?since=24h", ["bridge"]),
        ("?since=90m", []),
        ("?until=2024-03-31", ["dovra"]),
        ("?until=2024-03-09", ["dovra"]),  # a bare date: by the end of that day
        ("?since=2024-04-01&until=2024-04-30", ["velka"]),
        ("?outlet=chronicle", ["velka"]),
        ("?outlet=CHRONICLE&outlet=tribune", ["bridge", "velka", "dovra"]),
        ("?min_outlets=3", ["dovra"]),
        ("?q=Velka%20rockets", ["velka"]),
        ("?q=zeppelin", []),
    ],
)
def test_stories_filters(
    api: TestClient, ids: dict[str, str], query: str, expected: list[str]
) -> None:
    assert listed(api, query) == [ids[name] for name in expected]


def test_bad_story_filters_are_errors_not_empty_lists(api: TestClient) -> None:
    message = error(api.get("/v1/stories?outlet=Reuter"), 400, "invalid_request")
    assert "unknown source(s): 'Reuter'" in message and "Chronicle" in message
    message = error(api.get("/v1/stories?since=yesterday"), 422, "invalid_request")
    assert message.startswith("since:")
    error(api.get("/v1/stories?min_outlets=0"), 422, "invalid_request")


def test_a_story_in_detail(api: TestClient, ids: dict[str, str]) -> None:
    r = api.get(f"/v1/stories/{ids['dovra']}")
    assert r.status_code == 200
    story = r.json()
    assert story["id"] == ids["dovra"] and story["title"] == "Dovra market shelled"
    assert [g["outlet"] for g in story["by_outlet"]] == ["Gazette", "Herald", "Tribune"]
    assert [t["article_id"] for t in story["timeline"]] == ["gazette", "herald", "tribune"]
    quotes = {c["n"]: c["quote"] for c in story["citations"]}
    assert quotes[story["timeline"][1]["citations"][0]] == HERALD
    assert [row["outlet"] for row in story["coverage"]["outlets"]] == [
        "Gazette",
        "Herald",
        "Tribune",
    ]


def test_an_unknown_story_is_a_404(api: TestClient) -> None:
    message = error(api.get("/v1/stories/story-0000"), 404, "unknown_story")
    assert "story-0000" in message
    error(api.post("/v1/stories/story-0000/summary", json={}), 404, "unknown_story")
    error(api.post("/v1/stories/story-0000/briefing", json={}), 404, "unknown_story")


def test_story_summary_and_briefing(api: TestClient, ids: dict[str, str]) -> None:
    r = api.post(f"/v1/stories/{ids['dovra']}/summary", json={})
    assert r.status_code == 200
    summary = r.json()
    assert summary["story_id"] == ids["dovra"] and summary["outlets_not_cited"] == []
    assert {c["article_id"] for c in summary["citations"]} == set(STORIES["dovra"])
    assert [d["topic"] for d in summary["differences"]] == ["figures for “people”"]
    r = api.post(f"/v1/stories/{ids['dovra']}/briefing", json={"format": "markdown"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert r.text.startswith("# Briefing: Dovra market shelled")
    assert "## Where sources differ\n- **figures for “people”**" in r.text
    error(
        api.post(f"/v1/stories/{ids['dovra']}/summary", json={"topic": "x"}), 422, "invalid_request"
    )


def test_a_chat_question_naming_a_story_is_answered_from_it(
    api: TestClient, ids: dict[str, str]
) -> None:
    client = openai.OpenAI(
        base_url=f"{api.base_url}/v1", api_key="unused", http_client=api, max_retries=0
    )
    reply = client.chat.completions.create(
        model="newsdesk",
        messages=[{"role": "user", "content": f"What do outlets say about story {ids['velka']}?"}],
    )
    cited = {c["article_id"] for c in reply.model_extra["citations"]}  # type: ignore[index]
    assert cited and cited <= set(STORIES["velka"])


# ---- command line ---------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(stored: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(stored[0]))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(service.cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.usefixtures("cli")
def test_cli_lists_stories(ids: dict[str, str]) -> None:
    code, out, _ = run("stories", "--since", "2024-04-01", "--json")
    assert code == 0
    assert [s["id"] for s in json.loads(out)["stories"]] == [ids["bridge"], ids["velka"]]
    code, out, _ = run("stories", "--min-outlets", "3")
    assert code == 0
    # A table for people (cells wrap at the terminal's width; ids never do).
    assert ids["dovra"] in out and "Dovra" in out and ids["velka"] not in out


@pytest.mark.usefixtures("cli")
def test_cli_shows_a_story_and_its_summary(ids: dict[str, str]) -> None:
    code, out, _ = run("story", ids["dovra"], "--json")
    assert code == 0 and json.loads(out)["outlets_count"] == 3
    code, out, _ = run("story", ids["dovra"])
    assert code == 0
    for heading in ("Articles by outlet", "Timeline", "Coverage and framing"):
        assert heading in out
    code, out, _ = run("story", ids["dovra"], "--summary")
    assert code == 0 and out.startswith("# Summary: Dovra market shelled")
    assert "figures for “people”" in out


@pytest.mark.usefixtures("cli")
@pytest.mark.parametrize(
    "args, line",
    [
        (["story", "story-0000"], "error: unknown story id: story-0000"),
        (
            ["stories", "--since", "yesterday"],
            "error: --since must be an ISO 8601 date or a time ago such as 24h or 7d, "
            "got 'yesterday'",
        ),
        (["story", "split", "story-0000"], "error: usage: newsdesk story split ID ARTICLE..."),
    ],
)
def test_cli_errors_are_one_line(args: list[str], line: str) -> None:
    code, out, err = run(*args)
    assert code == 1 and out == ""
    assert err.strip() == line


def test_cli_splits_a_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = ingest(tmp_path / "data")
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    code, out, _ = run("story", "split", ids["dovra"], "tribune", "--json")
    assert code == 0
    new = json.loads(out)["id"]
    assert new != ids["dovra"] and json.loads(out)["outlets"] == ["Tribune"]
    code, out, _ = run("story", ids["dovra"], "--json")
    story = json.loads(out)
    assert story["outlets"] == ["Gazette", "Herald"]
    assert [(e["kind"], e["story_ids"]) for e in story["events"]] == [
        ("split", [ids["dovra"], new])
    ]
    code, _, err = run("story", "split", ids["dovra"], "velka-gazette")
    assert code == 1 and "velka-gazette" in err


def test_cli_places_articles_that_have_no_story(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ingest(tmp_path / "data")
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / "data"))
    for name, value in SHORT_REPORTS.items():  # the writers' story settings
        monkeypatch.setenv(f"NEWSDESK_{name.upper()}", str(value))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    # A later report of the Velka attack whose writer died before placing it.
    velka = next(a for a in articles() if a.id == "velka-gazette")
    late = make_article(
        velka.text + " Repairs began on Wednesday.",
        article_id="velka-late",
        source="Latecomer",
        published_at=velka.published_at,
    )
    nd = Newsdesk(settings_for(tmp_path / "data"), embedder=HashingEmbedder())  # type: ignore[arg-type]
    monkeypatch.setattr(nd.store, "_assign_stories", lambda *args: None)
    nd.indexer.index([late])
    nd.store.close()
    code, out, _ = run("story", "place", "--json")
    assert code == 0 and json.loads(out) == {"placed": 1}
    code, out, _ = run("story", ids["velka"], "--json")
    assert "Latecomer" in json.loads(out)["outlets"]
    code, out, _ = run("story", "place")
    assert code == 0 and out.strip() == "placed 0 article(s) without a story"
    code, _, err = run("story", "place", ids["dovra"])
    assert code == 1 and err.strip().endswith("`story place` takes none")


# ---- Slack ----------------------------------------------------------------------------------


@pytest.fixture
def slack(stored: tuple[Path, dict[str, str]]) -> Iterator[tuple[TestClient, SlackStub, Any]]:
    stub = SlackStub().start()
    settings = settings_for(
        stored[0], slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET
    )
    nd = Newsdesk(settings, embedder=HashingEmbedder())  # type: ignore[arg-type]
    executor = ThreadPoolExecutor(max_workers=2)
    app = FastAPI()
    mount_slack(app, nd, bolt_app=build_app(nd, client=stub.client(), executor=executor))
    yield TestClient(app), stub, executor
    executor.shutdown(wait=True)
    stub.stop()


def command(slack: tuple[TestClient, SlackStub, Any], name: str, text: str) -> dict[str, Any]:
    """Send a signed slash command; the one reply posted to its response_url."""
    http, stub, executor = slack
    body = command_body(name, text, stub.response_url())
    r = http.post(
        "/slack/commands",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **signature_headers(body)},
    )
    assert r.status_code == 200
    executor.shutdown(wait=True)
    [reply] = stub.to("response_url")
    return reply


def texts(blocks: list[dict[str, Any]]) -> str:
    out = []
    for b in blocks:
        if b["type"] == "section":
            out.append(b["text"]["text"])
        elif b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return "\n".join(out)


def test_slack_stories_lists_recent_stories_with_outlet_counts(
    slack: tuple[TestClient, SlackStub, Any], ids: dict[str, str]
) -> None:
    reply = command(slack, "/stories", "")
    assert reply["response_type"] == "in_channel"
    shown = texts(reply["blocks"])
    assert shown.startswith(f"<@{USER}> asked for the stories\n*Recent stories*")
    lines = [line for line in shown.splitlines() if line.startswith("•")]
    assert [line.rsplit("`", 2)[1] for line in lines] == [
        ids["bridge"],
        ids["velka"],
        ids["dovra"],
    ]
    assert "*Dovra market shelled* — 3 outlets (Gazette, Herald, Tribune), 3 articles" in lines[2]


def test_slack_stories_takes_words_to_match(
    slack: tuple[TestClient, SlackStub, Any], ids: dict[str, str]
) -> None:
    shown = texts(command(slack, "/stories", "Velka rockets")["blocks"])
    assert ids["velka"] in shown and ids["dovra"] not in shown and ids["bridge"] not in shown


def test_slack_brief_on_a_story(
    slack: tuple[TestClient, SlackStub, Any], ids: dict[str, str]
) -> None:
    reply = command(slack, "/brief", f"story:{ids['dovra']}")
    assert reply["response_type"] == "in_channel"
    shown = texts(reply["blocks"])
    assert shown.startswith(f"<@{USER}> asked for a briefing on: story:{ids['dovra']}")
    assert "*Briefing: Dovra market shelled*" in shown
    assert "figures for “people”" in shown


def test_slack_brief_on_an_unknown_story_tells_only_the_asker(
    slack: tuple[TestClient, SlackStub, Any],
) -> None:
    reply = command(slack, "/brief", "story-0000")
    assert reply["response_type"] == "ephemeral"
    assert texts(reply["blocks"]).startswith(":mag: There is no story `story-0000`")


def test_a_story_as_markdown(api: TestClient, ids: dict[str, str]) -> None:
    r = api.get(f"/v1/stories/{ids['dovra']}?format=markdown")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    md = r.text.splitlines()
    assert md[0] == "# Dovra market shelled"
    table = md[md.index("## Coverage and framing") + 2 :][:5]
    assert table[0].startswith("| Outlet | Articles | First covered | Quoted |")
    assert [row.split(" | ")[0] for row in table[2:]] == ["| Gazette", "| Herald", "| Tribune"]
    timeline = md[md.index("## Timeline") + 1 :][:3]
    assert timeline[1] == f"- **2024-03-09T12:00:00+00:00** — Herald reports: “{HERALD}” [2]"
