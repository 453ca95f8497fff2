"""Where a request's time goes: named stages timed into the current request's record,
which the API sends back as a ``Server-Timing`` header (service/api/middleware.py).

Stages may nest: an answer's ``engine`` holds its ``llm`` call and ``verify``. Outside a
request (CLI, tests, benches calling functions directly) nothing is recorded and a stage
costs two clock reads.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

_record: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "stage_timings", default=None
)


def begin() -> tuple[dict[str, float], contextvars.Token[dict[str, float] | None]]:
    """Start recording stages for this context; the record and the token to end it.

    The record is one dict shared by reference: FastAPI runs sync routes in a worker
    thread with a copy of this context, and what they add is seen here."""
    record: dict[str, float] = {}
    return record, _record.set(record)


def end(token: contextvars.Token[dict[str, float] | None]) -> None:
    _record.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block into the current record as ``name`` (summed when repeated)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        record = _record.get()
        if record is not None:
            record[name] = record.get(name, 0.0) + time.perf_counter() - started


def server_timing(record: dict[str, float], total_seconds: float) -> str:
    """The header value: each stage in ms, then ``app`` for the whole request."""
    parts = [f"{name};dur={1000 * s:.1f}" for name, s in record.items()]
    parts.append(f"app;dur={1000 * total_seconds:.1f}")
    return ", ".join(parts)


def parse_server_timing(value: str) -> dict[str, float]:
    """``Server-Timing`` back to {name: ms} (what the bench and tests read)."""
    out: dict[str, float] = {}
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "dur" and name:
                out[name] = float(number)
    return out
