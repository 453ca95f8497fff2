"""A local stand-in for Slack's Web API, and requests signed the way Slack signs them.

The bot talks to Slack through slack_sdk's ``WebClient`` and ``WebhookClient`` (the
response_url of slash commands), which use urllib, not httpx, so respx cannot intercept
them. Instead ``SlackStub`` is a real HTTP server on 127.0.0.1 that records every call
and answers with canned JSON; the bot's WebClient gets its ``base_url`` and slash commands
get a ``response_url`` on it, so the SDK's own request encoding is exercised too.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from slack_sdk import WebClient

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T0001"
USER = "U0USER"
CHANNEL = "C0NEWS"


@dataclass
class Call:
    method: str  # a Web API method ("chat.postMessage"), or "response_url"
    params: dict[str, Any]
    path: str


class SlackStub:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.replies: dict[str, list[dict[str, Any]]] = {}  # thread_ts -> messages
        self.errors: dict[str, str] = {}  # method -> Slack error code to answer with
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                url = urlsplit(self.path)
                params: dict[str, Any] = dict(parse_qsl(url.query))
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(raw))
                    else:
                        params.update(parse_qsl(raw.decode()))
                if url.path.startswith("/api/"):
                    method = url.path.removeprefix("/api/")
                    body = json.dumps(stub.answer(method, params)).encode()
                    content_type = "application/json"
                else:
                    method, body, content_type = "response_url", b"ok", "text/plain"
                with stub._lock:
                    stub.calls.append(Call(method, params, url.path))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> SlackStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client(self) -> WebClient:
        return WebClient(token=BOT_TOKEN, base_url=f"{self.url}/api/")

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/commands/{name}"

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method in self.errors:
            return {"ok": False, "error": self.errors[method]}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://newsroom.slack.com/",
                "team": "Newsroom",
                "user": "newsdesk",
                "team_id": TEAM,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
            }
        if method == "chat.postMessage":
            ts = f"1800000000.{next(self._ts):06d}"
            return {"ok": True, "channel": params.get("channel"), "ts": ts}
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "conversations.replies":
            return {"ok": True, "messages": self.replies.get(params.get("ts", ""), [])}
        return {"ok": True}

    # ---- inspecting ---------------------------------------------------------------

    def to(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call to ``method``, in order, without the ``team_id``
        that bolt's per-request client adds to every call."""
        with self._lock:
            calls = [c.params for c in self.calls if c.method == method]
        return [{k: v for k, v in params.items() if k != "team_id"} for params in calls]

    def methods(self) -> list[str]:
        """Every method called except auth.test (bolt's one-off token check)."""
        with self._lock:
            return [c.method for c in self.calls if c.method != "auth.test"]

    def payloads(self) -> str:
        """Everything the bot sent, as one JSON string, for searching."""
        with self._lock:
            return json.dumps([c.params for c in self.calls], ensure_ascii=False)


# ---- signed requests --------------------------------------------------------------------


def signature_headers(
    body: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET
) -> dict[str, str]:
    """Slack's v0 signature: HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def event_body(event: dict[str, Any], event_id: str = "Ev0001") -> str:
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "api_app_id": "A0NEWSDESK",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1700000000,
            "event": {"event_ts": event.get("ts"), **event},
            "authorizations": [
                {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
            ],
        }
    )


def command_body(command: str, text: str, response_url: str, channel: str = CHANNEL) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "newsroom",
            "channel_id": channel,
            "channel_name": "news",
            "user_id": USER,
            "user_name": "reader",
            "command": command,
            "text": text,
            "api_app_id": "A0NEWSDESK",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )


def mention(text: str, ts: str, thread_ts: str | None = None, channel: str = CHANNEL) -> dict:
    event = {
        "type": "app_mention",
        "user": USER,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": channel,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message(
    text: str,
    ts: str,
    *,
    thread_ts: str | None = None,
    channel: str = CHANNEL,
    channel_type: str = "channel",
    user: str = USER,
) -> dict:
    event = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event
