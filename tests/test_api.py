"""The HTTP API: every route's happy path, streaming, auth, limits and error shapes."""

from __future__ import annotations

import json

import httpx
import openai
import openai._base_client
import pytest
import respx
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api import create_app
from service.context import Newsdesk
from tests.conftest import SEEDS, HashingEmbedder
from tests.llm_mock import BASE_URL, CHAT_URL
from vectorstore.ingest import read_paths
from vectorstore.store import ChromaStore, StoreUnavailable
from vectorstore.timing import parse_server_timing

QUESTION = "How many individuals were fleeing their homes?"


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text
    return body


# ---- happy paths ----------------------------------------------------------------------


def test_ask_returns_verified_citations(client: TestClient, nd: Newsdesk) -> None:
    r = client.post("/v1/ask", json={"question": QUESTION, "top_k": 5})
    assert r.status_code == 200 and r.headers["x-request-id"]
    data = r.json()
    assert data["engine"] == "extractive" and not data["refused"]
    for c in data["citations"]:
        text = client.get(f"/v1/articles/{c['article_id']}").json()["text"]
        assert text[c["start"] : c["end"]] == c["quote"]


def test_request_id_is_echoed(client: TestClient) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_each_response_says_where_its_time_went(client: TestClient) -> None:
    r = client.post("/v1/ask", json={"question": "How many people fled the fighting?"})
    took = parse_server_timing(r.headers["server-timing"])
    steps = ("embed", "dense", "keyword", "articles", "engine")
    assert set(steps) <= took.keys()
    # They run one after another inside the request (each rounded to 0.1 ms).
    assert sum(took[name] for name in steps) <= took["app"] + 0.1 * len(steps)
    # Each request has its own record: nothing of the answer's stages leaks into the next.
    assert parse_server_timing(client.get("/healthz").headers["server-timing"]).keys() == {"app"}


def test_summaries_and_briefings(client: TestClient) -> None:
    s = client.post("/v1/summaries", json={"topic": "Kursk", "max_words": 120})
    assert s.status_code == 200 and s.json()["points"] and s.json()["balance"]
    b = client.post("/v1/briefings", json={"topic": "Kursk", "format": "json"})
    assert b.status_code == 200 and {
        "bottom_line",
        "developments",
        "perspectives",
        "differences",
        "open_questions",
        "sources",
    } <= set(b.json())
    md = client.post("/v1/briefings", json={"topic": "Kursk", "format": "markdown"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# Briefing: Kursk")


def test_article_lifecycle_and_immediate_answers(client: TestClient) -> None:
    body = {
        "text": "The Zorbian parliament voted 212 to 9 to ban glitter on Tuesday.",
        "title": "Glitter ban",
        "source": "Zorb Daily",
        "published_at": "2025-01-07",
        "id": "zorb-1",
    }
    r = client.post("/v1/articles", json=body)
    assert r.status_code == 201 and r.json()["added"] == 1
    assert client.post("/v1/articles", json=body).status_code == 200  # unchanged
    a = client.post("/v1/ask", json={"question": "How did the Zorbian parliament vote on glitter?"})
    assert a.json()["citations"][0]["article_id"] == "zorb-1"
    got = client.get("/v1/articles/zorb-1").json()
    assert got["source"] == "Zorb Daily" and got["published_at"] == "2025-01-07"
    span = client.get("/v1/articles/zorb-1/spans", params={"start": 4, "end": 11}).json()
    assert span["text"] == "Zorbian" and span["before"] == "The "
    listing = client.get("/v1/articles", params={"source": "Zorb Daily"}).json()
    assert [i["id"] for i in listing["items"]] == ["zorb-1"] and listing["total"] == 1
    assert client.get("/v1/articles", params={"limit": 2}).json()["total"] == 4
    assert client.delete("/v1/articles/zorb-1").status_code == 204
    assert_error(client.get("/v1/articles/zorb-1"), 404, "not_found")
    assert_error(client.delete("/v1/articles/zorb-1"), 404, "not_found")


def test_file_upload(client: TestClient) -> None:
    files = {"file": ("story.md", b"# Flood\n\nThe river Oona flooded 40 homes.", "text/markdown")}
    r = client.post("/v1/articles", files=files)
    assert r.status_code == 201 and r.json()["added"] == 1
    bad = client.post("/v1/articles", files={"file": ("x.exe", b"MZ", "application/octet-stream")})
    assert_error(bad, 415, "unsupported_media_type")
    empty = client.post("/v1/articles", files={"file": ("e.txt", b"", "text/plain")})
    assert_error(empty, 422, "invalid_article")


def test_health_ready_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["llm"] == "not configured"
    client.post("/v1/ask", json={"question": QUESTION})
    metrics = client.get("/metrics").text
    assert 'newsdesk_http_requests_total{method="POST",route="/v1/ask",status="200"} 1.0' in metrics
    assert "newsdesk_citations_total" in metrics and "newsdesk_llm_tokens_total" in metrics
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/ask",
        "/v1/chat/completions",
        "/v1/summaries",
        "/v1/briefings",
        "/v1/articles",
        "/v1/articles/{article_id}",
        "/v1/articles/{article_id}/spans",
    ):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200


# ---- OpenAI compatibility --------------------------------------------------------------


def test_chat_completions_with_the_official_openai_client(client: TestClient) -> None:
    oa = openai.OpenAI(base_url=str(client.base_url) + "/v1", api_key="unused", http_client=client)
    completion = oa.chat.completions.create(
        model="newsdesk",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}],
    )
    assert "121,000" in completion.choices[0].message.content
    extra = completion.model_extra or {}
    assert extra["citations"] and extra["newsdesk"]["engine"] == "extractive"

    stream = oa.chat.completions.create(
        model="newsdesk", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    pieces, final = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason == "stop":
            final = chunk
    assert "".join(pieces) == completion.choices[0].message.content
    assert final is not None and (final.model_extra or {})["citations"]


def test_stream_is_server_sent_events_ending_with_done(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}], "stream": True},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in r.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"]


def test_chat_follow_up_uses_the_history(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "messages": [
                {"role": "user", "content": "What did General Gerasimov reveal?"},
                {"role": "assistant", "content": "He revealed a capture. [1]"},
                {"role": "user", "content": "and how many troops?"},
            ]
        },
    )
    assert r.status_code == 200
    assert any("400" in c["quote"] for c in r.json()["citations"])


def test_chat_needs_a_final_user_message(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]}
    )
    assert_error(r, 400, "invalid_request")


# ---- auth, limits, errors ----------------------------------------------------------------


def test_api_keys_guard_v1_but_not_health(nd: Newsdesk) -> None:
    nd.settings.api_keys = [SecretStr("k-one"), SecretStr("k-two")]
    with TestClient(create_app(newsdesk=nd)) as c:
        assert c.get("/healthz").status_code == 200
        assert_error(c.get("/v1/articles"), 401, "unauthorized")
        assert_error(
            c.get("/v1/articles", headers={"Authorization": "Bearer nope"}), 401, "unauthorized"
        )
        r = c.get("/v1/articles", headers={"Authorization": "Bearer k-two"})
        assert r.status_code == 200


def test_rate_limit_gives_429_with_retry_after(nd: Newsdesk) -> None:
    nd.settings.rate_limit = "2/minute"
    with TestClient(create_app(newsdesk=nd)) as c:
        assert c.get("/v1/articles").status_code == 200
        assert c.get("/v1/articles").status_code == 200
        r = c.get("/v1/articles")
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"question": ""}, 422, "invalid_request"),
        ({"question": "   "}, 422, "invalid_request"),
        ({"question": "x" * 2001}, 422, "invalid_request"),
        ({"question": "x", "top_k": 500}, 422, "invalid_request"),
        (
            {"question": "x", "history": [{"role": "user", "content": "q"}] * 41},
            422,
            "invalid_request",
        ),
        ({"question": "x", "filters": {"article_ids": ["missing"]}}, 400, "unknown_article"),
        ({"question": "x", "filters": {"published_after": "soon"}}, 422, "invalid_request"),
        ({"question": "x", "surprise": 1}, 422, "invalid_request"),
    ],
)
def test_bad_ask_requests(client: TestClient, body: dict, status: int, code: str) -> None:
    assert_error(client.post("/v1/ask", json=body), status, code)


def test_oversized_body_is_413(nd: Newsdesk) -> None:
    nd.settings.max_body_bytes = 1000
    with TestClient(create_app(newsdesk=nd)) as c:
        r = c.post("/v1/articles", json={"text": "word " * 1000})
        assert_error(r, 413, "body_too_large")


def test_invalid_json_and_wrong_content_type(client: TestClient) -> None:
    assert_error(
        client.post("/v1/articles", content=b"{nope", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    assert_error(
        client.post("/v1/articles", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


def test_bad_span_and_unknown_summary_article(client: TestClient, nd: Newsdesk) -> None:
    aid = next(a for a, _ in nd.store.iter_article_meta())
    assert_error(
        client.get(f"/v1/articles/{aid}/spans", params={"start": 5, "end": 2}), 400, "invalid_span"
    )
    assert_error(
        client.post("/v1/summaries", json={"article_ids": ["nope"]}), 400, "unknown_article"
    )


def test_store_outage_is_503_and_recovers(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def down(*_a, **_k):  # type: ignore[no-untyped-def]
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(ChromaStore, "get_article", down)
    aid = "e064d63275ef0870"
    assert_error(client.get(f"/v1/articles/{aid}"), 503, "store_unavailable")
    monkeypatch.undo()
    assert client.get(f"/v1/articles/{aid}").status_code == 200


def test_unexpected_errors_are_json_without_internals(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def boom(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ChromaStore, "iter_article_meta", boom)
    r = client.get("/v1/articles")
    body = assert_error(r, 500, "internal_error")
    assert "secret internal detail" not in json.dumps(body)


def test_llm_outage_is_503_when_no_fallback(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(openai._base_client.time, "sleep", lambda _s: None)
    s = settings.model_copy(
        update={"llm_base_url": BASE_URL, "llm_fallback": "none", "llm_max_retries": 1}
    )
    nd = Newsdesk(s, embedder=HashingEmbedder(), llm_http_client=httpx.Client())
    nd.indexer.index(read_paths([SEEDS]))
    with respx.mock(assert_all_called=False) as router, TestClient(create_app(newsdesk=nd)) as c:
        router.post(CHAT_URL).mock(side_effect=httpx.ConnectError("refused"))
        router.get(f"{BASE_URL}/models").mock(side_effect=httpx.ConnectError("refused"))
        assert_error(c.post("/v1/ask", json={"question": QUESTION}), 503, "llm_unavailable")
        assert c.get("/readyz").status_code == 503
        router.post(CHAT_URL).mock(return_value=httpx.Response(401, json={"error": {}}))
        assert_error(c.post("/v1/ask", json={"question": QUESTION}), 502, "llm_auth")
        assert c.get("/healthz").status_code == 200
