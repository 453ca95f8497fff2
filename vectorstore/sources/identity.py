"""An article's identity from its URL: the canonical URL, normalised so the same article
reached by a share link, a feed link with tracking parameters or an ``http://`` alias gets
one id.

Normalisation is deliberately conservative: only changes that never name another resource
on a real news site are made (case of scheme and host, default ports, tracking parameters,
the fragment, parameter order, an empty path). Paths keep their case and trailing slash:
servers differ on both, and merging two real articles would be worse than keeping a copy.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

# Parameters that say how a reader arrived, never which article: analytics campaigns
# (utm_*), ad click ids and newsletter / social share markers.
TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "hsa_", "_hs", "mc_", "ga_")
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mkt_tok",
        "_ga",
        "_gl",
        "ocid",
        "cmpid",
        "smid",
        "ito",
        "at_medium",
        "at_campaign",
        "ref_src",
        "share",
    }
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a path or query may hold as they are; everything else is %-encoded, so
# "%7E" and "~", or "é" and "%C3%A9", give one URL.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# In a query "&", "=" and "+" separate or encode, so inside a name or value they stay
# encoded.
_QUERY_SAFE = "/:@!$'()*,;-._~"


class InvalidURL(ValueError):
    """Not an absolute http(s) URL."""

    code = "bad_url"


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """``url`` normalised: lowercase scheme and host, default port dropped, tracking
    parameters and the fragment removed, the other parameters sorted, percent-encoding
    made uniform. Idempotent: ``canonical_url(canonical_url(u)) == canonical_url(u)``."""
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:  # a port that is not a number, an unbalanced "["
        raise InvalidURL(f"not a valid URL: {raw!r} ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL(f"not an http(s) URL: {raw!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidURL(f"URL has no host: {raw!r}")
    try:
        # IDNA: "bücher.example" and "xn--bcher-kva.example" are one host.
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = host.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(unquote(parts.path), safe=_PATH_SAFE) or "/"
    pairs = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    ]
    # Sorted by name only: the order of a repeated name's values can matter to a server.
    pairs.sort(key=lambda pair: pair[0])
    query = urlencode(pairs, quote_via=quote, safe=_QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def url_article_id(url: str) -> str:
    """The article id of a canonical URL: short, URL-safe and the same in every process."""
    return "url-" + hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:20]
