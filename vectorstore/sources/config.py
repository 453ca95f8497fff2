"""What the source poller needs to know; built by ``service.settings.Settings``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FetchConfig:
    """How politely and how defensively pages are fetched."""

    user_agent: str
    connect_timeout: float
    read_timeout: float
    # A whole fetch, headers to last byte: read_timeout alone lets a server that sends a
    # byte every few seconds (slow-loris) hold a poller forever.
    total_timeout: float
    max_bytes: int
    max_redirects: int
    # Seconds between two requests to one host, and requests to one host at once.
    host_interval: float
    host_concurrency: int
    respect_robots: bool
    robots_cache_seconds: float
    # Loopback, private, link-local (cloud metadata) and reserved addresses: refused unless
    # allowed, since anyone who may add a source could otherwise make the server fetch its
    # own network and store what it finds where search shows it.
    allow_private: bool


@dataclass(frozen=True)
class SourcesConfig:
    """Where sources are kept and how the poller schedules them."""

    registry_path: Path
    default_every_seconds: float
    lease_seconds: float
    max_backoff_seconds: float
    max_items_per_poll: int
    fetch: FetchConfig
    # Set: the registry is in this Redis (shared by every machine), not registry_path.
    redis_url: str | None
    # Keys' prefix in that Redis, so deployments sharing one server stay apart.
    redis_prefix: str


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Polling more often than this is unkind to any server and rarely finds news.
MIN_INTERVAL_SECONDS = 30.0
MAX_INTERVAL_SECONDS = 30 * 86400.0


def parse_interval(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``2h``, ``1d`` or ``1h30m``; a bare number is minutes.
    Raises ``ValueError`` with a readable reason."""
    raw = text.strip().lower()
    if not raw:
        raise ValueError("empty interval; use e.g. 15m, 1h or 90s")
    if raw.replace(".", "", 1).isdigit():
        seconds = float(raw) * 60
    else:
        seconds, number = 0.0, ""
        for ch in raw:
            if ch.isdigit() or ch == ".":
                number += ch
            elif ch in _UNITS and number and number.count(".") <= 1:
                seconds += float(number) * _UNITS[ch]
                number = ""
            else:
                raise ValueError(f"invalid interval {text!r}; use e.g. 15m, 1h or 90s")
        if number:
            raise ValueError(f"invalid interval {text!r}; a number needs a unit (s, m, h, d)")
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise ValueError(
            f"interval {text!r} is out of range: between {MIN_INTERVAL_SECONDS:g}s and 30d"
        )
    return seconds
