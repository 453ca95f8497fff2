"""Ingest files through a running API server instead of opening the store.

The embedded store belongs to the process that opened it (the server), so a CLI next to
a running server sends its files there. A file of one article goes to ``POST
/v1/articles`` and is stored when the answer comes. A file of several records (.jsonl, a
.json array) goes to ``POST /v1/jobs`` as a job, which is polled until done, so
its progress (articles and chunks stored) can be shown while the server embeds it. The
server's reports are added up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from vectorstore.indexer import IngestProgress, IngestReport, ProgressCallback
from vectorstore.ingest import Failure, count_records, expand_paths


class RemoteIngestError(RuntimeError):
    """The server could not be reached or refused the whole request (auth, rate limit)."""


class _Tally:
    """The whole run's progress: finished files plus the file in flight."""

    def __init__(self, total: int, on_progress: ProgressCallback | None) -> None:
        self.progress = IngestProgress(articles_total=total)
        self.on_progress = on_progress
        self.started = time.perf_counter()
        self.base = {"done": 0, "added": 0, "updated": 0, "unchanged": 0, "failed": 0}
        self.base_chunks = 0

    def show(self, current: dict[str, Any] | None = None) -> None:
        """Publish the counts of finished files plus ``current``, a job's state so far."""
        articles = (current or {}).get("articles", {})
        chunks = (current or {}).get("chunks", {})
        p = self.progress
        p.articles_done = self.base["done"] + int(articles.get("done", 0))
        p.articles_read = p.articles_done
        p.articles_added = self.base["added"] + int(articles.get("added", 0))
        p.articles_updated = self.base["updated"] + int(articles.get("updated", 0))
        p.articles_unchanged = self.base["unchanged"] + int(articles.get("unchanged", 0))
        p.articles_failed = self.base["failed"] + int(articles.get("failed", 0))
        p.chunks_embedded = self.base_chunks + int(chunks.get("embedded", 0))
        p.chunks_written = self.base_chunks + int(chunks.get("written", 0))
        # The server says how many chunks an article took; the rest is estimated from it.
        p.articles_sized = p.articles_done
        p.articles_chunked = p.articles_added + p.articles_updated
        p.chunks_total = p.chunks_embedded
        p.elapsed = time.perf_counter() - self.started
        if self.on_progress is not None:
            self.on_progress(p)

    def finish(self, counts: dict[str, int], records: int) -> None:
        """A file is over: all ``records`` it was counted for are done, however the server
        counted them (a file refused whole is one error but all its records)."""
        for key in ("added", "updated", "unchanged", "failed"):
            self.base[key] += counts[key]
        finished = sum(counts[k] for k in ("added", "updated", "unchanged", "failed"))
        self.base["done"] += max(finished, records)
        self.base_chunks += counts["chunks"]
        total = self.progress.articles_total or 0
        self.progress.articles_total = max(total, self.base["done"])
        self.show()


def ingest_through_api(
    base_url: str,
    paths: Iterable[Path],
    *,
    api_key: str | None = None,
    on_file: Callable[[str], None] | None = None,
    on_progress: ProgressCallback | None = None,
    client: httpx.Client | None = None,
    retry_seconds: float = 60.0,
    poll_seconds: float = 0.5,
) -> IngestReport:
    """Upload every file; a request that got no answer (the server restarting) is sent
    again for up to ``retry_seconds``: an article write is idempotent, so a repeat of one
    that did land answers "unchanged", and a job, saved before it was acknowledged, is
    resumed by the restarted server and polled until it is done."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    http = client or httpx.Client(timeout=600)
    report = IngestReport()
    started = time.perf_counter()
    items = list(expand_paths(paths))
    sizes = {str(p): count_records(p) for p in items if isinstance(p, Path)}
    tally = _Tally(sum(sizes.values()) + sum(isinstance(p, Failure) for p in items), on_progress)
    base = base_url.rstrip("/")
    try:
        for item in items:
            if isinstance(item, Failure):
                report.failed += 1
                report.errors.append({"origin": item.origin, "reason": item.reason})
                tally.finish(_rejected_counts(), 1)
                continue
            call = _Call(http, base, headers, retry_seconds)
            counts = None
            if sizes[str(item)] > 1:
                counts = _upload_job(call, item, report, tally, poll_seconds)
            if counts is None:  # one article, or a server without jobs
                counts = _upload(call, item, report)
            tally.finish(counts, sizes[str(item)])
            if on_file:
                on_file(str(item))
    finally:
        if client is None:
            http.close()
    report.seconds = time.perf_counter() - started
    return report


class _Call:
    """Requests to the server that outlast its restarts, for up to ``retry_seconds``."""

    def __init__(
        self, http: httpx.Client, base: str, headers: dict[str, str], retry_seconds: float
    ) -> None:
        self.http, self.base, self.headers = http, base, headers
        self.retry_seconds = retry_seconds

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_seconds
        wait = 0.2
        while True:
            try:
                r = self.http.request(method, f"{self.base}{path}", headers=self.headers, **kwargs)
                break
            except httpx.TransportError as exc:
                if time.monotonic() + wait > deadline:
                    raise RemoteIngestError(
                        f"cannot reach the Newsdesk server at {self.base}: {exc}"
                    ) from exc
                time.sleep(wait)
                wait = min(wait * 2, 5.0)
        if r.status_code in (401, 403, 429) or r.status_code >= 500:
            # Not about this file: going on would fail every other file the same way.
            raise RemoteIngestError(f"the server answered {r.status_code}: {_message(r)}")
        return r


def _upload(call: _Call, path: Path, report: IngestReport) -> dict[str, int]:
    r = call("POST", "/v1/articles", files={"file": (path.name, path.read_bytes())})
    if r.status_code >= 400:
        return _rejected(path, r, report)
    body = r.json()
    counts = {k: int(body.get(k, 0)) for k in ("added", "updated", "unchanged", "failed", "chunks")}
    _add(report, counts, body)
    return counts


def _upload_job(
    call: _Call, path: Path, report: IngestReport, tally: _Tally, poll_seconds: float
) -> dict[str, int] | None:
    """The file as a job, polled until done; None when the server has no job route."""
    r = call("POST", "/v1/jobs", files={"file": (path.name, path.read_bytes())})
    if r.status_code in (404, 405):
        return None
    if r.status_code >= 400:
        return _rejected(path, r, report)
    job = r.json()
    while job["state"] not in ("done", "failed"):
        tally.show(job)
        time.sleep(poll_seconds)
        polled = call("GET", f"/v1/jobs/{job['id']}")
        if polled.status_code >= 400:
            raise RemoteIngestError(
                f"the server lost track of job {job['id']} for {path}: {_message(polled)}"
            )
        job = polled.json()
    if job["state"] == "failed":
        # What failed a job (a full disk, the store) is not about this file either.
        raise RemoteIngestError(f"the server's job for {path} failed: {job.get('message')}")
    articles = job["articles"]
    counts = {k: int(articles[k]) for k in ("added", "updated", "unchanged", "failed")}
    counts["chunks"] = int(job["chunks"]["written"])
    _add(report, counts, job)
    return counts


def _rejected_counts() -> dict[str, int]:
    return {"added": 0, "updated": 0, "unchanged": 0, "failed": 1, "chunks": 0}


def _rejected(path: Path, r: httpx.Response, report: IngestReport) -> dict[str, int]:
    report.failed += 1
    report.errors.append({"origin": str(path), "reason": _message(r)})
    return _rejected_counts()


def _add(report: IngestReport, counts: dict[str, int], body: dict[str, Any]) -> None:
    for key, value in counts.items():
        setattr(report, key, getattr(report, key) + value)
    report.errors += body.get("errors", [])
    report.warnings += body.get("warnings", [])
    report.article_ids += body.get("article_ids", [])


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
