"""API keys (constant-time compare, never logged), per-key rate limits and a limit on
failed key checks per client address."""

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


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class RateLimiter:
    """Moving-window limit per caller (the limits library, in memory per process)."""

    def __init__(self, rate: str) -> None:
        self.item = parse(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    @property
    def capacity(self) -> int:
        return self.item.amount

    def check(self, identity: str, cost: int = 1, what: str = "Too many requests") -> None:
        """Spend ``cost`` hits, or 429 and spend nothing."""
        if self.limiter.hit(self.item, identity, cost=cost):
            return
        self._refuse(identity, what)

    def ensure_available(self, identity: str, what: str) -> None:
        """429 when not even one hit is left, without spending one."""
        if not self.limiter.test(self.item, identity):
            self._refuse(identity, what)

    def _refuse(self, identity: str, what: str) -> None:
        reset_at, _remaining = self.limiter.get_window_stats(self.item, identity)
        retry = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"{what}; retry in {retry} s.",
            headers={"Retry-After": str(retry)},
        )


class KeyChecker:
    def __init__(self, settings: Settings) -> None:
        self._keys = [
            k.get_secret_value().encode() for k in settings.api_keys if k.get_secret_value()
        ]
        self.failures = RateLimiter(settings.auth_failure_limit)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, request: Request) -> str:
        """The caller's rate-limit identity: a digest of its key, or its address."""
        address = client_address(request)
        if not self._keys:
            return f"ip:{address}"
        # Checked before the key is compared: an address that has used up its failures
        # learns nothing more, not even whether its next guess was right.
        failures_key = f"auth-failures:{address}"
        self.failures.ensure_available(failures_key, "Too many failed API key checks")
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self._failed(failures_key, "Missing API key: send 'Authorization: Bearer <key>'.")
        candidate = token.strip().encode()
        # Compare against every key so timing reveals neither which key nor how much matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            self._failed(failures_key, "Invalid API key.")
        return "key:" + hashlib.sha256(candidate).hexdigest()[:16]

    def _failed(self, failures_key: str, message: str) -> None:
        self.failures.check(failures_key, what="Too many failed API key checks")
        raise ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
