"""The Slack bot over HTTP: signed requests into the FastAPI app, Slack's Web API stubbed.

No LLM is configured unless a test says so, so the extractive engine answers. Lazy
listeners run in the bolt App's executor; ``drain()`` shuts it down and waits, so every
assertion after it sees all the work that request caused, and nothing more can happen.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.internals import run_bolt_app
from slack_sdk.socket_mode.request import SocketModeRequest

from service.answer import AnswerService
from service.api import create_app
from service.context import Newsdesk
from service.links import LinkSigner
from service.models import Answer
from service.requests import AskBody as Question
from service.requests import HistoryMessage as Message
from service.settings import Settings
from service.slack import build_app, mount_slack, socket_mode_handler
from service.slack.blocks import WORKING
from tests.conftest import SEEDS, HashingEmbedder
from tests.hardening import assert_error
from tests.llm_mock import CHAT_URL, completion
from tests.slack_helpers import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    CHANNEL,
    SIGNING_SECRET,
    USER,
    SlackStub,
    command_body,
    event_body,
    mention,
    message,
    signature_headers,
)
from vectorstore.ingest import make_article, read_paths

PUBLIC_URL = "https://newsdesk.example"
QUESTION = "How many inhabited localities were liberated in the autumn offensive?"
HOSTILE = (
    "The Quillborough lantern festival drew 4,000 visitors on Saturday, <!channel> "
    "organisers said, and told visitors to <https://evil|click> for refunds & more. "
    "The festival director <@U024BE7LH> said the lanterns would return next year."
)


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed articles, ingested once with the fast hashing embedder."""
    data = tmp_path_factory.mktemp("slack-seeds")
    Newsdesk(make_settings(data), embedder=HashingEmbedder()).indexer.index(read_paths([SEEDS]))  # type: ignore[arg-type]
    return data


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "llm_base_url": None,
        "llm_api_key": None,
        "index_check_seconds": 0.0,
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "public_url": PUBLIC_URL,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    yield server
    server.stop()


@dataclass
class Harness:
    http: TestClient
    stub: SlackStub
    nd: Newsdesk
    executor: ThreadPoolExecutor

    def event(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        body = event_body(event)
        return self.http.post(
            "/slack/events",
            content=body,
            headers={
                "Content-Type": "application/json",
                **signature_headers(body),
                **(headers or {}),
            },
        )

    def command(self, name: str, text: str) -> httpx.Response:
        body = command_body(name, text, self.stub.response_url())
        return self.http.post(
            "/slack/commands",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                **signature_headers(body),
            },
        )

    def drain(self) -> None:
        """Wait for every lazy listener started so far to finish."""
        self.executor.shutdown(wait=True)


@pytest.fixture
def make_harness(
    stub: SlackStub, seeds_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(
        data_dir: Path | None = None,
        llm_http_client: httpx.Client | None = None,
        **overrides: Any,
    ) -> Harness:
        settings = make_settings(data_dir or seeds_dir, **overrides)
        nd = Newsdesk(settings, embedder=HashingEmbedder(), llm_http_client=llm_http_client)  # type: ignore[arg-type]
        executor = ThreadPoolExecutor(max_workers=2)
        api = FastAPI()
        mount_slack(api, nd, bolt_app=build_app(nd, client=stub.client(), executor=executor))
        harness = Harness(TestClient(api), stub, nd, executor)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.drain()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


def hostile_dir(tmp_path: Path) -> Path:
    data = tmp_path / "hostile"
    article = make_article(
        HOSTILE,
        title="<!here> Quillborough lantern festival",
        source="Quill <Times> & Co",
        article_id="hostile-1",
    )
    Newsdesk(make_settings(data), embedder=HashingEmbedder()).indexer.index([article])  # type: ignore[arg-type]
    return data


# ---- expected output, written out --------------------------------------------------------


def source_links(blocks: list[dict[str, Any]]) -> list[str]:
    """The links of a message's sources, as a browser gets them (Slack decodes &amp;)."""
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    return [u.replace("&amp;", "&") for t in texts for u in re.findall(r"<([^|>]+)\|", t)]


def expected_answer_blocks(
    answer: Answer, sent: list[dict[str, Any]], settings: Settings
) -> list[dict[str, Any]]:
    """What an extractive answer over the seeds must look like in Slack (the seeds have
    no source, no date and no characters that need escaping). Each source links to its
    signed reader page (checked here against the link secret: signed when sent, so
    ``sent`` supplies the expiry)."""
    assert answer.engine == "extractive" and not answer.refused and answer.citations
    lines = ["*Sources*"]
    signer = LinkSigner.from_settings(settings)
    links = source_links(sent)
    for c, link in zip(answer.citations, links, strict=True):
        assert len(c.quote) < 240 and len(c.title) <= 120
        assert link.startswith(f"{PUBLIC_URL}/read/{c.article_id}?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
        grant = signer.verify(c.article_id, query)
        assert grant.spans[0] == (c.start, c.end) and grant.revision == c.revision
        url = link.replace("&", "&amp;")
        lines.append(f"*[{c.n}]* <{url}|{c.title}> — source unknown · undated\n>“{c.quote}”")
    n = len(answer.citations)
    engine = (
        ":mag: Answered by the extractive engine: sentences quoted from the articles · "
        f"{n} citation{'' if n == 1 else 's'} checked against the source text"
    )
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": answer.answer, "verbatim": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines), "verbatim": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": engine, "verbatim": True}]},
    ]


def context_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}]}


def working_blocks() -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": WORKING, "verbatim": True}}]


def block_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(
        b["text"]["text"] if b["type"] == "section" else b["elements"][0]["text"] for b in blocks
    )


# ---- not configured, url_verification, signatures ------------------------------------------


def test_not_mounted_without_slack_credentials(tmp_path: Path) -> None:
    nd = Newsdesk(
        make_settings(tmp_path, slack_bot_token=None, slack_signing_secret=None),
        embedder=HashingEmbedder(),  # type: ignore[arg-type]
    )
    api = FastAPI()
    mount_slack(api, nd)
    assert not [r for r in api.routes if getattr(r, "path", "").startswith("/slack")]
    assert TestClient(api).post("/slack/events", content="{}").status_code == 404


def test_mount_adds_both_routes(harness: Harness) -> None:
    paths = {getattr(r, "path", None) for r in harness.http.app.routes}  # type: ignore[attr-defined]
    assert {"/slack/events", "/slack/commands"} <= paths


def test_url_verification_challenge(harness: Harness) -> None:
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595", "type": "url_verification"}
    )
    r = harness.http.post(
        "/slack/events",
        content=body,
        headers={"Content-Type": "application/json", **signature_headers(body)},
    )
    assert r.status_code == 200
    assert r.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595"}
    harness.drain()
    assert harness.stub.calls == []


@pytest.mark.parametrize("kind", ["unsigned", "wrong-secret", "no-signature", "tampered"])
def test_unsigned_or_badly_signed_requests_get_401(harness: Harness, kind: str) -> None:
    body = event_body(mention(QUESTION, ts="1700000000.000100"))
    headers = {
        "unsigned": {},
        "wrong-secret": signature_headers(body, secret="wrong-secret"),
        "no-signature": {"X-Slack-Request-Timestamp": str(int(time.time()))},
        "tampered": signature_headers(body.replace("autumn", "spring")),
    }[kind]
    r = harness.http.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert r.status_code == 401
    harness.drain()
    assert harness.stub.calls == []


def test_stale_timestamp_gets_401(harness: Harness) -> None:
    body = event_body(mention(QUESTION, ts="1700000000.000100"))
    stale = signature_headers(body, timestamp=int(time.time()) - 6 * 60)  # correctly signed
    r = harness.http.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json", **stale}
    )
    assert r.status_code == 401
    harness.drain()
    assert harness.stub.calls == []


def test_bad_signature_on_a_slash_command_gets_401(harness: Harness) -> None:
    body = command_body("/ask", QUESTION, harness.stub.response_url())
    r = harness.http.post(
        "/slack/commands",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **signature_headers(body, secret="wrong-secret"),
        },
    )
    assert r.status_code == 401
    harness.drain()
    assert harness.stub.calls == []


@pytest.mark.parametrize("kind", ["unsigned", "wrong-secret", "stale"])
def test_signature_failures_have_the_documented_error_shape(
    production_app: TestClient, kind: str
) -> None:
    body = event_body(mention(QUESTION, ts="1700000000.000100"))
    headers = {
        "unsigned": {},
        "wrong-secret": signature_headers(body, secret="wrong-secret"),
        "stale": signature_headers(body, timestamp=int(time.time()) - 6 * 60),
    }[kind]
    r = production_app.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert_error(r, 401, "unauthorized")


def test_a_signature_bolt_rejects_has_the_documented_error_shape(
    stub: SlackStub, seeds_dir: Path
) -> None:
    """bolt checks the signature again, with its own secret: when it refuses (here it was
    given another secret than the routes), its ``{"error": "invalid request"}`` is
    answered in the API's shape too."""
    nd = Newsdesk(make_settings(seeds_dir), embedder=HashingEmbedder())  # type: ignore[arg-type]
    other = Newsdesk(
        make_settings(seeds_dir, slack_signing_secret="rotated-secret"),
        embedder=HashingEmbedder(),  # type: ignore[arg-type]
    )
    api = FastAPI()
    mount_slack(api, nd, bolt_app=build_app(other, client=stub.client()))
    body = event_body(mention(QUESTION, ts="1700000000.000100"))
    r = TestClient(api).post(
        "/slack/events",
        content=body,
        headers={"Content-Type": "application/json", **signature_headers(body)},
    )
    error = assert_error(r, 401, "unauthorized")["error"]
    assert error["message"] == "Slack request rejected: invalid request."
    assert stub.calls == []


def test_a_command_nobody_handles_has_the_documented_error_shape(harness: Harness) -> None:
    r = harness.command("/weather", "Kyiv")  # signed, but not one of ours
    error = assert_error(r, 404, "not_found")["error"]
    assert error["message"] == "Slack request rejected: unhandled request."
    harness.drain()
    assert harness.stub.methods() == []


# ---- malformed requests: rejected before bolt parses anything -------------------------------

CANARY = "canary-body-7f3a"  # in every malformed body below, so the log can be searched for it


def raw_signature_headers(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Slack's v0 signature over raw bytes (``signature_headers`` takes text)."""
    ts = str(int(time.time())) if timestamp is None else timestamp
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
MALFORMED = {
    "truncated JSON": ("/slack/events", JSON_TYPE, f'{{"type": "{CANARY}", '.encode()),
    "JSON array": ("/slack/events", JSON_TYPE, f'["{CANARY}"]'.encode()),
    "event not an object": (
        "/slack/events",
        JSON_TYPE,
        json.dumps({"type": "event_callback", "event": CANARY}).encode(),
    ),
    "deeply nested JSON": ("/slack/events", JSON_TYPE, b"[" * 100_000 + CANARY.encode()),
    "bad payload= field": ("/slack/commands", FORM_TYPE, f"payload=%7B{CANARY}".encode()),
    "payload= not an object": (
        "/slack/commands",
        FORM_TYPE,
        f"payload=%5B%22{CANARY}%22%5D".encode(),
    ),
    "not UTF-8": ("/slack/events", JSON_TYPE, f'{{"type": "{CANARY}\xff"}}'.encode("latin-1")),
    "form not UTF-8": ("/slack/commands", FORM_TYPE, f"text={CANARY}\xff".encode("latin-1")),
}


@pytest.fixture
def production_app(tmp_path: Path) -> Iterator[TestClient]:
    """The real API with Slack mounted from the settings, server errors as responses:
    what a malformed request meets in production."""
    from service.api import create_app

    nd = Newsdesk(make_settings(tmp_path), embedder=HashingEmbedder())  # type: ignore[arg-type]
    with TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as client:
        yield client


def assert_quiet_log(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged a traceback, and nothing logged the request body."""
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text
    assert CANARY not in caplog.text


@pytest.mark.parametrize("case", list(MALFORMED))
def test_signed_malformed_body_is_400_without_a_traceback(
    production_app: TestClient, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    path, content_type, body = MALFORMED[case]
    r = production_app.post(
        path, content=body, headers={"Content-Type": content_type, **raw_signature_headers(body)}
    )
    assert_error(r, 400)
    assert_quiet_log(caplog)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_unsigned_malformed_body_is_401_and_never_logged(
    production_app: TestClient, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    path, content_type, body = MALFORMED[case]
    headers = {**raw_signature_headers(body), "X-Slack-Signature": "v0=" + "0" * 64}
    r = production_app.post(path, content=body, headers={"Content-Type": content_type, **headers})
    assert_error(r, 401, "unauthorized")
    assert_quiet_log(caplog)


@pytest.mark.parametrize(
    "timestamp", ["abc", "", "1e9", "-1", " 1700000000", "١٧٠٠٠٠٠٠٠٠", "9" * 40]
)
def test_non_numeric_timestamp_is_401(
    production_app: TestClient, caplog: pytest.LogCaptureFixture, timestamp: str
) -> None:
    caplog.set_level(logging.DEBUG)
    body = event_body(mention(CANARY, ts="1700000000.000100")).encode()
    # Signed with that very timestamp: only its form is wrong. Sent as UTF-8 bytes, as a
    # client could; the server reads header bytes as Latin-1.
    signed = raw_signature_headers(body, timestamp=timestamp)
    headers = {k: v.encode() for k, v in signed.items()}
    r = production_app.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert_error(r, 401, "unauthorized")
    assert_quiet_log(caplog)


def test_non_ascii_signature_is_401(
    production_app: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = event_body(mention(CANARY, ts="1700000000.000100")).encode()
    headers = {k: v.encode() for k, v in raw_signature_headers(body).items()}
    headers["X-Slack-Signature"] = b"v0=\xff\xfe"
    r = production_app.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert_error(r, 401, "unauthorized")
    assert_quiet_log(caplog)


def test_badly_signed_request_body_is_not_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = event_body(mention(CANARY, ts="1700000000.000100"))
    r = harness.http.post(
        "/slack/events",
        content=body,
        headers={"Content-Type": "application/json", **signature_headers(body, secret="x")},
    )
    assert_error(r, 401, "unauthorized")
    assert_quiet_log(caplog)
    harness.drain()
    assert harness.stub.calls == []


# ---- mentions, threads, DMs -----------------------------------------------------------------


def test_mention_is_acknowledged_before_the_answer_is_worked_out(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    original = AnswerService.answer

    def slow_answer(self: AnswerService, q: Question) -> Answer:
        entered.set()
        assert release.wait(10)
        return original(self, q)

    monkeypatch.setattr(AnswerService, "answer", slow_answer)
    r = harness.event(mention(QUESTION, ts="1700000000.000100"))
    assert r.status_code == 200  # returned while the answer is still being worked out
    assert entered.wait(10)
    assert "chat.update" not in harness.stub.methods()
    release.set()
    harness.drain()
    assert "chat.update" in harness.stub.methods()


def test_mention_is_answered_in_a_thread_with_cited_blocks(harness: Harness) -> None:
    ts = "1700000000.000100"
    r = harness.event(mention(QUESTION, ts=ts))
    assert r.status_code == 200
    harness.drain()

    stub = harness.stub
    assert stub.methods() == ["reactions.add", "chat.postMessage", "chat.update"]
    assert stub.to("reactions.add") == [{"channel": CHANNEL, "timestamp": ts, "name": "eyes"}]
    [placeholder] = stub.to("chat.postMessage")
    assert placeholder["channel"] == CHANNEL and placeholder["thread_ts"] == ts
    assert placeholder["text"] == WORKING and placeholder["blocks"] == working_blocks()

    answer = AnswerService(harness.nd).answer(Question(QUESTION))
    assert answer.engine == "extractive"  # no LLM configured
    assert "87 inhabited localities" in answer.answer
    [update] = stub.to("chat.update")
    assert update["channel"] == CHANNEL
    assert update["ts"] == "1800000000.000001"  # the placeholder, now the answer
    assert update["text"] == answer.answer
    assert update["blocks"] == expected_answer_blocks(answer, update["blocks"], harness.nd.settings)


def test_a_source_link_opens_its_span_in_a_browser_with_api_keys_on(harness: Harness) -> None:
    """Slack's readers hold no API key: the signed link alone opens the article's page,
    the cited span highlighted, and nothing else."""
    harness.event(mention(QUESTION, ts="1700000000.000200"))
    harness.drain()
    [update] = harness.stub.to("chat.update")
    link = urlsplit(source_links(update["blocks"])[0])
    keyed = harness.nd.settings.model_copy(update={"api_keys": [SecretStr("k-123")]})
    # No lifespan: the harness's app owns the store.
    browser = TestClient(create_app(settings=keyed, newsdesk=harness.nd))
    page = browser.get(f"{link.path}?{link.query}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    [mark] = re.findall(r'<mark class="primary" id="cited">(.*?)</mark>', page.text, re.S)
    answer = AnswerService(harness.nd).answer(Question(QUESTION))
    assert html.unescape(mark) == answer.citations[0].quote
    article_id = link.path.rsplit("/", 1)[1]
    assert browser.get(f"/v1/articles/{article_id}?{link.query}").status_code == 401


def test_follow_up_mention_uses_the_thread_as_history(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, reply, now = "1700000000.000100", "1700000001.000200", "1700000002.000300"
    earlier_answer = "These victories are part of an autumn offensive. [1]"
    harness.stub.replies[parent] = [
        {"type": "message", "user": USER, "text": f"<@{BOT_USER}> {QUESTION}", "ts": parent},
        {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": WORKING, "ts": "1"},
        {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": earlier_answer,
            "ts": reply,
            "thread_ts": parent,
        },
        {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "BOTHER",
            "text": "another bot",
            "ts": reply,
        },
        {"type": "message", "user": USER, "text": f"<@{BOT_USER}> and Volchansk?", "ts": now},
    ]
    seen: list[Question] = []
    original = AnswerService.answer

    def spy(self: AnswerService, q: Question) -> Answer:
        seen.append(q)
        return original(self, q)

    monkeypatch.setattr(AnswerService, "answer", spy)
    harness.event(mention("and Volchansk?", ts=now, thread_ts=parent))
    harness.drain()

    replies = harness.stub.to("conversations.replies")
    assert [(c["channel"], c["ts"]) for c in replies] == [(CHANNEL, parent)]
    [q] = seen
    assert q.text == "and Volchansk?"
    assert q.history == [
        Message(role="user", content=QUESTION),
        Message(role="assistant", content=earlier_answer),
    ]
    [placeholder] = harness.stub.to("chat.postMessage")
    assert placeholder["thread_ts"] == parent  # in the same thread, not a new one
    [update] = harness.stub.to("chat.update")
    assert update["blocks"][-1]["elements"][0]["text"].startswith(
        ":mag: Answered by the extractive"
    )


def test_plain_reply_in_a_thread_with_the_bot_is_a_follow_up(harness: Harness) -> None:
    parent, now = "1700000000.000100", "1700000005.000100"
    harness.stub.replies[parent] = [
        {"type": "message", "user": USER, "text": f"<@{BOT_USER}> {QUESTION}", "ts": parent},
        {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": "87. [1]",
            "ts": "1700000001.1",
        },
    ]
    harness.event(message("what about Volchansk?", ts=now, thread_ts=parent))
    harness.drain()
    assert harness.stub.methods() == [
        "conversations.replies",
        "reactions.add",
        "chat.postMessage",
        "chat.update",
    ]
    assert harness.stub.to("chat.postMessage")[0]["thread_ts"] == parent


def test_thread_without_the_bot_and_top_level_chatter_are_ignored(harness: Harness) -> None:
    parent = "1700000000.000100"
    harness.stub.replies[parent] = [
        {"type": "message", "user": USER, "text": "lunch?", "ts": parent},
    ]
    harness.event(message("sure", ts="1700000001.000100", thread_ts=parent))
    harness.event(message(QUESTION, ts="1700000002.000100"))  # top level, no mention
    harness.event(  # a mention inside a thread comes again as app_mention: not twice
        message(f"<@{BOT_USER}> {QUESTION}", ts="1700000003.000100", thread_ts=parent)
    )
    harness.drain()
    assert harness.stub.methods() == ["conversations.replies"]


def test_direct_message_is_answered_in_a_thread(harness: Harness) -> None:
    ts = "1700000000.000100"
    r = harness.event(message(QUESTION, ts=ts, channel="D0DM", channel_type="im"))
    assert r.status_code == 200
    harness.drain()
    assert harness.stub.methods() == ["reactions.add", "chat.postMessage", "chat.update"]
    [placeholder] = harness.stub.to("chat.postMessage")
    assert placeholder["channel"] == "D0DM" and placeholder["thread_ts"] == ts
    answer = AnswerService(harness.nd).answer(Question(QUESTION))
    sent = harness.stub.to("chat.update")[0]["blocks"]
    assert sent == expected_answer_blocks(answer, sent, harness.nd.settings)


def test_mention_in_a_dm_is_answered_once(harness: Harness) -> None:
    ts = "1700000000.000100"
    harness.event(mention(QUESTION, ts=ts, channel="D0DM"))  # Slack also sends message.im
    harness.event(message(f"<@{BOT_USER}> {QUESTION}", ts=ts, channel="D0DM", channel_type="im"))
    harness.drain()
    assert harness.stub.methods() == ["reactions.add", "chat.postMessage", "chat.update"]


def test_the_bots_own_messages_are_ignored(harness: Harness) -> None:
    harness.event(
        message("87. [1]", ts="1700000000.1", channel="D0DM", channel_type="im", user=BOT_USER)
    )
    harness.drain()
    assert harness.stub.methods() == []


def test_empty_mention_gets_help(harness: Harness) -> None:
    harness.event(mention("", ts="1700000000.000100"))
    harness.drain()
    [update] = harness.stub.to("chat.update")
    assert "Ask me about the news" in update["text"]


def test_acks_never_wait_for_the_api_request_threads(stub: SlackStub, seeds_dir: Path) -> None:
    """The API's sync routes run in anyio's threadpool; Slack's acks must not queue there.
    Here that pool has one thread and a request holds it: Slack's first request (bolt's
    auth.test, on Slack's own threads) and the next (on the event loop) are still
    acknowledged, and answered, while it is held."""
    import anyio.to_thread

    release, held = threading.Event(), threading.Event()
    api = FastAPI()

    @api.post("/v1/busy")
    def busy() -> dict[str, str]:  # a sync route, like /v1/summaries
        held.set()
        release.wait(60)
        return {}

    nd = Newsdesk(make_settings(seeds_dir), embedder=HashingEmbedder())  # type: ignore[arg-type]
    executor = ThreadPoolExecutor(max_workers=2)
    mount_slack(api, nd, bolt_app=build_app(nd, client=stub.client(), executor=executor))

    def in_thread(call: Callable[[], httpx.Response]) -> tuple[threading.Event, list]:
        done, out = threading.Event(), []
        threading.Thread(target=lambda: (out.append(call()), done.set()), daemon=True).start()
        return done, out

    with TestClient(api) as http:
        assert http.portal is not None

        limiter = http.portal.call(anyio.to_thread.current_default_thread_limiter)
        threads = limiter.total_tokens

        def api_threads(n: int) -> None:
            limiter.total_tokens = n

        http.portal.call(api_threads, 1)
        busy_done, _ = in_thread(lambda: http.post("/v1/busy"))
        try:
            assert held.wait(30)
            for n, ts in enumerate(["1700000000.000100", "1700000001.000100"]):
                body = event_body(mention(QUESTION, ts=ts), event_id=f"Ev{n}")
                headers = {"Content-Type": "application/json", **signature_headers(body)}
                done, out = in_thread(
                    lambda b=body, h=headers: http.post("/slack/events", content=b, headers=h)
                )
                assert done.wait(60), f"Slack request {n} waited for the API's thread"
                assert out[0].status_code == 200
            assert not busy_done.is_set()  # the API's one thread was held all along
        finally:
            release.set()
            http.portal.call(api_threads, threads)
        assert busy_done.wait(60)
    executor.shutdown(wait=True)
    assert stub.methods().count("chat.update") == 2


# ---- retries ------------------------------------------------------------------------------


def test_slack_retries_never_produce_a_second_answer(harness: Harness) -> None:
    event = mention(QUESTION, ts="1700000000.000100")
    assert harness.event(event).status_code == 200
    for n in ("1", "2"):
        retry = {"X-Slack-Retry-Num": n, "X-Slack-Retry-Reason": "http_timeout"}
        assert harness.event(event, headers=retry).status_code == 200
    harness.drain()
    assert harness.stub.methods() == ["reactions.add", "chat.postMessage", "chat.update"]


def test_a_retry_alone_is_acknowledged_and_dropped(harness: Harness) -> None:
    r = harness.event(mention(QUESTION, ts="1700000000.000100"), headers={"X-Slack-Retry-Num": "1"})
    assert r.status_code == 200
    harness.drain()
    assert harness.stub.calls == []  # not even auth.test


# ---- slash commands -------------------------------------------------------------------------


def test_ask_command_replies_in_channel(harness: Harness) -> None:
    r = harness.command("/ask", QUESTION)
    assert r.status_code == 200
    ack = r.json()
    assert ack["response_type"] == "ephemeral"
    assert ack["text"].startswith(":hourglass_flowing_sand: Working on it: How many")
    harness.drain()

    assert harness.stub.methods() == ["response_url"]
    [reply] = harness.stub.to("response_url")
    answer = AnswerService(harness.nd).answer(Question(QUESTION))
    assert answer.engine == "extractive"
    assert reply["response_type"] == "in_channel"
    assert reply["text"] == answer.answer
    # Slack shows the channel no trace of the command: the reply says who asked what.
    asked = f"<@{USER}> asked: {QUESTION}"
    expected = expected_answer_blocks(answer, reply["blocks"][1:], harness.nd.settings)
    assert reply["blocks"] == [context_block(asked), *expected]


def test_the_question_shown_in_channel_is_escaped(harness: Harness) -> None:
    # As Slack sends a typed "<b>5 < 6 & @here</b>?": entities, and @here as markup.
    harness.command("/ask", "&lt;b&gt;how many fled? 5 &lt; 6 &amp; <!here>&lt;/b&gt;")
    harness.drain()
    [reply] = harness.stub.to("response_url")
    assert reply["blocks"][0] == context_block(
        f"<@{USER}> asked: &lt;b&gt;how many fled? 5 &lt; 6 &amp; @\u2060here&lt;/b&gt;"
    )
    assert "<!here>" not in harness.stub.payloads() and "<b>" not in harness.stub.payloads()


def test_only_a_real_user_id_becomes_a_mention(harness: Harness) -> None:
    body = command_body("/ask", QUESTION, harness.stub.response_url(), user="<!channel>")
    harness.http.post(
        "/slack/commands",
        content=body,
        headers={"Content-Type": FORM_TYPE, **signature_headers(body)},
    )
    harness.drain()
    [reply] = harness.stub.to("response_url")
    assert reply["blocks"][0] == context_block(f"reader asked: {QUESTION}")


def test_ask_command_is_ephemeral_when_configured(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(slack_ephemeral=True)
    harness.command("/ask", QUESTION)
    harness.drain()
    [reply] = harness.stub.to("response_url")
    assert reply["response_type"] == "ephemeral"


def test_ask_command_refusal_goes_only_to_the_asker(harness: Harness) -> None:
    question = "Who won the 2022 football World Cup final?"
    harness.command("/ask", question)
    harness.drain()
    [reply] = harness.stub.to("response_url")
    assert reply["response_type"] == "ephemeral"
    assert reply["blocks"][0]["text"]["text"].startswith(
        f":no_entry_sign: No coverage of “{question}” in the ingested articles"
    )
    assert reply["blocks"][1]["text"]["text"].startswith(
        ":no_entry_sign: The sources don't cover this"
    )
    assert "Sources" not in block_text(reply["blocks"])
    assert "extractive engine" in reply["blocks"][-1]["elements"][0]["text"]


def test_summarize_command(harness: Harness) -> None:
    r = harness.command("/summarize", "Putin safety zone")
    assert r.status_code == 200 and r.json()["response_type"] == "ephemeral"
    harness.drain()
    [reply] = harness.stub.to("response_url")
    assert reply["response_type"] == "in_channel"
    blocks = reply["blocks"]
    assert blocks[0] == context_block(f"<@{USER}> asked for a summary of: Putin safety zone")
    blocks = blocks[1:]
    assert blocks[0]["text"]["text"].startswith("*Summary: Putin safety zone*\n• ")
    text = block_text(blocks)
    assert "reports: “" in text and "*Sources*\n*[1]* <https://newsdesk.example/read/" in text
    assert blocks[-1]["elements"][0]["text"].startswith(":mag: Answered by the extractive engine")
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")


def test_brief_command(harness: Harness) -> None:
    harness.command("/brief", "Putin safety zone")
    harness.drain()
    [reply] = harness.stub.to("response_url")
    assert reply["response_type"] == "in_channel"
    assert reply["blocks"][0] == context_block(
        f"<@{USER}> asked for a briefing on: Putin safety zone"
    )
    text = block_text(reply["blocks"][1:])
    assert text.startswith("*Briefing: Putin safety zone*")
    assert "*Bottom line*\n• " in text and "*Sources*" in text
    assert reply["blocks"][-1]["elements"][0]["text"].startswith(
        ":mag: Answered by the extractive engine"
    )


@pytest.mark.parametrize("name", ["/ask", "/brief"])
def test_command_without_text_shows_usage_and_does_nothing(harness: Harness, name: str) -> None:
    r = harness.command(name, "  ")
    assert r.json() == {"response_type": "ephemeral", "text": r.json()["text"]}
    assert r.json()["text"].startswith(f"Usage: `{name} <")
    harness.drain()
    assert harness.stub.methods() == []


# ---- errors ----------------------------------------------------------------------------------


def test_nothing_ingested_is_a_friendly_message_in_the_thread(
    make_harness: Callable[..., Harness], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.slack.app")
    harness = make_harness(data_dir=tmp_path / "empty")
    ts = "1700000000.000100"
    harness.event(mention(QUESTION, ts=ts))
    harness.drain()
    assert harness.stub.to("chat.postMessage")[0]["thread_ts"] == ts
    [update] = harness.stub.to("chat.update")
    assert update["text"].startswith(":card_index_dividers: No articles have been ingested yet")
    assert update["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": update["text"], "verbatim": True}}
    ]
    assert any("no article has been ingested" in r.getMessage() for r in caplog.records)


def test_command_errors_are_ephemeral(make_harness: Callable[..., Harness], tmp_path: Path) -> None:
    harness = make_harness(data_dir=tmp_path / "empty")
    harness.command("/summarize", "Putin")
    harness.drain()
    [reply] = harness.stub.to("response_url")
    assert reply["response_type"] == "ephemeral"
    assert "No articles have been ingested yet" in reply["text"]


REFUSED_BY_THE_LLM = {
    "/summarize": {"points": [], "differences": []},
    "/brief": {
        "title": "Putin safety zone",
        "bottom_line": [],
        "developments": [],
        "perspectives": [],
        "differences": [],
        "open_questions": [],
    },
}


@pytest.mark.parametrize("name", list(REFUSED_BY_THE_LLM))
def test_refused_summary_or_briefing_goes_only_to_the_asker(
    make_harness: Callable[..., Harness], name: str
) -> None:
    """The service refuses (the articles are near the topic, but the LLM engine finds
    nothing in them to say): the asker hears "no coverage", the channel hears nothing."""
    topic = "Putin safety zone"
    with httpx.Client() as http, respx.mock(assert_all_called=True) as llm:
        route = llm.post(CHAT_URL).mock(return_value=completion(REFUSED_BY_THE_LLM[name]))
        harness = make_harness(
            llm_http_client=http,
            llm_base_url="http://llm.test/v1",
            llm_api_key="sk-test",
            llm_max_retries=0,
        )
        harness.command(name, topic)
        harness.drain()
    assert route.called
    [reply] = harness.stub.to("response_url")
    assert reply["response_type"] == "ephemeral"
    what = "a summary" if name == "/summarize" else "a briefing"
    assert reply["blocks"][0]["text"]["text"] == (
        f":no_entry_sign: No coverage of “{topic}” in the ingested articles, so {what} was "
        "not posted to the channel. What the service said:"
    )
    said = block_text(reply["blocks"][1:])
    assert "The sources don't say enough" in said and "*Sources*" not in said
    assert reply["blocks"][-1]["elements"][0]["text"].startswith(
        ":robot_face: Answered by the LLM engine"
    )


def test_llm_down_is_a_friendly_message_and_logged(
    make_harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.slack.app")
    with httpx.Client() as http, respx.mock(assert_all_called=True) as llm:
        route = llm.post(CHAT_URL).mock(return_value=httpx.Response(503, json={"error": "down"}))
        harness = make_harness(
            llm_http_client=http,
            llm_base_url="http://llm.test/v1",
            llm_api_key="sk-test",
            llm_max_retries=0,
            llm_fallback="none",
        )
        harness.event(mention(QUESTION, ts="1700000000.000100"))
        harness.drain()
    assert route.called
    [update] = harness.stub.to("chat.update")
    assert update["text"].startswith(":warning: The language model isn't reachable right now")
    assert "llm.test" not in harness.stub.payloads()  # no internals leak into Slack
    # Only the Slack app's records: respx intercepts every httpx call in the block, so the
    # store's background index check may log a failed poll of Chroma meanwhile.
    failures = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name == "service.slack.app"
    ]
    assert failures and "slack answer failed" in failures[0].getMessage()


def test_slack_api_errors_are_logged_not_raised(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.stub.errors["reactions.add"] = "missing_scope"
    harness.stub.errors["chat.postMessage"] = "not_in_channel"
    harness.event(mention(QUESTION, ts="1700000000.000100"))
    harness.drain()
    # No placeholder to update: the answer itself was tried, and the failure logged.
    assert harness.stub.methods() == ["reactions.add", "chat.postMessage", "chat.postMessage"]
    assert any("not_in_channel" in r.getMessage() for r in caplog.records)


# ---- hostile text ----------------------------------------------------------------------------


def test_hostile_article_text_is_escaped(
    make_harness: Callable[..., Harness], tmp_path: Path
) -> None:
    harness = make_harness(data_dir=hostile_dir(tmp_path))
    question = "How many visitors did the Quillborough lantern festival draw?"
    harness.event(mention(question, ts="1700000000.000100"))
    harness.command("/ask", question)
    harness.drain()

    answer = AnswerService(harness.nd).answer(Question(question))
    assert answer.engine == "extractive" and "<!channel>" in answer.answer
    [update] = harness.stub.to("chat.update")
    [reply] = harness.stub.to("response_url")
    for sent in (update, reply):
        text = block_text(sent["blocks"])
        assert "&lt;!channel&gt;" in text and "&lt;https://evil|click&gt;" in text
        assert "refunds &amp; more" in text
        assert "&lt;!here&gt; Quillborough lantern festival" in text  # the title
        assert "Quill &lt;Times&gt; &amp; Co" in text  # the source
        assert "&lt;!channel&gt;" in sent["text"]
    sent_everything = harness.stub.payloads()
    for raw in ("<!channel>", "<!here>", "<https://evil", "<@U024BE7LH>", "Times>"):
        assert raw not in sent_everything


def test_hostile_llm_text_is_escaped(make_harness: Callable[..., Harness], tmp_path: Path) -> None:
    data = hostile_dir(tmp_path)
    claims = {
        "refused": False,
        "claims": [
            {
                # Enough of the quote's words that the claim check keeps it; the markup
                # is what Slack must escape.
                "text": "About 4,000 visitors: Quillborough lantern festival <!everyone> @here.",
                "quotes": [
                    {
                        "passage": 1,
                        "quote": "The Quillborough lantern festival drew 4,000 visitors",
                    }
                ],
            }
        ],
    }
    with httpx.Client() as http, respx.mock(assert_all_called=True) as llm:
        llm.post(CHAT_URL).mock(return_value=completion(claims))
        harness = make_harness(
            data_dir=data,
            llm_http_client=http,
            llm_base_url="http://llm.test/v1",
            llm_api_key="sk-test",
            llm_model="test-model",
            llm_max_retries=0,
        )
        harness.event(mention("How many people came to the lantern festival?", ts="1.1"))
        harness.drain()
    [update] = harness.stub.to("chat.update")
    blocks = update["blocks"]
    assert blocks[0]["text"]["text"] == (
        "About 4,000 visitors: Quillborough lantern festival &lt;!everyone&gt; @\u2060here. [1]"
    )
    assert blocks[-1]["elements"][0]["text"] == (
        ":robot_face: Answered by the LLM engine (test-model) · "
        "1 citation checked against the source text"
    )
    assert "<!everyone>" not in harness.stub.payloads()


# ---- Socket Mode ------------------------------------------------------------------------------


def test_socket_mode_needs_an_app_token(tmp_path: Path) -> None:
    nd = Newsdesk(make_settings(tmp_path), embedder=HashingEmbedder())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NEWSDESK_SLACK_APP_TOKEN"):
        socket_mode_handler(nd)


def test_socket_mode_requests_answer_and_drop_retries(stub: SlackStub, seeds_dir: Path) -> None:
    nd = Newsdesk(
        make_settings(seeds_dir, slack_signing_secret=None, slack_app_token="xapp-test"),
        embedder=HashingEmbedder(),  # type: ignore[arg-type]
    )
    executor = ThreadPoolExecutor(max_workers=2)
    app = build_app(nd, client=stub.client(), executor=executor)
    payload = json.loads(event_body(mention(QUESTION, ts="1700000000.000100")))
    # As Slack sends a first delivery: retry_attempt 0 and an empty reason, never absent.
    first = SocketModeRequest(
        type="events_api", envelope_id="e1", payload=payload, retry_attempt=0, retry_reason=""
    )
    retry = SocketModeRequest(
        type="events_api",
        envelope_id="e2",
        payload=payload,
        retry_attempt=1,
        retry_reason="timeout",
    )
    assert run_bolt_app(app, first).status == 200  # no signature in Socket Mode
    assert run_bolt_app(app, retry).status == 200
    executor.shutdown(wait=True)
    assert stub.methods() == ["reactions.add", "chat.postMessage", "chat.update"]
