"""FastAPI dependencies: the per-app Newsdesk, auth and rate limiting."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request

from service.api.metrics import Metrics
from service.context import Newsdesk


def get_newsdesk(request: Request) -> Newsdesk:
    return request.app.state.newsdesk


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def require_key(request: Request) -> str:
    """Authenticate when keys are configured; no rate-limit hit (docs, metrics)."""
    return request.app.state.keys.identify(request)


def require_caller(request: Request) -> str:
    """Authenticate (when keys are configured) and apply the rate limit."""
    identity = request.app.state.keys.identify(request)
    request.app.state.rate_limiter.check(identity)
    request.state.caller = identity
    return identity


def charge_for_size(request: Request, size_bytes: int) -> None:
    """Spend the rate-limit hits an upload of ``size_bytes`` costs beyond the one its
    request already spent: one per started ``rate_limit_bytes_per_hit`` bytes.

    429 before any work when the caller's budget cannot cover it. An upload that costs
    more than the whole window holds is charged the whole window, so it can still get in.
    """
    limiter = request.app.state.rate_limiter
    per_hit = request.app.state.settings.rate_limit_bytes_per_hit
    cost = min(max(1, math.ceil(size_bytes / per_hit)), limiter.capacity)
    if cost > 1:
        limiter.check(
            request.state.caller,
            cost=cost - 1,
            what=(
                f"An upload of {size_bytes} bytes costs {cost} requests of the rate limit "
                "and not enough are left"
            ),
        )


NewsdeskDep = Annotated[Newsdesk, Depends(get_newsdesk)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
