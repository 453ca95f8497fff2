"""POST /v1/search, outlet names in filters, and Markdown uploads' titles, through the API
as an HTTP client sees them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

import service.cli
from service.api import create_app
from service.context import Newsdesk

QUERY = "How many individuals were fleeing their homes?"
OUTLETS = [
    {
        "id": "ardo-1",
        "text": "Flood in Ardo\n\nThe river Oona flooded 40 homes in Ardo on Monday night.",
        "source": "Ardo Gazette",
        "published_at": "2024-08-12",
    },
    {
        "id": "ardo-2",
        "text": "Ardo floods again\n\nThe river Oona flooded 12 more homes in Ardo on Friday.",
        "source": "Oona Herald",
        "published_at": "2024-08-16",
    },
]


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return str(body["error"]["message"])


@pytest.fixture
def outlets(client: TestClient) -> TestClient:
    for article in OUTLETS:
        assert client.post("/v1/articles", json=article).status_code == 201
    return client


def test_search_returns_exact_spans_in_the_cli_json_shape(
    client: TestClient, nd: Newsdesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = client.post("/v1/search", json={"query": QUERY, "top_k": 4})
    assert r.status_code == 200
    rows = r.json()
    assert len(rows) == 4 and rows == sorted(rows, key=lambda row: -row["score"])
    for row in rows:
        text = client.get(f"/v1/articles/{row['article_id']}").json()["text"]
        assert text[row["start"] : row["end"]] == row["text"]
    assert any("121,000" in row["text"] for row in rows)

    # The same query through `newsdesk search --json` prints the same rows.
    monkeypatch.setattr(service.cli, "_newsdesk", lambda: nd)
    cli = CliRunner().invoke(service.cli.app, ["search", QUERY, "-k", "4", "--json"])
    assert cli.exit_code == 0, cli.stderr
    assert json.loads(cli.stdout) == rows


def test_search_modes_and_filters(outlets: TestClient) -> None:
    for mode in ("hybrid", "dense", "keyword"):
        rows = outlets.post("/v1/search", json={"query": "river Oona flooded", "mode": mode}).json()
        assert {"ardo-1", "ardo-2"} <= {row["article_id"] for row in rows}
    only = outlets.post(
        "/v1/search",
        json={"query": "river Oona flooded", "filters": {"published_after": "2024-08-15"}},
    ).json()
    assert [row["article_id"] for row in only] == ["ardo-2"]
    assert only[0]["published_at"] == "2024-08-16" and only[0]["source"] == "Oona Herald"


@pytest.mark.parametrize(
    "body",
    [
        {"query": "  "},
        {"query": "x" * 2001},
        {"query": "x", "top_k": 0},
        {"query": "x", "top_k": 101},
        {"query": "x", "top_k": "5"},
        {"query": "x", "mode": "fuzzy"},
        {"query": "x", "filters": {"published_after": "yesterday"}},
        {"query": "x", "limit": 5},
        {},
    ],
)
def test_search_rejects_what_the_cli_rejects(client: TestClient, body: dict[str, Any]) -> None:
    error(client.post("/v1/search", json=body), 422, "invalid_request")


def test_search_with_an_unknown_article_id_is_an_error(client: TestClient) -> None:
    r = client.post("/v1/search", json={"query": "x", "filters": {"article_ids": ["nope"]}})
    assert "nope" in error(r, 400, "unknown_article")


def test_search_needs_a_key_when_keys_are_set(nd: Newsdesk) -> None:
    nd.settings.api_keys = [SecretStr("k-one")]
    with TestClient(create_app(newsdesk=nd)) as c:
        error(c.post("/v1/search", json={"query": QUERY}), 401, "unauthorized")
        ok = c.post("/v1/search", json={"query": QUERY}, headers={"Authorization": "Bearer k-one"})
        assert ok.status_code == 200 and ok.json()


# ---- outlet names -----------------------------------------------------------------------


def test_source_filters_match_outlets_in_any_case(outlets: TestClient) -> None:
    for name in ("ardo gazette", "ARDO GAZETTE", " Ardo  Gazette "):
        filters = {"sources": [name]}
        rows = outlets.post("/v1/search", json={"query": "river flooded", "filters": filters})
        assert {row["source"] for row in rows.json()} == {"Ardo Gazette"}
        answer = outlets.post(
            "/v1/ask", json={"question": "How many homes flooded?", "filters": filters}
        )
        assert answer.status_code == 200
        cited = answer.json()["citations"]
        assert cited and {c["article_id"] for c in cited} == {"ardo-1"}
        listing = outlets.get("/v1/articles", params={"source": name}).json()
        assert [item["id"] for item in listing["items"]] == ["ardo-1"]
    summary = outlets.post(
        "/v1/summaries", json={"filters": {"sources": ["oona herald"]}, "max_words": 50}
    )
    assert {c["article_id"] for c in summary.json()["citations"]} == {"ardo-2"}


def test_an_unknown_outlet_is_a_400_naming_the_known_ones(outlets: TestClient) -> None:
    requests = [
        outlets.post("/v1/search", json={"query": "flood", "filters": {"sources": ["Ardo Times"]}}),
        outlets.post(
            "/v1/ask", json={"question": "flood?", "filters": {"sources": ["Ardo Times"]}}
        ),
        outlets.post("/v1/summaries", json={"filters": {"sources": ["Ardo Times"]}}),
        outlets.get("/v1/articles", params={"source": "Ardo Times"}),
    ]
    for r in requests:
        message = error(r, 400, "invalid_request")
        assert message == (
            "unknown source(s): 'Ardo Times'; known sources: Ardo Gazette, Oona Herald"
        )


def test_with_no_outlets_stored_the_error_says_so(client: TestClient) -> None:
    r = client.post("/v1/search", json={"query": "x", "filters": {"sources": ["Reuters"]}})
    assert error(r, 400, "invalid_request") == (
        "unknown source(s): 'Reuters'; no stored article names its source"
    )


# ---- Markdown uploads ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, title",
    [
        ("flood.md", "# Flood in *Ardo*\n\nThe river Oona flooded 40 homes.", "Flood in Ardo"),
        ("flood.markdown", "Flood in Ardo\n=============\n\nThe river rose.", "Flood in Ardo"),
        ("deep.md", "### **Oona** rises `again` ###\n\nThe river rose.", "Oona rises again"),
        (
            "lead.md",
            "The [river](http://x) Oona flooded 40 homes. More later.",
            "The river Oona flooded 40 homes.",
        ),
        # Not Markdown: a .txt keeps its first line as written.
        ("notes.txt", "# not a heading here\n\nThe river rose.", "# not a heading here"),
    ],
)
def test_a_markdown_upload_is_titled_without_its_markup(
    client: TestClient, name: str, content: str, title: str
) -> None:
    r = client.post("/v1/articles", files={"file": (name, content.encode(), "text/markdown")})
    assert r.status_code == 201, r.text
    article = client.get(f"/v1/articles/{r.json()['article_ids'][0]}").json()
    assert article["title"] == title
    assert article["text"] == content  # citations index the file as written
