"""Nothing acknowledged is lost with several writers at once: threads in one process,
processes on one Chroma server, API clients of one server or of two replicas, with
SIGKILLs triggered by write counts. After every run, every acknowledged article must be
stored whole and found by dense and keyword search (tests/writers.py has the check).
``make chaos`` runs the same scenarios at larger counts (bench/chaos.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.context import Newsdesk
from tests.chroma_server import ChromaServer
from tests.conftest import ROOT
from tests.hardening import child_env
from tests.writers import (
    ApiServer,
    check_acknowledged,
    open_newsdesk,
    record,
    server_env,
    write_in_processes,
    write_in_threads,
    write_through_api,
)


def assert_nothing_lost(newsdesk: Newsdesk, acked: dict[str, str], expected: int) -> None:
    assert len(acked) == expected
    verdict = check_acknowledged(newsdesk, acked)
    assert verdict.problems == [], verdict.problems[:10]
    assert verdict.present == expected


def test_four_threads_indexing_at_once_lose_nothing(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    # Repair on every call, as when each request is a new process: it must never take
    # another thread's chunks for a crash's leftovers.
    newsdesk = make_newsdesk(repair_interval_seconds=0.0)
    acked = write_in_threads(newsdesk, writers=4, per_writer=15)
    assert_nothing_lost(newsdesk, acked, 60)


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_writer_processes_on_one_chroma_server_killed_by_count_lose_nothing(
    chroma: ChromaServer, tmp_path: Path
) -> None:
    env = child_env(
        NEWSDESK_CHROMA_HOST="127.0.0.1",
        NEWSDESK_CHROMA_PORT=str(chroma.port),
        NEWSDESK_DATA_DIR=str(tmp_path / "writers"),
        NEWSDESK_REPAIR_INTERVAL_SECONDS="0",
    )
    acked, kills = write_in_processes(env, writers=3, per_writer=16, kill_every=12)
    assert kills >= 2
    newsdesk = open_newsdesk(tmp_path / "check", chroma.port)
    assert_nothing_lost(newsdesk, acked, 48)


@pytest.mark.server
def test_api_clients_of_a_server_killed_by_count_lose_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ApiServer(server_env(data), tmp_path / "server.log").start()
    try:
        acked, kills = write_through_api([server], clients=4, per_client=12, kill_every=16)
    finally:
        server.stop()
    assert kills >= 2
    assert_nothing_lost(open_newsdesk(data), acked, 48)


@pytest.mark.server
def test_api_clients_of_two_replicas_on_one_chroma_server_lose_nothing(
    chroma: ChromaServer, tmp_path: Path
) -> None:
    servers = [
        ApiServer(server_env(tmp_path / f"r{i}", chroma.port), tmp_path / f"r{i}.log").start()
        for i in range(2)
    ]
    try:
        acked, kills = write_through_api(servers, clients=4, per_client=12, kill_every=20)
    finally:
        for server in servers:
            server.stop()
    assert kills >= 1
    assert_nothing_lost(open_newsdesk(tmp_path / "check", chroma.port), acked, 48)


def test_a_second_process_on_the_embedded_store_is_refused_with_one_line(
    newsdesk: Newsdesk, tmp_path: Path
) -> None:
    """Chroma's embedded mode doesn't see another process's writes: the second process
    is told so, and told what to do instead, before it writes anything."""
    assert newsdesk.store.count_articles() == 0  # this process now holds the store
    article = tmp_path / "a.txt"
    article.write_text("The harbour reopened on Monday.", "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "ingest", str(article)],
        cwd=ROOT,
        env=child_env(NEWSDESK_DATA_DIR=str(newsdesk.settings.data_dir)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "in use by another process" in lines[0] and "--api" in lines[0]
    assert "Traceback" not in done.stderr
    assert newsdesk.store.count_articles() == 0


@pytest.mark.server
def test_cli_ingest_next_to_a_running_server_goes_through_its_api(tmp_path: Path) -> None:
    data, inbox = tmp_path / "data", tmp_path / "inbox"
    inbox.mkdir()
    expected = {}
    for n in range(6):
        body = record("cli", n)
        (inbox / f"{body['id']}.json").write_text(json.dumps(body), "utf-8")
        expected[body["id"]] = body["text"]
    server = ApiServer(server_env(data), tmp_path / "server.log").start()
    try:

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "service.cli", "ingest", *args],
                cwd=ROOT,
                env=child_env(NEWSDESK_DATA_DIR=str(data)),
                capture_output=True,
                text=True,
                timeout=120,
            )

        refused = cli(str(inbox))
        assert refused.returncode == 1
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "in use by another process" in refused.stderr

        sent = cli("--api", server.url, "--json", str(inbox))
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["added"] == 6
    finally:
        server.stop()
    assert_nothing_lost(open_newsdesk(data), expected, 6)
