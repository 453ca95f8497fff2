"""A local stand-in for Slack's Web API, and requests signed the way Slack signs them.

The bot talks to Slack through slack_sdk's ``WebClient`` and ``WebhookClient`` (the
response_url of slash commands), which use urllib, not httpx, so respx cannot intercept
them. Instead ``SlackStub`` is a real HTTP server on 127.0.0.1 that records every call
and answers with canned JSON; the bot's WebClient gets its ``base_url`` and slash commands
get a ``response_url`` on it, so the SDK's own request encoding is exercised too.

``SocketModeStandIn`` is Slack's Socket Mode end: a real websocket server that sends
``hello`` and envelopes shaped as Slack sends them, and records the acknowledgements.
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
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

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
    authorization: str = ""  # the Authorization header: which token made the call


class SlackStub:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.replies: dict[str, list[dict[str, Any]]] = {}  # thread_ts -> messages
        self.errors: dict[str, str] = {}  # method -> Slack error code to answer with
        self.socket_url: str | None = None  # what apps.connections.open hands out
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
                auth = self.headers.get("Authorization") or ""
                with stub._lock:
                    stub.calls.append(Call(method, params, url.path, auth))
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
        if method == "apps.connections.open":
            if not self.socket_url:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": self.socket_url}
        if method == "conversations.replies":
            return {"ok": True, "messages": self.replies.get(params.get("ts", ""), [])}
        return {"ok": True}

    # ---- inspecting ---------------------------------------------------------------

    def api_url(self) -> str:
        """The Web API base, for NEWSDESK_SLACK_API_URL."""
        return f"{self.url}/api/"

    def tokens(self, method: str) -> list[str]:
        """The Authorization header of every call to ``method``."""
        with self._lock:
            return [c.authorization for c in self.calls if c.method == method]

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


def event_payload(event: dict[str, Any], event_id: str = "Ev0001") -> dict[str, Any]:
    """An Events API ``event_callback``: the HTTP body, or a Socket Mode envelope's payload."""
    return {
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


def event_body(event: dict[str, Any], event_id: str = "Ev0001") -> str:
    return json.dumps(event_payload(event, event_id))


def command_payload(
    command: str, text: str, response_url: str, channel: str = CHANNEL, user: str = USER
) -> dict[str, str]:
    """A slash command: form fields over HTTP, a JSON payload in Socket Mode."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "newsroom",
        "channel_id": channel,
        "channel_name": "news",
        "user_id": user,
        "user_name": "reader",
        "command": command,
        "text": text,
        "api_app_id": "A0NEWSDESK",
        "response_url": response_url,
        "trigger_id": "1.2.3",
    }


def command_body(
    command: str, text: str, response_url: str, channel: str = CHANNEL, user: str = USER
) -> str:
    return urlencode(command_payload(command, text, response_url, channel, user))


# ---- Socket Mode ---------------------------------------------------------------------------


def events_api_envelope(
    payload: dict[str, Any], envelope_id: str, *, retry_attempt: int = 0, retry_reason: str = ""
) -> dict[str, Any]:
    """An Events API delivery as Slack sends it over Socket Mode: the first delivery has
    ``retry_attempt: 0`` and an empty ``retry_reason`` (the shape of slack_sdk's own mock
    envelopes in tests/slack_sdk/socket_mode/mock_socket_mode_server.py)."""
    return {
        "envelope_id": envelope_id,
        "payload": payload,
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": retry_attempt,
        "retry_reason": retry_reason,
    }


def slash_command_envelope(payload: dict[str, str], envelope_id: str) -> dict[str, Any]:
    """A slash command over Socket Mode: no retry fields, and the ack may carry a reply."""
    return {
        "envelope_id": envelope_id,
        "payload": payload,
        "type": "slash_commands",
        "accepts_response_payload": True,
    }


HELLO = {
    "type": "hello",
    "num_connections": 1,
    "debug_info": {
        "host": "applink-7fc4fdbb64-4x5xq",
        "build_number": 10,
        "approximate_connection_time": 18060,
    },
    "connection_info": {"app_id": "A0NEWSDESK"},
}


class SocketModeStandIn:
    """Slack's side of a Socket Mode connection on ws://127.0.0.1: on the first connection
    it sends ``hello`` and then each envelope as a text frame, and records every frame the
    client sends back (the acknowledgements, ``{"envelope_id", "payload"?}``)."""

    def __init__(self, envelopes: list[dict[str, Any]]) -> None:
        self.envelopes = envelopes
        self.acks: list[dict[str, Any]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._acked = threading.Event()
        self.server = serve(self._serve, "127.0.0.1", 0, compression=None)
        port = self.server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/link/?ticket=test-ticket&app_id=A0NEWSDESK"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SocketModeStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self._thread.join(10)

    def _serve(self, ws: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
            first = self.connections == 1
        ws.send(json.dumps(HELLO))
        if first:  # a reconnection is not a new delivery
            for envelope in self.envelopes:
                ws.send(json.dumps(envelope))
        try:
            for frame in ws:
                with self._lock:
                    self.acks.append(json.loads(frame))
                    if len(self.acks) >= len(self.envelopes):
                        self._acked.set()
        except ConnectionClosed:
            pass

    def wait_for_acks(self, timeout: float = 60) -> bool:
        """Whether every envelope was acknowledged (waits at most ``timeout`` seconds)."""
        return self._acked.wait(timeout)

    def acked(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {a["envelope_id"]: a for a in self.acks}


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
