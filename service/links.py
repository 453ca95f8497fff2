"""Signed, expiring citation links: ``/read/{article_id}?spans=&rev=&exp=&sig=``.

A link names one article, the spans to highlight in it, the revision they index and when
it expires, and carries an HMAC-SHA256 of exactly those, keyed with the server's link
secret. Whoever holds one may read that article's reader page and nothing else: the
signature covers the article id, so it opens no other page, and it is never an API key.

The secret is ``NEWSDESK_LINK_SECRET`` when set. Unset, a random one is made once and
kept in ``<data dir>/link-secret`` (0600): random rather than derived from the API keys,
which would void every link when a key is rotated and leave nothing to derive from
without keys; kept on disk so links survive restarts and the workers of one server
agree. Replicas on separate disks would each make their own, so they must set it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlencode

from service.models import Citation, CitedResult
from service.settings import Settings

SECRET_FILE = "link-secret"
MAX_SPANS = 20  # a briefing cites one article a handful of times; this bounds a URL's size
_PURPOSE = b"newsdesk reader link v1"
# The first highlighted span carries this id, so the browser scrolls to it on its own.
FRAGMENT = "cited"

Spans = tuple[tuple[int, int], ...]
R = TypeVar("R", bound=CitedResult)


class LinkRefused(Exception):
    """A link that opens nothing: ``reason`` is ``invalid`` (tampered, malformed) or
    ``expired``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ReaderLink:
    """What a verified link grants: this article, these spans, this revision."""

    article_id: str
    spans: Spans
    revision: int
    expires: int


def load_secret(settings: Settings) -> bytes:
    """The link secret: the setting, else the one kept under the data dir (made once)."""
    if settings.link_secret is not None and settings.link_secret.get_secret_value():
        return settings.link_secret.get_secret_value().encode()
    path = settings.data_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        # link() never replaces: when two workers start at once, the first one's secret
        # is the one both use, and a reader never sees a half-written file.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty: delete it to make a new link secret")
    return value.encode()


def format_spans(spans: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"{start}-{end}" for start, end in spans)


def parse_spans(raw: str) -> Spans:
    """``"12-40,50-61"`` -> ((12, 40), (50, 61)); ValueError for anything else."""
    spans: list[tuple[int, int]] = []
    for part in raw.split(","):
        start, sep, end = part.partition("-")
        if not sep or not start.isdigit() or not end.isdigit():
            raise ValueError(f"not a span: {part!r}")
        if int(start) >= int(end):
            raise ValueError(f"empty span: {part!r}")
        spans.append((int(start), int(end)))
    if not spans or len(spans) > MAX_SPANS:
        raise ValueError(f"between 1 and {MAX_SPANS} spans")
    return tuple(spans)


class LinkSigner:
    def __init__(
        self,
        secret: bytes,
        lifetime_seconds: float,
        skew_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # One key per purpose, so a link signature can never pass as a session cookie's.
        self._key = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
        self.lifetime = lifetime_seconds
        self.skew = skew_seconds
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        return cls(
            load_secret(settings),
            settings.link_lifetime_hours * 3600,
            settings.link_clock_skew_seconds,
        )

    def _mac(self, article_id: str, spans: str, revision: str, expires: str) -> str:
        # NUL-separated: no field can contain one that shifts text into the next field
        # (article ids are URL path segments, the rest digits).
        message = "\0".join((article_id, spans, revision, expires)).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def params(
        self, article_id: str, spans: Sequence[tuple[int, int]], revision: int
    ) -> dict[str, str]:
        """The query parameters of a link, signed now."""
        values = {
            "spans": format_spans(spans[:MAX_SPANS]),
            "rev": str(revision),
            "exp": str(int(self.clock() + self.lifetime)),
        }
        values["sig"] = self._mac(article_id, values["spans"], values["rev"], values["exp"])
        return values

    def url(
        self, base_url: str, article_id: str, spans: Sequence[tuple[int, int]], revision: int
    ) -> str:
        query = urlencode(self.params(article_id, spans, revision))
        path = f"/read/{quote(article_id, safe='')}"
        return f"{base_url.rstrip('/')}{path}?{query}#{FRAGMENT}"

    def verify(self, article_id: str, query: Mapping[str, str]) -> ReaderLink:
        """The link's grant, or LinkRefused. The MAC is checked first and on the raw
        values, so nothing about a tampered link is parsed or compared as a number."""
        raw = {name: query.get(name, "") for name in ("spans", "rev", "exp", "sig")}
        if not all(raw.values()):
            raise LinkRefused("invalid", "This link is incomplete.")
        expected = self._mac(article_id, raw["spans"], raw["rev"], raw["exp"])
        if not hmac.compare_digest(expected.encode(), raw["sig"].encode()):
            raise LinkRefused("invalid", "This link is not valid: it was changed or mistyped.")
        try:
            spans = parse_spans(raw["spans"])
            revision, expires = int(raw["rev"]), int(raw["exp"])
        except ValueError as exc:  # signed by us, so only an old or foreign format
            raise LinkRefused("invalid", "This link is not valid.") from exc
        if self.clock() > expires + self.skew:
            raise LinkRefused("expired", "This link has expired: ask for the answer again.")
        return ReaderLink(article_id, spans, revision, expires)


def with_links(result: R, signer: LinkSigner, base_url: str) -> R:
    """``result`` with each citation's ``url``: a signed reader link that highlights its
    span first, then the result's other spans in the same article and revision."""
    by_article: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for c in result.citations:
        spans = by_article.setdefault((c.article_id, c.revision), [])
        if (c.start, c.end) not in spans:
            spans.append((c.start, c.end))
    linked: list[Citation] = []
    for c in result.citations:
        own = (c.start, c.end)
        others = [s for s in by_article[(c.article_id, c.revision)] if s != own]
        url = signer.url(base_url, c.article_id, [own, *others], c.revision)
        linked.append(c.model_copy(update={"url": url}))
    return result.model_copy(update={"citations": linked})
