"""Request ids, Server-Timing, structured access logs, metrics and a body-size limit, as
pure ASGI."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import internal_error_response
from service.api.metrics import Metrics
from vectorstore import timing

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("newsdesk.access")
log = logging.getLogger("newsdesk.api")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the request id, for log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
            # Which worker of `newsdesk serve --workers N` wrote the line.
            "pid": record.process,
        }
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


async def send_closing_error(send: Send, status: int, code: str, message: str) -> None:
    """A JSON error sent before the request was read to its end: the rest of it is never
    read, so the connection can't be reused and is closed."""
    body = _error_body(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class RequestContextMiddleware:
    """Assigns X-Request-ID, times the request, records metrics and one access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        stages, stages_token = timing.begin()
        started = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", rid.encode()))
                # Where the time went up to the first byte: a streamed answer's later
                # stages are not in it.
                took = time.perf_counter() - started
                headers.append((b"server-timing", timing.server_timing(stages, took).encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # Answered here, inside the request's context, rather than by Starlette's
            # outermost error middleware: so the 500 carries X-Request-ID, its log line the
            # request id, and the exception goes no further. (Past this point uvicorn would
            # log it again and close the connection, resetting a keep-alive client's next
            # request.) Once a response has started, only closing can tell the client it
            # is incomplete.
            if status["started"]:
                raise
            log.exception("unhandled error on %s %s", scope.get("method", ""), scope["path"])
            await internal_error_response()(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status["code"])).inc()
            self.metrics.latency.labels(method, path).observe(elapsed)
            access_log.info(
                "%s %s %s",
                method,
                path,
                status["code"],
                extra={
                    "fields": {
                        "method": method,
                        "route": path,
                        "status": status["code"],
                        "ms": round(elapsed * 1000, 1),
                    }
                },
            )
            timing.end(stages_token)
            request_id_var.reset(token)


class HeaderSizeLimitMiddleware:
    """431 when the request line and headers together are over the limit.

    uvicorn's h11 parser (``newsdesk serve``) stops reading past the same limit, but only
    while the headers are still incomplete: headers that arrive whole in one read of up
    to 256 KiB get through it. This makes the limit exact, and holds under any server.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("method", "")) + len(scope.get("raw_path") or b"")
            size += len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers") or [])
            if size > self.max_bytes:
                await send_closing_error(
                    send,
                    431,
                    "headers_too_large",
                    f"The request line and headers are larger than {self.max_bytes} bytes.",
                )
                return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """413 for bodies over the limit, whether announced by Content-Length or streamed.

    A streamed body is cut off inside ``receive``, where the framework may turn the
    error into something else (FastAPI's JSON parsing made it a 400). So the 413 is sent
    from ``receive`` itself, before the app sees the error, and whatever the app then
    answers is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False
        rejected = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started and not rejected:
                        await self._reject(send)
                        rejected = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Once the 413 is out, any error is the app reacting to its cut-off body.
            if rejected:
                return
            raise

    async def _reject(self, send: Send) -> None:
        await send_closing_error(
            send, 413, "body_too_large", f"The request body is larger than {self.max_bytes} bytes."
        )


class _BodyTooLarge(Exception):
    pass


# Nothing here is a page to frame, sniff or refer from; the HTML docs pages get all but
# the CSP, which would need to allow their inline bootstrap script.
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class SecurityHeadersMiddleware:
    """nosniff, no referrer and no framing on every response; a deny-all CSP on all but
    HTML. Headers the app set itself are kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                content_type = next(
                    (value for name, value in headers if name.lower() == b"content-type"), b""
                )
                extra = list(_SECURITY_HEADERS)
                if not content_type.lower().startswith(b"text/html"):
                    extra.append(_API_CSP)
                headers += [(name, value) for name, value in extra if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
