"""API keys (constant-time compare, never logged) and per-key rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from fastapi import Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from service.api.errors import ApiError
from service.settings import Settings


class KeyChecker:
    def __init__(self, settings: Settings) -> None:
        self._keys = [
            k.get_secret_value().encode() for k in settings.api_keys if k.get_secret_value()
        ]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, request: Request) -> str:
        """The caller's rate-limit identity: a digest of its key, or its address."""
        if not self._keys:
            return f"ip:{request.client.host if request.client else 'unknown'}"
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthorized",
                "Missing API key: send 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        candidate = token.strip().encode()
        # Compare against every key so timing reveals neither which key nor how much matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise ApiError(
                401, "unauthorized", "Invalid API key.", headers={"WWW-Authenticate": "Bearer"}
            )
        return "key:" + hashlib.sha256(candidate).hexdigest()[:16]


class RateLimiter:
    """Moving-window limit per caller (the limits library, in memory per process)."""

    def __init__(self, rate: str) -> None:
        self.item = parse(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, identity: str) -> None:
        if self.limiter.hit(self.item, identity):
            return
        reset_at, _remaining = self.limiter.get_window_stats(self.item, identity)
        retry = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests; retry in {retry} s.",
            headers={"Retry-After": str(retry)},
        )
