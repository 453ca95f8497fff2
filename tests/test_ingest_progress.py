"""Ingest progress counts articles and chunks as they are embedded and stored, on the CLI
(also through ``--api``) and for bulk uploads, which are jobs that survive the server."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

import service.cli
from service.api import create_app
from service.context import Newsdesk
from service.remote_ingest import ingest_through_api
from tests.conftest import HashingEmbedder
from tests.hardening import wait_for
from tests.writers import ApiServer, open_newsdesk, record, server_env
from vectorstore.indexer import IngestProgress
from vectorstore.ingest import count_records, read_paths
from vectorstore.store import record_version

COUNTERS = ("articles_read", "articles_done", "chunks_embedded", "chunks_written")


def write_jsonl(path: Path, n: int, *, bad_lines: int = 0, writer: str = "p") -> dict[str, str]:
    """``n`` records (every fifth several chunks long), then ``bad_lines`` broken ones."""
    records = [record(writer, i) for i in range(n)]
    lines = [json.dumps(r) for r in records]
    lines += ["{not json", json.dumps({"title": "no text"})][:bad_lines]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return {r["id"]: r["text"] for r in records}


def stored_chunks(newsdesk: Newsdesk, ids: list[str]) -> int:
    return sum(a.chunks for a in newsdesk.store.get_articles(ids).values())


def assert_monotone(snapshots: list[Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        values = [s[key] if isinstance(s, dict) else getattr(s, key) for s in snapshots]
        assert values == sorted(values), (key, values)


# ---- the indexer's callback --------------------------------------------------------------


def test_indexer_progress_moves_per_chunk_slice_and_ends_at_the_totals(
    newsdesk: Newsdesk, tmp_path: Path
) -> None:
    newsdesk.indexer.embed_slice = 8  # a store write holds 64 chunks: 8 slices of 8
    source = tmp_path / "many.jsonl"
    texts = write_jsonl(source, 60, bad_lines=2)
    total = count_records(source)
    assert total == 62
    snapshots: list[IngestProgress] = []

    def on_progress(p: IngestProgress) -> None:
        # Reported as added only once it is in the store (this store starts empty).
        assert newsdesk.store.count_articles() >= p.articles_added
        assert p.chunks_written <= p.chunks_embedded
        snapshots.append(dataclasses.replace(p))

    report = newsdesk.indexer.index(read_paths([source]), total=total, on_progress=on_progress)

    assert_monotone(snapshots, COUNTERS)
    last = snapshots[-1]
    chunks = stored_chunks(newsdesk, list(texts))
    assert report.chunks == chunks > 60
    assert (last.articles_total, last.articles_done, last.articles_failed) == (62, 62, 2)
    assert last.articles_added == report.added == 60
    assert last.chunks_embedded == last.chunks_written == last.chunks_expected() == chunks
    assert last.eta_seconds() == 0.0
    # Embedding is reported slice by slice, never in one jump at the end.
    embedded = sorted({s.chunks_embedded for s in snapshots})
    steps = [b - a for a, b in zip(embedded, embedded[1:], strict=False)]
    assert max(steps) <= 8 and len(embedded) >= chunks // 8
    # Articles were done, with a rate and an ETA, well before the end.
    middle = [s for s in snapshots if 0 < s.articles_done < 62 and s.chunks_written]
    assert middle and all(s.eta_seconds() is not None for s in middle)
    assert all(s.chunks_per_second() > 0 for s in middle)


def test_a_second_run_counts_every_article_unchanged(newsdesk: Newsdesk, tmp_path: Path) -> None:
    source = tmp_path / "many.jsonl"
    write_jsonl(source, 12)
    newsdesk.indexer.index(read_paths([source]))
    seen: list[IngestProgress] = []
    newsdesk.indexer.index(
        list(read_paths([source])), on_progress=lambda p: seen.append(dataclasses.replace(p))
    )
    last = seen[-1]
    assert (last.articles_done, last.articles_unchanged, last.chunks_embedded) == (12, 12, 0)
    assert last.chunks_expected() == 0 and last.eta_seconds() == 0.0


# ---- the command line --------------------------------------------------------------------


@pytest.fixture
def terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The CLI's stderr as a wide terminal, so the progress display is drawn."""
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    screen = io.StringIO()
    monkeypatch.setattr(service.cli, "err", Console(file=screen, force_terminal=True, width=220))
    return screen


def test_cli_ingest_of_a_jsonl_shows_articles_and_chunks_stored(
    terminal: io.StringIO, tmp_path: Path
) -> None:
    source = tmp_path / "many.jsonl"
    texts = write_jsonl(source, 40)
    result = CliRunner().invoke(service.cli.app, ["ingest", str(source)])
    assert result.exit_code == 0, result.output
    newsdesk = Newsdesk(service.cli.Settings(), embedder=HashingEmbedder())
    chunks = stored_chunks(newsdesk, list(texts))
    assert newsdesk.store.count_articles() == 40
    assert f"40 added, 0 updated, 0 unchanged, 0 failed; {chunks} chunks written" in result.stdout
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())
    # The last frame: every record and chunk counted, not the one file read.
    assert "40/40 articles" in drawn
    assert f"chunks {chunks}/{chunks} embedded, {chunks} written" in drawn
    assert "ETA 0:00:00" in drawn and "chunks/s" in drawn


# ---- bulk uploads as jobs ----------------------------------------------------------------


class SteppedEmbedder(HashingEmbedder):
    """Embeds one slice per ``step()``, so a test can look at a job between slices."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Semaphore(0)
        self.free = False

    def step(self) -> None:
        self.gate.release()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self.free:
            assert self.gate.acquire(timeout=30), "the test never let this slice through"
        return super().embed(texts)


@pytest.fixture
def stepped(make_newsdesk: Any) -> Iterator[tuple[TestClient, Newsdesk, SteppedEmbedder]]:
    embedder = SteppedEmbedder()
    nd = make_newsdesk(embedder)
    with TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c:
        yield c, nd, embedder
        embedder.free = True
        embedder.step()  # a worker still waiting may finish, so the app can stop


def poll(c: TestClient, job_id: str, until: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def test_a_bulk_upload_is_a_job_whose_counts_follow_the_store(
    stepped: tuple[TestClient, Newsdesk, SteppedEmbedder], tmp_path: Path
) -> None:
    c, nd, embedder = stepped
    # Small slices and writes, so the job is seen between several of each.
    nd.indexer.embed_slice, nd.indexer.batch_chunks = 8, 16
    source = tmp_path / "many.jsonl"
    texts = write_jsonl(source, 30, bad_lines=2)
    r = c.post("/v1/jobs", files={"file": ("many.jsonl", source.read_bytes())})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["articles"]["total"] == 32
    assert {e["origin"] for e in job["errors"]} == {"many.jsonl:31", "many.jsonl:32"}

    seen = [job]
    while job["state"] != "done":
        embedder.step()
        before = job["chunks"]["embedded"]
        job = poll(
            c, job["id"], lambda j, b=before: j["chunks"]["embedded"] > b or j["state"] == "done"
        )
        # What the job calls stored is stored: never ahead of the store.
        stored = nd.store.get_articles(list(texts))
        assert len(stored) >= job["articles"]["added"]
        assert sum(a.chunks for a in stored.values()) >= job["chunks"]["written"]
        seen.append(job)
        assert len(seen) < 500, job

    assert_monotone([s["articles"] | s["chunks"] for s in seen], ("done", "embedded", "written"))
    assert any(0 < s["articles"]["done"] < 32 for s in seen)  # progress, not one jump
    assert any(s["eta_seconds"] is not None and s["eta_seconds"] > 0 for s in seen)
    chunks = stored_chunks(nd, list(texts))
    assert job["articles"] == {
        "total": 32,
        "read": 32,
        "done": 32,
        "added": 30,
        "updated": 0,
        "unchanged": 0,
        "failed": 2,
    }
    assert job["chunks"] == {"expected": chunks, "embedded": chunks, "written": chunks}
    assert job["eta_seconds"] == 0 and job["finished_at"] and job["attempts"] == 1
    assert set(job["article_ids"]) == set(texts)
    assert c.get(f"/v1/articles/{record('p', 7)['id']}").status_code == 200


def test_bulk_upload_errors_are_json_and_unknown_jobs_404(
    stepped: tuple[TestClient, Newsdesk, SteppedEmbedder],
) -> None:
    c, _, embedder = stepped
    embedder.free = True
    r = c.post("/v1/jobs", files={"file": ("a.exe", b"MZ")})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = c.post("/v1/jobs", files={"file": ("a.jsonl", b'{"title": "x"}\n')})
    assert r.status_code == 422 and "record has no 'text'" in r.json()["error"]["message"]
    r = c.get("/v1/jobs/job_" + "0" * 32)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert c.get("/v1/jobs/..%2F..%2Fetc").status_code == 404
    r = c.post("/v1/jobs", json={"text": "One article, not an array."})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = c.post("/v1/jobs", json=[{"text": "Fine."}, {"text": "Extra field.", "colour": "red"}])
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("[1].colour")
    # A JSON array of articles, each as POST /v1/articles takes one.
    body = [{"text": f"The ferry to island {i} resumed on Monday."} for i in range(3)]
    job = c.post("/v1/jobs", json=body).json()
    done = poll(c, job["id"], lambda j: j["state"] == "done")
    assert done["articles"]["added"] == 3 and done["name"] == "body"


def test_a_bulk_upload_costs_rate_limit_by_size_before_any_job(
    make_newsdesk: Any, tmp_path: Path
) -> None:
    nd = make_newsdesk(rate_limit="10/minute", rate_limit_bytes_per_hit=1000)
    source = tmp_path / "many.jsonl"
    write_jsonl(source, 30)
    assert source.stat().st_size > 10_000
    with TestClient(create_app(newsdesk=nd)) as c:
        for _ in range(5):
            assert c.get("/v1/articles").status_code == 200
        r = c.post("/v1/jobs", files={"file": ("many.jsonl", source.read_bytes())})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        big = [{"text": "The ferry resumed. " * 60} for _ in range(10)]
        assert c.post("/v1/jobs", json=big).status_code == 429
        # Polling is free: a long job can be followed past the rate limit.
        for _ in range(20):
            assert c.get("/v1/jobs/job_" + "0" * 32).status_code == 404
    assert not list((nd.settings.data_dir / "jobs").iterdir())


def test_ingest_api_follows_the_job_to_the_end(make_newsdesk: Any, tmp_path: Path) -> None:
    nd = make_newsdesk()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    texts = write_jsonl(inbox / "many.jsonl", 25, bad_lines=1)
    (inbox / "one.txt").write_text("The harbour reopened on Monday after the storm.", "utf-8")
    seen: list[IngestProgress] = []
    with TestClient(create_app(newsdesk=nd)) as c:
        report = ingest_through_api(
            "http://testserver",
            [inbox],
            client=c,
            poll_seconds=0.01,
            on_progress=lambda p: seen.append(dataclasses.replace(p)),
        )
    assert (report.added, report.failed) == (26, 1)
    assert report.chunks == stored_chunks(nd, [*texts, *report.article_ids])
    assert_monotone(seen, ("articles_done", "chunks_written"))
    assert seen[-1].articles_total == seen[-1].articles_done == 27
    assert seen[-1].chunks_written == report.chunks


# ---- a job outlives its server -----------------------------------------------------------


@pytest.mark.server
def test_a_job_survives_shutdown_and_sigkill_and_finishes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    source = tmp_path / "big.jsonl"
    texts = write_jsonl(source, 300, writer="k")
    server = ApiServer(server_env(data), tmp_path / "server.log").start()
    try:
        http = httpx.Client(base_url=server.url, timeout=30)
        job = http.post("/v1/jobs", files={"file": ("big.jsonl", source.read_bytes())}).json()
        url = f"/v1/jobs/{job['id']}"

        def storing() -> bool:
            j = http.get(url).json()
            assert j["state"] != "done", "the job finished before the server could be stopped"
            return j["chunks"]["written"] > 0

        assert wait_for(storing, 60, 0.05)
        server.stop()  # SIGTERM: the job is put back in the queue
        stopped = json.loads((data / "jobs" / job["id"] / "state.json").read_text())
        assert stopped["state"] == "queued" and "shutdown" in stopped["message"]

        server = ApiServer(server_env(data), tmp_path / "server.log").start()
        http = httpx.Client(base_url=server.url, timeout=30)
        assert wait_for(storing, 60, 0.05)
        server.kill()  # SIGKILL: the state file still says running

        server = ApiServer(server_env(data), tmp_path / "server.log").start()
        http = httpx.Client(base_url=server.url, timeout=30)
        done = wait_for(lambda: (j := http.get(url).json())["state"] == "done" and j, 120, 0.2)
        assert done, http.get(url).json()
    finally:
        server.stop()
    assert done["attempts"] == 3 and "restarted from its first record" in done["message"]
    articles = done["articles"]
    assert articles["done"] == articles["total"] == 300 and articles["failed"] == 0
    # The last attempt found what the earlier ones stored.
    assert articles["unchanged"] > 0 and articles["added"] + articles["unchanged"] == 300
    # Every record stored whole: its text, and all its chunks at the version it points to.
    # (Dense-search recall after kills is Chroma's, checked by test_concurrent_writers.py.)
    store = open_newsdesk(data).store
    stored = store.get_articles(list(texts))
    assert {aid: a.text for aid, a in stored.items()} == texts
    counts = store.chunk_counts(list(texts))
    metas = store.article_meta(list(texts))
    assert all(
        counts.get((aid, record_version(metas[aid])), 0) == a.chunks for aid, a in stored.items()
    )
