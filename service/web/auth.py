"""Page logins and CSRF tokens.

With ``NEWSDESK_API_KEYS`` set, a page visitor types a key once and gets a session
cookie: signed (itsdangerous, keyed with the link secret), HttpOnly, SameSite=Strict,
expiring after ``NEWSDESK_SESSION_LIFETIME_HOURS``. It holds a fingerprint of the key,
never the key, and is refused once that key is no longer configured. Without keys the
pages are open, as the API is.

Every form and the page's own POSTs carry a CSRF token: a signed random value kept in a
cookie and repeated in the form (or the ``X-CSRF-Token`` header), compared in constant
time (the double-submit pattern; the signature stops a cookie planted by a neighbouring
subdomain from passing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer

from service.settings import Settings

SESSION_COOKIE = "newsdesk_session"
CSRF_COOKIE = "newsdesk_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Visitor:
    """Who is looking at a page: ``identity`` is the rate-limit identity the API would
    give the same caller (a key digest, or the address when keys are off)."""

    identity: str
    logged_in: bool


class PageAuth:
    def __init__(self, settings: Settings, secret: bytes) -> None:
        self._keys = [k.get_secret_value() for k in settings.api_keys if k.get_secret_value()]
        self._fingerprints = {key_fingerprint(k) for k in self._keys}
        self.max_age = int(settings.session_lifetime_hours * 3600)
        self._sessions = URLSafeTimedSerializer(secret, salt="newsdesk-session")
        self._csrf = Signer(secret, salt="newsdesk-csrf")

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    # ---- keys and sessions ---------------------------------------------------------

    def check_key(self, candidate: str) -> str | None:
        """The key's fingerprint when it is one of the configured keys, else None."""
        matched = False
        # Compare against every key so timing reveals neither which key nor how much matched.
        for key in self._keys:
            matched |= hmac.compare_digest(candidate.encode(), key.encode())
        return key_fingerprint(candidate) if matched else None

    def visitor(self, request: Request) -> Visitor | None:
        """The logged-in visitor, any visitor when keys are off, else None."""
        if not self.enabled:
            address = request.client.host if request.client else "unknown"
            return Visitor(f"ip:{address}", logged_in=False)
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=self.max_age)
        except BadSignature:  # tampered, foreign or expired (SignatureExpired is one)
            return None
        fingerprint = data.get("k") if isinstance(data, dict) else None
        if fingerprint not in self._fingerprints:  # the key was removed since
            return None
        return Visitor(f"key:{fingerprint}", logged_in=True)

    def start_session(self, response: Response, request: Request, fingerprint: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.dumps({"k": fingerprint}),
            max_age=self.max_age,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    # ---- CSRF ----------------------------------------------------------------------

    def csrf_token(self, request: Request, response: Response | None = None) -> str:
        """The browser's token, made (and set on ``response``) on its first visit."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if current and self._csrf.validate(current):
            return current
        token = self._csrf.sign(secrets.token_urlsafe(24)).decode()
        if response is not None:
            self.set_csrf_cookie(response, request, token)
        return token

    @staticmethod
    def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def csrf_ok(self, request: Request, submitted: str | None) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not submitted or not self._csrf.validate(cookie):
            return False
        return hmac.compare_digest(cookie.encode(), submitted.encode())


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only, never another host."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(ch) < 32 for ch in target)
    ):
        return "/"
    return target
