"""FastAPI dependencies: the per-app Newsdesk, auth and rate limiting."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.api.metrics import Metrics
from service.context import Newsdesk


def get_newsdesk(request: Request) -> Newsdesk:
    return request.app.state.newsdesk


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def require_caller(request: Request) -> str:
    """Authenticate (when keys are configured) and apply the rate limit."""
    identity = request.app.state.keys.identify(request)
    request.app.state.rate_limiter.check(identity)
    return identity


NewsdeskDep = Annotated[Newsdesk, Depends(get_newsdesk)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
