"""Ingest files through a running API server instead of opening the store.

The embedded store belongs to the process that opened it (the server), so a CLI next to
a running server sends its files to ``POST /v1/articles``, one upload per file, and adds
up the server's reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from vectorstore.indexer import IngestReport
from vectorstore.ingest import Failure, expand_paths


class RemoteIngestError(RuntimeError):
    """The server could not be reached or refused the whole request (auth, rate limit)."""


def ingest_through_api(
    base_url: str,
    paths: Iterable[Path],
    *,
    api_key: str | None = None,
    on_file: Callable[[str], None] | None = None,
    client: httpx.Client | None = None,
    retry_seconds: float = 60.0,
) -> IngestReport:
    """Upload every file; a file whose request got no answer (the server restarting) is
    sent again for up to ``retry_seconds``: an article write is idempotent, so a repeat
    of one that did land answers "unchanged"."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    http = client or httpx.Client(timeout=600)
    report = IngestReport()
    started = time.perf_counter()
    try:
        for item in expand_paths(paths):
            if isinstance(item, Failure):
                report.failed += 1
                report.errors.append({"origin": item.origin, "reason": item.reason})
                continue
            _upload(http, base_url.rstrip("/"), item, headers, report, retry_seconds)
            if on_file:
                on_file(str(item))
    finally:
        if client is None:
            http.close()
    report.seconds = time.perf_counter() - started
    return report


def _upload(
    http: httpx.Client,
    base: str,
    path: Path,
    headers: dict[str, str],
    report: IngestReport,
    retry_seconds: float,
) -> None:
    content = path.read_bytes()
    deadline = time.monotonic() + retry_seconds
    wait = 0.2
    while True:
        try:
            r = http.post(
                f"{base}/v1/articles", files={"file": (path.name, content)}, headers=headers
            )
            break
        except httpx.TransportError as exc:
            if time.monotonic() + wait > deadline:
                raise RemoteIngestError(
                    f"cannot reach the Newsdesk server at {base}: {exc}"
                ) from exc
            time.sleep(wait)
            wait = min(wait * 2, 5.0)
    if r.status_code in (401, 403, 429) or r.status_code >= 500:
        # Not about this file: going on would fail every other file the same way.
        raise RemoteIngestError(f"the server answered {r.status_code}: {_message(r)}")
    if r.status_code >= 400:
        report.failed += 1
        report.errors.append({"origin": str(path), "reason": _message(r)})
        return
    body = r.json()
    for key in ("added", "updated", "unchanged", "failed", "chunks"):
        setattr(report, key, getattr(report, key) + int(body.get(key, 0)))
    report.errors += body.get("errors", [])
    report.warnings += body.get("warnings", [])
    report.article_ids += body.get("article_ids", [])


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
