"""Ingestion spread over processes: bulk jobs and feed polls on RQ (Redis), run by
``newsdesk worker``s, in a deployment started by ``scripts/cluster.sh`` (one Redis, one
Chroma server, two API replicas, two workers, one ``watch --queue``), as an operator
would start it. The workers and replicas load the real embedding model; every wait is on
readiness or on the job's own state, never a fixed sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from rq import Queue, Worker
from rq.registry import FinishedJobRegistry
from typer.testing import CliRunner

import service.cli
from service.api import create_app
from service.context import Newsdesk
from service.ingest_queue import QueuedWatcher, queue_names
from service.settings import Settings
from tests.chroma_server import free_port
from tests.conftest import ROOT, HashingEmbedder
from tests.feed_server import FeedServer, article_html, feed_server, rss
from tests.hardening import child_env, wait_for
from tests.redis_server import RedisServer, redis_binary
from vectorstore.sources.redis_registry import RedisRegistry

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(redis_binary() is None, reason="redis-server is not installed"),
]

SCRIPT = ROOT / "scripts" / "cluster.sh"
LEASE_SECONDS = 6  # a killed worker's job is requeued this long after, plus maintenance
DONE_WITHIN = 150.0  # a 40-article job run twice, on a busy 2-core machine


@dataclass
class Cluster:
    env: dict[str, str]
    replicas: list[httpx.Client]
    redis: redis.Redis
    settings: Settings

    def worker_running(self, job_id: str) -> Worker | None:
        for worker in Worker.all(connection=self.redis):
            if worker.get_current_job_id() == job_id:
                return worker
        return None


@pytest.fixture(scope="module")
def feeds() -> Iterator[FeedServer]:
    with feed_server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("cluster")
    ports = [free_port(), free_port()]
    redis_port = free_port()
    env = child_env(
        CLUSTER_DIR=str(home),
        REPLICAS="2",
        WORKERS="2",
        WATCHERS="1",
        API_PORTS=" ".join(map(str, ports)),
        CHROMA_PORT=str(free_port()),
        REDIS_PORT=str(redis_port),
        READY_TIMEOUT="240",
        NEWSDESK_QUEUE_JOB_LEASE_SECONDS=str(LEASE_SECONDS),
        NEWSDESK_QUEUE_MAINTENANCE_SECONDS="2",
        NEWSDESK_RATE_LIMIT="10000/minute",
        NEWSDESK_INDEX_CHECK_SECONDS="1",
        # The feed server is on 127.0.0.1.
        NEWSDESK_SOURCES_ALLOW_PRIVATE="true",
        NEWSDESK_SOURCES_HOST_INTERVAL="0",
    )
    started = subprocess.run(
        [str(SCRIPT), "start"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=400
    )
    try:
        assert started.returncode == 0, started.stderr + _logs(home)
        connection = redis.Redis(port=redis_port)
        settings = Settings(_env_file=None, redis_url=f"redis://127.0.0.1:{redis_port}/0")
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=30) for p in ports]
        yield Cluster(env, clients, connection, settings)
        for client in clients:
            client.close()
        connection.close()
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, cwd=ROOT, timeout=120)


def _logs(home: Path) -> str:
    return "".join(
        f"\n== {log.name}\n{log.read_text(errors='replace')[-1500:]}"
        for log in sorted((home / "logs").glob("*.log"))
    )


def article(n: int) -> dict[str, str]:
    text = " ".join(
        f"Harbour board {n} counted {j * n + 3} boats at the quay of zqport{n}x on day {j}."
        for j in range(24)
    )
    return {"id": f"bulk-{n:03d}", "title": f"Quay count {n}", "source": "Port Times", "text": text}


def test_a_job_survives_its_worker_being_killed_and_every_article_is_stored(
    cluster: Cluster,
) -> None:
    one, two = cluster.replicas
    upload = [article(n) for n in range(40)]
    r = one.post("/v1/jobs", json=upload)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["location"] == f"/v1/jobs/{job_id}"

    # The other replica reads the job: its state is in Redis, not in replica one.
    seen = two.get(f"/v1/jobs/{job_id}")
    assert seen.status_code == 200 and seen.json()["articles"]["total"] == 40

    # Mid-job: some articles stored, not all. Kill the worker running it.
    def midway() -> bool:
        state = two.get(f"/v1/jobs/{job_id}").json()
        return state["state"] == "running" and 0 < state["articles"]["done"] < 40

    assert wait_for(midway, DONE_WITHIN, 0.2), two.get(f"/v1/jobs/{job_id}").json()
    victim = cluster.worker_running(job_id)
    assert victim is not None and victim.pid
    os.kill(victim.pid, signal.SIGKILL)
    stored_before = two.get(f"/v1/jobs/{job_id}").json()["articles"]["done"]

    def finished() -> dict | None:
        state = two.get(f"/v1/jobs/{job_id}").json()
        return state if state["state"] in ("done", "failed") else None

    state = wait_for(finished, DONE_WITHIN, 0.5)
    assert state is not None, two.get(f"/v1/jobs/{job_id}").json()
    assert state["state"] == "done", state
    # Run again from the first record by the surviving worker; what the killed one had
    # stored came back unchanged rather than stored twice.
    assert state["attempts"] == 2 and "another run started" in state["message"]
    assert state["articles"]["done"] == 40 and state["articles"]["failed"] == 0
    assert state["articles"]["unchanged"] >= stored_before
    assert state["articles"]["added"] + state["articles"]["unchanged"] == 40
    assert sorted(state["article_ids"]) == sorted(a["id"] for a in upload)

    # Every acknowledged article, through the other replica: text and searchable.
    for a in upload:
        got = one.get(f"/v1/articles/{a['id']}")
        assert got.status_code == 200 and got.json()["text"] == a["text"], a["id"]
    hits = one.post("/v1/search", json={"query": "zqport17x quay", "mode": "keyword"}).json()
    assert hits and hits[0]["article_id"] == "bulk-017"

    # Sending the same upload again stores nothing: every article is unchanged.
    again = two.post("/v1/jobs", json=upload)
    assert again.status_code == 202
    state = wait_for(
        lambda: (s := one.get(f"/v1/jobs/{again.json()['id']}").json())["state"] == "done" and s,
        DONE_WITHIN,
        0.5,
    )
    assert state and state["articles"]["unchanged"] == 40 and state["chunks"]["embedded"] == 0


def test_feed_polls_are_queued_by_the_watcher_and_run_by_workers(
    cluster: Cluster, feeds: FeedServer
) -> None:
    text = [
        "The island ferry resumed its crossings on Monday after the storm damaged the pier.",
        "Harbour officials said the zqferryx timetable would be reduced for two weeks.",
    ]
    feeds.add("/queued-story", body=article_html("Ferry back", text, site_name="Isle News"))
    feeds.add(
        "/queued.rss",
        body=rss("Isle feed", [{"title": "Ferry back", "link": feeds.url("/queued-story")}]),
        content_type="application/rss+xml",
    )
    one, two = cluster.replicas
    created = one.post("/v1/sources", json={"url": feeds.url("/queued.rss"), "every": "30m"})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]

    # The watcher (started by cluster.sh) queues the poll; a worker runs it.
    def polled() -> dict | None:
        source = two.get(f"/v1/sources/{sid}").json()
        return source if source["polls"] else None

    source = wait_for(polled, 90, 0.5)
    assert source is not None, "the source was never polled"
    assert source["last_success_at"] and source["last_error"] is None, source
    assert source["kind"] == "feed" and source["last_poll"]["items_new"] == 1, source
    poll_queue, _ = queue_names(cluster.settings)
    finished = FinishedJobRegistry(poll_queue, connection=cluster.redis)
    assert any(
        (job := finished.get_queue().fetch_job(jid)) is not None and job.args[0] == sid
        for jid in finished.get_job_ids()
    ), "no finished poll task for the source on the queue"

    # Replica one's keyword index catches up with the worker's write on its own.
    def found() -> list:
        query = {"query": "zqferryx timetable", "mode": "keyword"}
        return one.post("/v1/search", json=query).json()

    hits = wait_for(found, 30, 0.5)
    assert hits, "replica one never found the polled article"
    got = one.get(f"/v1/articles/{hits[0]['article_id']}").json()
    assert got["url"] == feeds.url("/queued-story") and got["source"] == "Isle News"


# ---- without the cluster: the watcher's lease, and the worker's preconditions ---------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_two_watchers_never_queue_the_same_source_tick(redis_server: RedisServer) -> None:
    settings = Settings(_env_file=None, redis_url=redis_server.url, sources_lease_seconds=2.0)
    config = settings.sources_config()
    registry = RedisRegistry(redis_server.url, prefix=config.redis_prefix)
    registry.add("http://news.example/feed.rss", None, 1800.0)
    connection = redis.Redis.from_url(redis_server.url)
    watchers = [QueuedWatcher(settings, registry, connection) for _ in range(2)]
    start = threading.Barrier(2)
    queued: list[str] = []

    def run(watcher: QueuedWatcher) -> None:
        start.wait()
        for _ in range(20):
            queued.extend(watcher.tick())

    threads = [threading.Thread(target=run, args=(w,)) for w in watchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    poll_queue = Queue(queue_names(settings)[0], connection=connection)
    assert len(queued) == 1 and poll_queue.count == 1

    # Nobody ran it and its lease ran out: the next tick queues it again, under a new
    # lease, and the stale task finds its own lease gone.
    stale = poll_queue.jobs[0]
    assert wait_for(lambda: watchers[1].tick(), 6.0, 0.2)
    fresh = poll_queue.jobs[-1]
    assert fresh.args[1] != stale.args[1]
    assert not registry.renew(stale.args[0], stale.args[1], 2.0)
    assert registry.renew(fresh.args[0], fresh.args[1], 2.0)
    registry.close()
    connection.close()


runner = CliRunner()


def test_worker_and_queued_watch_refuse_without_their_services(redis_server: RedisServer) -> None:
    result = runner.invoke(service.cli.app, ["worker"], env={"NEWSDESK_REDIS_URL": ""})
    assert result.exit_code == 1
    assert "worker needs a queue: set NEWSDESK_REDIS_URL." in result.output

    env = {"NEWSDESK_REDIS_URL": redis_server.url}
    result = runner.invoke(service.cli.app, ["worker"], env=env)
    assert result.exit_code == 1
    assert "worker needs a Chroma server: set NEWSDESK_CHROMA_HOST." in result.output

    result = runner.invoke(service.cli.app, ["watch", "--queue"], env={"NEWSDESK_REDIS_URL": ""})
    assert result.exit_code == 1
    assert "watch --queue needs a queue: set NEWSDESK_REDIS_URL." in result.output


def _api(tmp_path: Path, redis_url: str) -> TestClient:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        llm_base_url=None,
        llm_api_key=None,
    )
    newsdesk = Newsdesk(settings, embedder=HashingEmbedder())  # type: ignore[arg-type]
    return TestClient(create_app(newsdesk=newsdesk), raise_server_exceptions=False)


def test_a_job_is_acknowledged_only_once_redis_holds_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    upload = [article(n) for n in range(3)]
    with _api(tmp_path, redis_server.url) as api:
        r = api.post("/v1/jobs", json=upload)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        # No worker here: the job waits in Redis, with its upload, for one.
        assert api.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
    connection = redis.Redis.from_url(redis_server.url)
    queue = Queue(queue_names(Settings(_env_file=None))[1], connection=connection)
    assert queue.job_ids == [job_id]
    assert connection.exists(f"newsdesk:jobs:{job_id}:upload")
    connection.close()

    down = f"redis://127.0.0.1:{free_port()}/0"
    with _api(tmp_path, down) as api:
        r = api.post("/v1/jobs", json=upload)
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        assert api.get(f"/v1/jobs/{job_id}").status_code == 503
