"""Every error is JSON: ``{"error": {"code", "message"}}`` with a stable code.

The shape is OpenAI's, so OpenAI clients pointed at /v1/chat/completions surface our
messages as they would theirs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from service.errors import LLMError, NewsdeskError
from vectorstore.store import StoreError

log = logging.getLogger("newsdesk.api")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


# The status of each code in the service's error taxonomy (service/errors.py). Its
# InvalidRequest is a 400: what FastAPI finds wrong in a body is a 422 (below).
STATUS_OF_CODE = {
    "invalid_request": 400,
    "question_too_long": 400,
    "unknown_article": 400,
    "nothing_found": 404,
    "nothing_ingested": 404,
    "unknown_story": 404,
    "llm_auth": 502,
    "llm_error": 503,
    "llm_unavailable": 503,
    "llm_bad_response": 503,
    "store_unavailable": 503,
    "store_busy": 503,
    "source_busy": 409,
    "insufficient_storage": 507,
    "embedding_model_mismatch": 500,
}
# Whose own message says more than a client should see (paths, hosts).
_PUBLIC_MESSAGE = {
    "store_unavailable": "The article store is unavailable; try again shortly.",
}
# A busy store clears once the slow write ends.
_HEADERS = {"store_busy": {"Retry-After": "5"}, "source_busy": {"Retry-After": "30"}}


def reported_error_response(exc: NewsdeskError | StoreError) -> JSONResponse:
    """The API's answer to an error of the service's taxonomy."""
    if isinstance(exc, LLMError):
        log.warning("llm error: %s", exc.code)
    elif isinstance(exc, StoreError):
        log.warning("store error: %s", exc)
    return error_response(
        STATUS_OF_CODE.get(exc.code, 500),
        exc.code,
        _PUBLIC_MESSAGE.get(exc.code, str(exc)),
        headers=_HEADERS.get(exc.code),
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append(
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "problem": err.get("msg", "invalid"),
            }
        )
    return out


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path.

    The router's own 405 names only the first route that matched the path, so for
    /v1/articles it said POST and left out GET.
    """
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details[0] if details else {"field": "body", "problem": "invalid"}
        where = first["field"] or "request body"
        return error_response(422, "invalid_request", f"{where}: {first['problem']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: a 405 must say which methods the resource does accept.
            allowed = allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
            message = (
                f"{request.method} is not allowed here; use {headers['Allow']}."
                if headers.get("Allow")
                else message
            )
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(NewsdeskError)
    @app.exception_handler(StoreError)
    async def _reported(_: Request, exc: NewsdeskError | StoreError) -> JSONResponse:
        return reported_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Only what fails outside RequestContextMiddleware gets here (the routes' errors
        # are answered there, with the request id); never a stack trace either way.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return internal_error_response()


def internal_error_response() -> JSONResponse:
    """The 500 of an unexpected error: the stack trace is in the log, keyed by the
    request id the response's X-Request-ID header carries."""
    return error_response(
        500,
        "internal_error",
        "Something went wrong on our side. "
        "The request id in X-Request-ID identifies it in the logs.",
    )
