"""Security: no secret in any log line or error body, CORS off unless configured, API keys
checked against every key in constant time, and a rate-limit budget per key."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import openai._base_client
import pytest
import respx
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api import create_app
from service.api import security as api_security
from service.api.middleware import JsonLogFormatter
from service.context import Newsdesk
from service.settings import Settings
from tests.conftest import SEEDS, HashingEmbedder
from tests.hardening import QUESTION, assert_error
from tests.llm_mock import BASE_URL, CHAT_URL
from vectorstore.ingest import read_paths

API_KEY_1 = "nd-key-ONE-7f3a9c1e5b2d8f40"
API_KEY_2 = "nd-key-TWO-0c4e8a2f6b1d9e37"
LLM_KEY = "sk-llm-SECRET-93b1f0a7c5e2d864"
SLACK_SECRET = "slack-signing-SECRET-5e1d7c3b"
SECRETS = (API_KEY_1, API_KEY_2, LLM_KEY, SLACK_SECRET)


@pytest.fixture(scope="module")
def seeded_data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("security-seeded")
    s = Settings(_env_file=None, data_dir=data, llm_base_url=None, llm_api_key=None)
    Newsdesk(s, embedder=HashingEmbedder()).indexer.index(read_paths([SEEDS]))
    return data


@pytest.fixture
def make_client(settings: Settings, seeded_data):  # type: ignore[no-untyped-def]
    clients: list[TestClient] = []

    def make(llm_http_client: httpx.Client | None = None, **overrides: object) -> TestClient:
        s = settings.model_copy(update={"data_dir": seeded_data, **overrides})
        nd = Newsdesk(s, embedder=HashingEmbedder(), llm_http_client=llm_http_client)
        c = TestClient(create_app(newsdesk=nd), raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ---- secrets never logged or returned ---------------------------------------------------


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, so nothing a log line might say is hidden by its level."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    for name in ("newsdesk", "service", "vectorstore", "openai", "httpx", "httpcore", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def _echoing_llm(request: httpx.Request) -> httpx.Response:
    """An LLM server that quotes the credentials it was sent back in its error bodies."""
    sent = request.headers.get("authorization", "")
    if request.url.path.endswith("/models"):
        return httpx.Response(401, json={"error": {"message": f"Bad key {sent}"}})
    body = json.loads(request.content)
    question = body["messages"][-1]["content"]
    if "case 400" in question:
        return httpx.Response(400, json={"error": {"message": f"invalid request from {sent}"}})
    if "case 500" in question:
        return httpx.Response(500, text=f"upstream failed for {sent}")
    return httpx.Response(
        401,
        json={"error": {"message": f"Incorrect API key provided: {sent}", "code": "invalid_key"}},
    )


@pytest.mark.parametrize("fallback", ["none", "extractive"])
def test_no_secret_in_logs_or_error_bodies(
    make_client, all_logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, fallback: str
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(openai._base_client.time, "sleep", lambda _s: None)
    responses: list[httpx.Response] = []
    with respx.mock(assert_all_called=False) as router:
        router.post(CHAT_URL).mock(side_effect=_echoing_llm)
        router.get(f"{BASE_URL}/models").mock(side_effect=_echoing_llm)
        c = make_client(
            llm_http_client=httpx.Client(),
            api_keys=[SecretStr(API_KEY_1), SecretStr(API_KEY_2)],
            llm_base_url=BASE_URL,
            llm_api_key=SecretStr(LLM_KEY),
            llm_max_retries=1,
            llm_fallback=fallback,
            slack_signing_secret=SecretStr(SLACK_SECRET),
        )
        ok = bearer(API_KEY_1)
        for question in (QUESTION, f"{QUESTION} case 400", f"{QUESTION} case 500"):
            responses.append(c.post("/v1/ask", json={"question": question}, headers=ok))
            responses.append(
                c.post(
                    "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": question}], "stream": True},
                    headers=ok,
                )
            )
        responses += [
            c.get("/v1/articles", headers=bearer(API_KEY_2)),
            c.get("/v1/articles"),  # no key
            c.get("/v1/articles", headers=bearer(API_KEY_1 + "x")),  # near miss
            c.get("/v1/articles", headers=bearer(API_KEY_1[:-1])),
            c.get("/v1/articles", headers=bearer(LLM_KEY)),  # the wrong secret
            c.get("/v1/articles", headers={"Authorization": API_KEY_1}),  # no scheme
            c.get("/v1/articles", headers={"Authorization": f"Basic {API_KEY_2}"}),
            c.get("/v1/articles", params={"api_key": API_KEY_1}, headers=ok),
            c.get(f"/v1/articles/{API_KEY_2}", headers=ok),  # a key pasted into a URL
            c.post("/v1/ask", json={"question": API_KEY_1}, headers=bearer("wrong")),
            c.get("/readyz"),
            c.get("/metrics"),
            c.get("/openapi.json"),
        ]
    statuses = [r.status_code for r in responses]
    assert 401 in statuses and 200 in statuses
    if fallback == "none":
        assert 502 in statuses  # the LLM's 401 is a 502 llm_auth
    else:
        assert any(r.status_code == 200 and "fallback_reason" in r.text for r in responses)

    leaks = []
    for r in responses:
        text = r.text + json.dumps(dict(r.headers))
        leaks += [(r.request.url.path, r.status_code, s) for s in SECRETS if s in text]
    # The request for /v1/articles/{key} echoes the id the caller sent; that is theirs.
    leaks = [leak for leak in leaks if not leak[0].endswith(API_KEY_2)]
    assert not leaks, leaks

    # The test client logs the URLs it requests (one holds a key in its query string on
    # purpose); that is the caller's side, not the service's.
    records = [
        r
        for r in all_logs.records
        if not (
            r.getMessage().startswith("HTTP Request:") and "http://testserver" in r.getMessage()
        )
    ]
    formatter = JsonLogFormatter()
    lines = [formatter.format(record) for record in records]
    lines += [str(record.__dict__) for record in records]
    assert len(lines) > 10  # the capture works: access lines, LLM errors, HTTP client debug
    for secret in SECRETS:
        hits = [line for line in lines if secret in line]
        assert not hits, (secret, hits[:3])


def test_settings_never_print_secrets() -> None:
    s = Settings(
        _env_file=None,
        api_keys=API_KEY_1,  # as NEWSDESK_API_KEYS would be
        llm_api_key=LLM_KEY,
        slack_signing_secret=SLACK_SECRET,
    )
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        for secret in SECRETS:
            assert secret not in text


# ---- API keys ---------------------------------------------------------------------------


def test_keys_are_compared_in_constant_time_against_every_key(
    make_client, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[bytes, bytes]] = []
    real = api_security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_security.hmac, "compare_digest", spy)
    keys = [SecretStr(API_KEY_1), SecretStr(API_KEY_2), SecretStr("nd-key-THREE")]
    c = make_client(api_keys=keys)
    for key, status in [(API_KEY_1, 200), ("nope", 401), ("nd-key-THREE", 200)]:
        calls.clear()
        assert c.get("/v1/articles", headers=bearer(key)).status_code == status
        # Every configured key is compared, whichever matched: no early exit to time.
        assert len(calls) == len(keys)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ключ",
        "Bearer " + "x" * 10_000,
        "Bearer \t ",
        "Bearer",
        "bearer",
        "Token " + API_KEY_1,
        "Bearer " + API_KEY_1 + " " + API_KEY_2,
    ],
)
def test_odd_authorization_headers_are_401(make_client, header: str) -> None:  # type: ignore[no-untyped-def]
    c = make_client(api_keys=[SecretStr(API_KEY_1)])
    raw = header.encode("utf-8")
    r = c.get("/v1/articles", headers=[(b"authorization", raw)])
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"


def test_scheme_is_case_insensitive(make_client) -> None:  # type: ignore[no-untyped-def]
    c = make_client(api_keys=[SecretStr(API_KEY_1)])
    assert (
        c.get("/v1/articles", headers={"Authorization": f"bearer {API_KEY_1}"}).status_code == 200
    )


# ---- CORS --------------------------------------------------------------------------------

ORIGIN = "https://newsroom.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_cors_is_off_unless_configured(make_client) -> None:  # type: ignore[no-untyped-def]
    c = make_client()
    for r in (
        c.options("/v1/ask", headers=PREFLIGHT),
        c.post("/v1/ask", json={"question": QUESTION}, headers={"Origin": ORIGIN}),
        c.get("/v1/articles", headers={"Origin": ORIGIN}),
        c.get("/healthz", headers={"Origin": "null"}),
    ):
        assert not any(h.startswith("access-control-") for h in r.headers), dict(r.headers)


def test_cors_allows_only_the_configured_origins(make_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSDESK_CORS_ORIGINS", f"{ORIGIN}, https://other.example")
    s = Settings(_env_file=None)
    assert s.cors_origins == [ORIGIN, "https://other.example"]
    c = make_client(
        cors_origins=s.cors_origins,
        api_keys=[SecretStr(API_KEY_1)],
        rate_limit="3/minute",
        max_body_bytes=10_000,
    )

    pre = c.options("/v1/ask", headers=PREFLIGHT)  # no key needed for a preflight
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()

    r = c.post(
        "/v1/ask", json={"question": QUESTION}, headers={"Origin": ORIGIN, **bearer(API_KEY_1)}
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    other = c.get("/v1/articles", headers={"Origin": "https://other.example", **bearer(API_KEY_1)})
    assert other.headers["access-control-allow-origin"] == "https://other.example"

    # A browser on the page must be able to read our errors too.
    r = c.get("/v1/articles", headers={"Origin": ORIGIN})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == ORIGIN
    big = {"text": "x" * 20_000}
    r = c.post("/v1/articles", json=big, headers={"Origin": ORIGIN, **bearer(API_KEY_1)})
    assert r.status_code == 413 and r.headers["access-control-allow-origin"] == ORIGIN
    c.get("/v1/articles", headers={"Origin": ORIGIN, **bearer(API_KEY_1)})  # the 3rd of 3/minute
    r = c.get("/v1/articles", headers={"Origin": ORIGIN, **bearer(API_KEY_1)})
    assert r.status_code == 429 and r.headers["access-control-allow-origin"] == ORIGIN

    evil = {**PREFLIGHT, "Origin": "https://evil.example"}
    r = c.options("/v1/ask", headers=evil)
    assert "access-control-allow-origin" not in r.headers
    r = c.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = c.get("/healthz", headers={"Origin": ORIGIN + ".evil.example"})
    assert "access-control-allow-origin" not in r.headers


# ---- rate limits per key -----------------------------------------------------------------


def test_each_key_has_its_own_budget(make_client) -> None:  # type: ignore[no-untyped-def]
    c = make_client(api_keys=[SecretStr(API_KEY_1), SecretStr(API_KEY_2)], rate_limit="3/minute")
    one, two = bearer(API_KEY_1), bearer(API_KEY_2)
    for _ in range(3):
        assert c.get("/v1/articles", headers=one).status_code == 200
    r = c.get("/v1/articles", headers=one)
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # The other key is untouched by the first one's spending.
    for _ in range(3):
        assert c.get("/v1/articles", headers=two).status_code == 200
    assert_error(c.get("/v1/articles", headers=two), 429, "rate_limited")
    assert_error(c.get("/v1/articles", headers=one), 429, "rate_limited")
    # Wrong keys are refused before they can spend anyone's budget, and health checks
    # from a load balancer are never limited.
    assert_error(c.get("/v1/articles", headers=bearer("wrong")), 401, "unauthorized")
    for _ in range(5):
        assert c.get("/healthz").status_code == 200
    # All /v1 routes share one budget per key.
    assert_error(c.post("/v1/ask", json={"question": QUESTION}, headers=two), 429, "rate_limited")


def test_without_keys_the_budget_is_per_client_address(make_client) -> None:  # type: ignore[no-untyped-def]
    c = make_client(rate_limit="2/minute")
    assert c.get("/v1/articles").status_code == 200
    assert c.get("/v1/articles").status_code == 200
    assert_error(c.get("/v1/articles"), 429, "rate_limited")
    app = c.app
    with TestClient(app, client=("203.0.113.9", 5000), raise_server_exceptions=False) as other:
        assert other.get("/v1/articles").status_code == 200
