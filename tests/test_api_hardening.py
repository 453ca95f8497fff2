"""Hostile input that used to get a 500 or worse: oversized headers, streamed oversized
bodies, 405s without Allow, a schema that hid the server's rules, unlimited key guessing,
open docs and metrics, missing security headers, and uploads priced like one question."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from typer.testing import CliRunner

import service.cli
import service.logs
from service.api import create_app
from service.api.schemas import ARTICLE_ID_PATTERN, ARTICLE_TEXT_PATTERN
from service.context import Newsdesk
from service.requests import ISO_DATE_PATTERN, iso_or_none, matches
from tests.conftest import ROOT
from tests.hardening import QUESTION, assert_error, child_env, end_process, wait_for
from vectorstore.ingest import IngestError, make_article

KEY = "nd-key-hardening-4c1f9a"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def make_client(nd: Newsdesk) -> Iterator[Callable[..., TestClient]]:
    """An app over the seeded ``nd`` with some settings changed; closed afterwards."""
    clients: list[TestClient] = []

    def make(address: tuple[str, int] = ("198.51.100.7", 50000), **overrides: Any) -> TestClient:
        s = nd.settings.model_copy(update=overrides)
        newsdesk = Newsdesk(s, embedder=nd.embedder())
        c = TestClient(create_app(newsdesk=newsdesk), raise_server_exceptions=False, client=address)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


# ---- 1. headers have a size limit (a real `newsdesk serve`) -------------------------------

HEADER_LIMIT = 16_384  # below uvicorn's 64 KiB default, so the test shows the setting is used


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`newsdesk serve` in a child process, as production starts it; its port."""
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from service.cli import app; app()", "serve", "--port", str(port)],
        cwd=ROOT,
        env=child_env(
            NEWSDESK_DATA_DIR=str(tmp / "data"), NEWSDESK_MAX_HEADER_BYTES=str(HEADER_LIMIT)
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # stop waiting if it died

    try:
        wait_for(up, timeout=60, interval=0.2)
        assert proc.poll() is None, (tmp / "serve.log").read_text(errors="replace")[-2000:]
        yield port
    finally:
        end_process(proc)
        log.close()


def _send_header(port: int, size: int, piece: int = 65_536) -> tuple[bytes, int]:
    """A GET /healthz whose X-Filler header has ``size`` bytes; what came back, and how
    much of the request the server took before it closed the connection."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Filler: ")
            while sent < size:
                chunk = b"a" * min(piece, size - sent)
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\nConnection: close\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what it answered, if anything, is below
        reply = b""
        try:
            while chunk := sock.recv(65_536):
                reply += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"after {sent} bytes of header the server neither answered nor closed")
    return reply, sent


def _status(reply: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    return int(match.group(1)) if match else None


def test_headers_over_the_limit_are_refused_before_the_app(served: int) -> None:
    reply, _ = _send_header(served, HEADER_LIMIT // 2)
    assert _status(reply) == 200, reply[:300]

    # 431 from the app when the headers arrived in one read, 400 from uvicorn's parser
    # when they were still coming in past the limit.
    reply, _ = _send_header(served, HEADER_LIMIT * 2)
    assert _status(reply) in (400, 431), reply[:300]


def test_a_100_mb_header_is_cut_off_and_the_server_keeps_answering(served: int) -> None:
    reply, sent = _send_header(served, 100_000_000)
    # Without a limit the server reads all 100 MB and then waits for the end of the
    # headers: the recv above times out instead of reading a 4xx or a closed socket.
    status = _status(reply)
    assert status is None or 400 <= status < 500, reply[:300]
    assert sent < 100_000_000
    assert httpx.get(f"http://127.0.0.1:{served}/healthz", timeout=10).json() == {"status": "ok"}


def test_headers_over_the_limit_get_a_json_431_from_the_app(make_client: Callable) -> None:
    c = make_client(max_header_bytes=4096)
    assert c.get("/healthz", headers={"X-Filler": "a" * 3000}).status_code == 200
    r = c.get("/healthz", headers={"X-Filler": "a" * 5000})
    assert_error(r, 431, "headers_too_large")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert_error(c.get("/healthz?" + "q" * 5000), 431, "headers_too_large")


# ---- 1b. `serve` settings and --workers ---------------------------------------------------


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """uvicorn.run recorded instead of run; the CLI's logging setup left alone."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.setattr(service.logs, "configure_logging", lambda *a, **k: None)
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / "data"))
    return calls


def test_several_workers_on_the_embedded_store_are_refused(fake_uvicorn: list) -> None:
    result = CliRunner().invoke(service.cli.app, ["serve", "--workers", "2"])
    assert result.exit_code != 0
    assert "--workers > 1 needs a Chroma server: set NEWSDESK_CHROMA_HOST" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fake_uvicorn == []


def test_serve_bounds_headers_and_allows_workers_with_a_chroma_server(
    fake_uvicorn: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDESK_CHROMA_HOST", "chroma.internal")
    monkeypatch.setenv("NEWSDESK_MAX_HEADER_BYTES", "32768")
    result = CliRunner().invoke(service.cli.app, ["serve", "--workers", "3"])
    assert result.exit_code == 0, result.output
    [call] = fake_uvicorn
    assert call["workers"] == 3
    assert call["http"] == "h11"  # the implementation that enforces the bound
    assert call["h11_max_incomplete_event_size"] == 32_768


# ---- 2. a streamed oversized body is 413 on every route -----------------------------------


def _streamed(prefix: bytes, size: int, suffix: bytes) -> Iterator[bytes]:
    yield prefix
    for _ in range(size // 10_000):
        yield b"x" * 10_000
    yield suffix


JSON_ROUTES = ["/v1/ask", "/v1/chat/completions", "/v1/summaries", "/v1/briefings", "/v1/articles"]


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_streamed_json_body_over_the_limit_is_413(make_client: Callable, path: str) -> None:
    c = make_client(max_body_bytes=50_000)
    # No Content-Length: the limit is only found out while the body streams in.
    body = _streamed(b'{"question": "', 100_000, b'"}')
    r = c.post(path, content=body, headers={"content-type": "application/json"})
    assert_error(r, 413, "body_too_large")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert c.get("/healthz").status_code == 200


def test_streamed_multipart_upload_over_the_limit_is_413(make_client: Callable) -> None:
    c = make_client(max_body_bytes=50_000)
    body = _streamed(
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n',
        100_000,
        b"\r\n--b--\r\n",
    )
    r = c.post(
        "/v1/articles", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert_error(r, 413, "body_too_large")
    assert c.get("/v1/articles").json()["total"] == 3  # nothing half-ingested


# ---- 3. 405 names every method the path accepts -------------------------------------------


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PUT", "/v1/articles", {"GET", "POST"}),
        ("OPTIONS", "/v1/articles", {"GET", "POST"}),
        ("PATCH", "/v1/articles/e064d63275ef0870", {"GET", "DELETE"}),
        ("GET", "/v1/ask", {"POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_405_has_an_allow_header(
    client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    r = client.request(method, path)
    assert_error(r, 405, "method_not_allowed")
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed


# ---- 4. the schema says what the server enforces ------------------------------------------


def test_schema_publishes_the_rules(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def pattern(prop: dict) -> str | None:
        """The pattern a string must match: on the schema, or on its string branch (a
        pattern beside anyOf applies to strings only, so both mean the same)."""
        branches = [prop, *(b for b in prop.get("anyOf", []) if b.get("type") == "string")]
        return next((b["pattern"] for b in branches if "pattern" in b), None)

    assert pattern(schemas["BriefingBody"]["properties"]["as_of"]) == ISO_DATE_PATTERN
    assert pattern(schemas["Filters"]["properties"]["published_after"]) == ISO_DATE_PATTERN
    upload = spec["paths"]["/v1/articles"]["post"]["requestBody"]["content"]
    article = upload["application/json"]["schema"]["properties"]
    assert pattern(article["text"]) == ARTICLE_TEXT_PATTERN
    assert pattern(article["id"]) == ARTICLE_ID_PATTERN
    listing = spec["paths"]["/v1/articles"]["get"]["parameters"]
    after = next(p for p in listing if p["name"] == "published_after")
    assert pattern(after["schema"]) == ISO_DATE_PATTERN
    chat = schemas["ChatCompletionBody"]["properties"]["messages"]["description"]
    assert "last must be from the user" in chat
    spans = spec["paths"]["/v1/articles/{article_id}/spans"]["get"]
    end = next(p for p in spans["parameters"] if p["name"] == "end")
    assert "start < end" in end["description"]
    assert ".jsonl" in upload["multipart/form-data"]["schema"]["properties"]["file"]["description"]
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for code in ("401", "413", "422", "429"):
                content = operation["responses"][code]["content"]["application/json"]
                assert content["schema"] == error_ref, (method, path, code)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.from_regex(ISO_DATE_PATTERN))
def test_every_date_the_schema_allows_is_accepted(value: str) -> None:
    assert iso_or_none(value) is not None, value


@pytest.mark.parametrize(
    "value, ok",
    [
        ("2024-02-29", True),
        ("2000-02-29T23:59:59.123456+05:30", True),
        ("2024-03-01T09:30Z", True),
        ("2023-02-29", False),  # Python would reject it; the schema must too
        ("1900-02-29", False),
        ("0000-01-01", False),
        ("2024-03-01T24:00", False),
        ("20240301", False),  # fromisoformat reads it; the documented format doesn't allow it
        ("", False),
        ("soon", False),
    ],
)
def test_dates_match_the_schema_pattern_exactly(value: str, ok: bool) -> None:
    assert matches(ISO_DATE_PATTERN, value) is ok
    assert (iso_or_none(value) is not None) is ok


def _article_ok(text: str = "Some text.", article_id: str | None = None) -> bool:
    try:
        make_article(text, article_id=article_id)
    except IngestError:
        return False
    return True


# Whitespace, zero-width, bidi and tag characters, NUL, and a few that are visible.
TRICKY = " \t\n\r\x0b\x1c\x85\xa0\u2003\u2028\u200b\u200d\u202e\u2066\ufeff\U000e0001\x00a.é"


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=TRICKY, max_size=8))
def test_article_text_pattern_is_make_articles_rule(text: str) -> None:
    assert matches(ARTICLE_TEXT_PATTERN, text) == _article_ok(text), repr(text)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=" \t\n./\\a\u00a0", max_size=6))
def test_article_id_pattern_is_make_articles_rule(article_id: str) -> None:
    assert matches(ARTICLE_ID_PATTERN, article_id) == _article_ok(article_id=article_id), repr(
        article_id
    )


@pytest.mark.parametrize("as_of, status", [("2024-02-29", 200), ("2023-02-29", 422), ("", 422)])
def test_briefing_dates_follow_the_pattern(client: TestClient, as_of: str, status: int) -> None:
    r = client.post("/v1/briefings", json={"topic": "Kursk", "as_of": as_of})
    assert r.status_code == status, r.text[:300]


USER_ONLY = [{"role": "user", "content": QUESTION}]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/ask", {"question": QUESTION, "top_k": "5"}),
        ("/v1/ask", {"question": QUESTION, "top_k": True}),
        ("/v1/summaries", {"topic": "Kursk", "max_words": "100"}),
        ("/v1/chat/completions", {"messages": USER_ONLY, "stream": 0}),
        ("/v1/chat/completions", {"messages": USER_ONLY, "stream": "false"}),
    ],
)
def test_values_the_schema_types_refuse_are_refused(
    client: TestClient, path: str, body: dict
) -> None:
    # Pydantic's lax mode would turn these into 5, 1, 100 and False.
    assert_error(client.post(path, json=body), 422, "invalid_request")


def test_integral_floats_are_integers_as_json_schema_says(client: TestClient) -> None:
    assert client.post("/v1/ask", json={"question": QUESTION, "top_k": 5.0}).status_code == 200


# ---- 5. failed key checks are rate-limited per address ------------------------------------


def test_failed_key_checks_are_limited_per_address(make_client: Callable) -> None:
    attacker = make_client(api_keys=[SecretStr(KEY)], auth_failure_limit="3/minute")
    for header in (bearer("guess-1"), {}, bearer("guess-3")):
        assert_error(attacker.get("/v1/articles", headers=header), 401, "unauthorized")
    r = attacker.get("/v1/articles", headers=bearer("guess-4"))
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # Refused before the key is compared, so the right guess is no longer told apart.
    assert_error(attacker.get("/v1/articles", headers=bearer()), 429, "rate_limited")
    # Another address with the key is untouched.
    other = TestClient(attacker.app, client=("203.0.113.50", 40000))
    assert other.get("/v1/articles", headers=bearer()).status_code == 200


def test_successful_key_checks_never_count_as_failures(make_client: Callable) -> None:
    c = make_client(api_keys=[SecretStr(KEY)], auth_failure_limit="2/minute")
    for _ in range(10):
        assert c.get("/v1/articles", headers=bearer()).status_code == 200
    assert_error(c.get("/v1/articles", headers=bearer("wrong")), 401, "unauthorized")
    assert c.get("/v1/articles", headers=bearer()).status_code == 200


# ---- 6. docs, schema and metrics need the key; docs assets are served locally --------------

GUARDED = ["/docs", "/redoc", "/openapi.json", "/metrics", "/docs/assets/swagger-ui-bundle.js"]


def test_only_health_checks_are_open_when_keys_are_set(make_client: Callable) -> None:
    c = make_client(api_keys=[SecretStr(KEY)], auth_failure_limit="1000/minute")
    for path in GUARDED:
        assert_error(c.get(path), 401, "unauthorized")
        assert c.get(path, headers=bearer()).status_code == 200, path
    for path in ("/healthz", "/readyz"):
        assert c.get(path).status_code == 200, path
    spec = c.get("/openapi.json", headers=bearer()).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/ask"]["post"]["security"] == [{"bearer": []}]


def test_without_keys_docs_stay_open_and_declare_no_auth(client: TestClient) -> None:
    for path in GUARDED:
        assert client.get(path).status_code == 200, path
    spec = client.get("/openapi.json").json()
    assert "security" not in spec["paths"]["/v1/ask"]["post"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_the_internet(client: TestClient, page: str) -> None:
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html) + re.findall(
        r"""url:\s*['"]([^'"]+)""", html
    )
    assert urls, html
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "https://" not in html and "http://" not in html
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200 and r.content, url
    assert '"validatorUrl": null' in html or page == "/redoc"


def test_only_the_packaged_assets_are_served(client: TestClient) -> None:
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in js.content
    for name in ("..%2F..%2Fsettings.py", "core.py", "nope.js"):
        assert client.get(f"/docs/assets/{name}").status_code == 404


# ---- 7. security headers on every response ------------------------------------------------


def _assert_security_headers(r: httpx.Response, csp: bool = True) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url.path, r.status_code, name)
    if csp:
        assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_every_kind_of_response_has_the_security_headers(
    make_client: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = make_client(max_body_bytes=10_000, rate_limit="1000/minute")
    responses = [
        c.get("/healthz"),
        c.post("/v1/ask", json={"question": QUESTION}),
        c.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": QUESTION}], "stream": True},
        ),
        c.get("/metrics"),
        c.get("/nope"),
        c.put("/v1/ask"),
        c.post("/v1/ask", json={"question": ""}),
        c.post("/v1/articles", json={"text": "x" * 20_000}),
        c.post("/v1/briefings", json={"topic": "Kursk", "format": "markdown"}),
    ]
    for r in responses:
        _assert_security_headers(r)
    # HTML pages keep their inline bootstrap script, so no CSP there; the rest applies.
    _assert_security_headers(c.get("/docs"), csp=False)

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("service.api.routes.ask.AnswerService.answer", boom)
    r = c.post("/v1/ask", json={"question": QUESTION})
    assert_error(r, 500, "internal_error")
    _assert_security_headers(r)


def test_slack_endpoint_still_works_behind_the_headers_and_needs_no_api_key(
    make_client: Callable,
) -> None:
    import hashlib
    import hmac
    import time

    secret = "slack-signing-secret-for-headers"
    c = make_client(
        api_keys=[SecretStr(KEY)],
        slack_bot_token=SecretStr("xoxb-not-used"),
        slack_signing_secret=SecretStr(secret),
    )
    body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"})
    ts = str(int(time.time()))
    sig = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    r = c.post(
        "/slack/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={sig}",
        },
    )
    assert r.status_code == 200 and r.json() == {"challenge": "c-123"}
    _assert_security_headers(r)


# ---- 8. uploads cost rate-limit budget by size --------------------------------------------


def _article(size: int, aid: str) -> dict[str, str]:
    filler = "The river Oona flooded forty homes. "
    text = (filler * (size // len(filler) + 1))[:size]
    return {"text": text, "id": aid}


def test_a_large_article_costs_budget_by_size(make_client: Callable) -> None:
    c = make_client(rate_limit="10/minute", rate_limit_bytes_per_hit=1000)
    r = c.post("/v1/articles", json=_article(9_000, "big-one"))  # ~9.03 kB: 10 hits
    assert r.status_code == 201, r.text[:300]
    assert_error(c.get("/v1/articles"), 429, "rate_limited")


def test_upload_refused_before_embedding_when_budget_is_short(
    make_client: Callable, nd: Newsdesk
) -> None:
    c = make_client(rate_limit="10/minute", rate_limit_bytes_per_hit=1000)
    embedder = c.app.state.newsdesk.embedder()
    for _ in range(5):
        assert c.get("/v1/articles").status_code == 200
    calls = embedder.calls
    r = c.post("/v1/articles", json=_article(9_000, "too-big"))
    body = assert_error(r, 429, "rate_limited")
    assert "costs 10 requests" in body["error"]["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    files = {"file": ("big.txt", _article(9_000, "x")["text"].encode())}
    assert_error(c.post("/v1/articles", files=files), 429, "rate_limited")
    assert embedder.calls == calls
    assert nd.store.get_article("too-big") is None
    # The refused part was not spent: a small article still fits in what is left.
    assert c.post("/v1/articles", json=_article(500, "small")).status_code == 201


def test_an_upload_larger_than_the_whole_window_can_still_get_in(make_client: Callable) -> None:
    c = make_client(rate_limit="5/minute", rate_limit_bytes_per_hit=1000)
    r = c.post("/v1/articles", json=_article(30_000, "huge"))  # 30 hits, charged 5
    assert r.status_code == 201, r.text[:300]
    assert_error(c.get("/v1/articles"), 429, "rate_limited")
