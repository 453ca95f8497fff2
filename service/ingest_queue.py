"""Bulk ingest jobs and feed polls on a shared queue (RQ on Redis), run by ``newsdesk
worker`` processes on any machine that reaches the Redis and the Chroma server.

With ``NEWSDESK_REDIS_URL`` set, ``POST /v1/jobs`` keeps the upload and the job's state in
Redis and enqueues an RQ job, all in one MULTI/EXEC transaction, and answers 202 only once
Redis has replied to it; so any replica answers ``GET /v1/jobs/{id}`` and any worker can
run it. How durable that reply is depends on the Redis: with ``appendonly yes`` and
``appendfsync always`` it is written and fsynced to the append-only file before Redis
replies (``scripts/cluster.sh`` starts it so); the default ``everysec`` can lose the last
second of writes to a power cut.

A worker killed mid-job is found by RQ's own abandoned-job handling: a running job sits in
the queue's StartedJobRegistry with an expiry that the worker renews while it runs (here
every third of ``NEWSDESK_QUEUE_JOB_LEASE_SECONDS``, from a thread, since the job runs in
the worker's own process). Each idle worker runs RQ's registry cleanup every
``NEWSDESK_QUEUE_MAINTENANCE_SECONDS``; an expired entry of a job still marked started is
an abandoned job, which RQ requeues while it has retries left (``Retry``), else marks
failed. The job then runs again from its first record: articles already stored come back
"unchanged", since a write of the same text is a no-op.

Feed polls: ``newsdesk watch --queue`` takes each due source's lease in the sources
registry (``SET NX PX`` in Redis, so two watchers never both take one source's tick) and
enqueues one poll task carrying the lease's owner; the worker that runs it polls under
that lease and releases it with the outcome, as an in-process poller does.

Workers use RQ's ``SimpleWorker`` (no fork per job): the embedding model is loaded once
per worker, and a fork after ONNX Runtime has started its threads is not safe.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from rq import Callback, Queue, Retry, SimpleWorker
from rq.job import Job
from rq.worker import WorkerStatus

from service.context import Newsdesk
from service.ingest_jobs import (
    JOB_ID,
    UNFINISHED,
    _now,
    index_with_progress,
    new_job_state,
    read_upload,
)
from service.settings import Settings
from vectorstore.indexer import IngestProgress
from vectorstore.ingest import Article, Failure
from vectorstore.store import StoreError, StoreUnavailable

log = logging.getLogger("newsdesk.queue")

# A finished job's RQ record is only RQ's; the job's own state (below) is what clients read.
RQ_RESULT_TTL = 600
POLL_RETRIES = 1


class QueueUnavailable(StoreUnavailable):
    """The Redis holding the queue cannot be reached: nothing was acknowledged."""


def queue_names(settings: Settings) -> tuple[str, str]:
    """The poll queue, then the ingest queue: a worker takes feed polls first, so a long
    bulk load does not hold up the feeds."""
    prefix = settings.collection_prefix
    return f"{prefix}-poll", f"{prefix}-ingest"


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


# ---- jobs in Redis ------------------------------------------------------------------------


class QueuedJobs:
    """``IngestJobs``' interface (submit, get, start, stop) over Redis and RQ, for the API
    replicas; ``run`` is the worker's side."""

    def __init__(self, settings: Settings, connection: redis.Redis | None = None) -> None:
        assert settings.redis_url, "QueuedJobs needs NEWSDESK_REDIS_URL"
        self.settings = settings
        self.redis = connection or connect(settings.redis_url)
        self.prefix = f"{settings.collection_prefix}:jobs:"
        self.retention_seconds = int(settings.job_retention_hours * 3600)
        _, ingest = queue_names(settings)
        self.queue = Queue(ingest, connection=self.redis)

    def _state_key(self, job_id: str) -> str:
        return f"{self.prefix}{job_id}"

    def _upload_key(self, job_id: str) -> str:
        return f"{self.prefix}{job_id}:upload"

    # The API's lifespan starts and stops the local jobs' thread; here workers do the work.
    def start(self) -> None:
        return None

    def stop(self, timeout: float = 60.0) -> None:
        return None

    def get(self, job_id: str) -> dict[str, Any] | None:
        if not JOB_ID.match(job_id):
            return None
        try:
            raw = self.redis.get(self._state_key(job_id))
        except redis.RedisError as exc:
            raise QueueUnavailable(f"the job queue's Redis is unreachable: {exc}") from exc
        return json.loads(raw) if raw else None

    def submit(
        self, data: bytes, suffix: str, name: str, items: list[Article | Failure]
    ) -> dict[str, Any]:
        """Store the upload and the job, and enqueue it, in one transaction; returns once
        Redis has replied, so a 202 means Redis holds all three."""
        job_id = f"job_{uuid.uuid4().hex}"
        state = new_job_state(job_id, name, items)
        # For the worker and RQ's failure callback, which have the job but not the settings;
        # the API's job model leaves both out.
        state.update(suffix=suffix, retention_seconds=self.retention_seconds)
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                # MULTI first: RQ's enqueue on a caller's pipeline expects to open it.
                pipe.multi()
                pipe.set(self._upload_key(job_id), data)
                pipe.set(self._state_key(job_id), json.dumps(state))
                self.queue.enqueue(
                    run_ingest_job,
                    job_id,
                    self.prefix,
                    job_id=job_id,
                    # A bulk load of thousands of articles takes as long as it takes: no
                    # timeout, but a claim renewed while it runs (IngestWorker).
                    job_timeout=-1,
                    result_ttl=RQ_RESULT_TTL,
                    retry=Retry(max=self.settings.queue_job_retries),
                    on_failure=Callback(on_ingest_failure),
                    description=f"ingest {name}",
                    pipeline=pipe,
                )
                pipe.execute()
        except redis.RedisError as exc:
            raise QueueUnavailable(f"the job queue's Redis is unreachable: {exc}") from exc
        return state

    # ---- the worker's side --------------------------------------------------------------

    def save(self, state: dict[str, Any]) -> None:
        key = self._state_key(state["id"])
        if state["state"] in UNFINISHED:
            self.redis.set(key, json.dumps(state))
        else:
            self.redis.set(key, json.dumps(state), ex=max(1, self.retention_seconds))

    def run(self, job_id: str, newsdesk: Newsdesk) -> str:
        """Run one job to its end; the outcome is in its state."""
        state = self.get(job_id)
        if state is None or state["state"] not in UNFINISHED:
            return "gone"  # finished by an earlier run, or expired
        if state["attempts"]:
            state["message"] = (
                "A worker stopped while this job ran (killed or lost); another run started "
                "from its first record (articles already stored count as unchanged)."
            )
        state.update(state="running", started_at=_now(), attempts=state["attempts"] + 1)
        state.update(IngestProgress(articles_total=state["articles"]["total"]).to_json())
        state["worker"] = socket.gethostname()
        self.save(state)
        upload = self.redis.get(self._upload_key(job_id))
        if upload is None:
            return self._finish(state, "failed", "the job's upload is missing from Redis")
        try:
            with _saved_upload(upload, state.get("suffix", ".json")) as path:
                items = read_upload(path, state["name"])
            report = index_with_progress(newsdesk, items, state, self.save)
        except StoreUnavailable:
            raise  # Chroma unreachable: RQ retries the job while it has retries left
        except StoreError as exc:
            return self._finish(state, "failed", str(exc))
        state.update(errors=report.errors, warnings=report.warnings, article_ids=report.article_ids)
        outcome = self._finish(state, "done", None)
        self.redis.delete(self._upload_key(job_id))
        return outcome

    def _finish(self, state: dict[str, Any], outcome: str, message: str | None) -> str:
        state.update(state=outcome, finished_at=_now())
        if message is not None:
            state["message"] = message
        self.save(state)
        # Uploads live in Redis's memory: a failed one is kept only as long as its state.
        self.redis.expire(self._upload_key(state["id"]), max(1, self.retention_seconds))
        log.info("ingest job %s %s", state["id"], outcome)
        return outcome


@contextlib.contextmanager
def _saved_upload(data: bytes, suffix: str) -> Iterator[Path]:
    # The readers take files (the suffix picks the format), as the local jobs' do.
    with tempfile.TemporaryDirectory(prefix="newsdesk-job-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        yield path


def open_jobs(settings: Settings, newsdesk: Callable[[], Newsdesk]) -> Any:
    """Where bulk jobs go: Redis and the workers when NEWSDESK_REDIS_URL is set, else this
    process's data dir and its own thread."""
    if settings.redis_url:
        return QueuedJobs(settings)
    from service.ingest_jobs import IngestJobs

    return IngestJobs(
        newsdesk,
        settings.data_dir / "jobs",
        retention_seconds=settings.job_retention_hours * 3600,
    )


# ---- what runs in the worker ----------------------------------------------------------


@dataclass
class WorkerContext:
    """What the task functions run with: the worker's store and model, loaded once."""

    newsdesk: Newsdesk
    jobs: QueuedJobs
    sources: Any  # service.sources.Sources, opened on the first poll task


# RQ calls task functions by import path with only their arguments; the worker sets this
# (in its own thread, where SimpleWorker runs them) before it takes any task.
_context: contextvars.ContextVar[WorkerContext] = contextvars.ContextVar("newsdesk_worker")


def _current() -> WorkerContext:
    try:
        return _context.get()
    except LookupError:
        raise RuntimeError("this task runs in `newsdesk worker` only") from None


def run_ingest_job(job_id: str, prefix: str) -> str:
    """The RQ task of one bulk job."""
    ctx = _current()
    assert prefix == ctx.jobs.prefix, f"job of another store ({prefix})"
    return ctx.jobs.run(job_id, ctx.newsdesk)


def on_ingest_failure(
    job: Job, connection: redis.Redis, exc_type: Any, exc_value: Any, tb: Any
) -> None:
    """RQ calls this when a run raised or was abandoned (its worker died): the job's state
    says whether it runs again or failed for good."""
    job_id, prefix = job.args[0], job.args[1]
    key = f"{prefix}{job_id}"
    raw = connection.get(key)
    if raw is None:
        return
    state = json.loads(raw)
    if state["state"] not in UNFINISHED:
        return
    reason = exc_type.__name__ if exc_type is not None else "an error"
    if job.retries_left:
        state.update(
            state="queued",
            message=f"The run stopped ({reason}); the job is queued to run again.",
        )
        connection.set(key, json.dumps(state))
    else:
        state.update(
            state="failed",
            finished_at=_now(),
            message=f"The job stopped ({reason}) on every try; see the workers' logs.",
        )
        keep = max(1, int(state.get("retention_seconds", 604800)))
        connection.set(key, json.dumps(state), ex=keep)
        connection.expire(f"{key}:upload", keep)


def run_poll_task(source_id: str, owner: str) -> dict[str, Any] | None:
    """The RQ task of one source's due poll, run under the lease the watcher took."""
    from vectorstore.sources.poller import Poller

    ctx = _current()
    if ctx.sources is None:
        from service.sources import Sources

        ctx.sources = Sources(ctx.newsdesk)
    sources = ctx.sources
    poller = Poller(
        sources.registry,
        sources.fetcher,
        ctx.newsdesk.indexer.index,
        sources.config,
        owner=owner,
    )
    outcome = poller.run_leased(source_id)
    if outcome is None:
        log.info("poll of %s skipped: its lease ran out before the task ran", source_id)
        return None
    log.info("polled %s: %s", source_id, json.dumps(outcome.record.to_json()))
    return outcome.to_json()


class IngestWorker(SimpleWorker):
    """RQ's SimpleWorker, renewing its claim on the running job from a thread (the job
    itself holds this thread), with a claim as short as the settings say, so a dead
    worker's job is found and requeued in seconds rather than RQ's default minutes."""

    lease_seconds: int = 30

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.lease_seconds

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(max(1.0, self.lease_seconds / 3)):
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:  # noqa: BLE001 - a missed renewal is retried next time
                    log.warning("could not renew the claim on job %s", job.id, exc_info=True)

        renewer = threading.Thread(target=renew, name="rq-heartbeat", daemon=True)
        renewer.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            renewer.join()
        self.set_state(WorkerStatus.IDLE)


def make_worker(settings: Settings, connection: redis.Redis, name: str | None = None) -> Any:
    queues = [Queue(q, connection=connection) for q in queue_names(settings)]
    maintenance = settings.queue_maintenance_seconds
    worker = IngestWorker(
        queues,
        connection=connection,
        name=name or f"{socket.gethostname()}.{uuid.uuid4().hex[:8]}",
        # An idle worker blocks on the queue for worker_ttl - 15 s between maintenance
        # checks, so this keeps those checks at the maintenance interval.
        worker_ttl=maintenance + 15,
        maintenance_interval=maintenance,
        job_monitoring_interval=max(1, settings.queue_job_lease_seconds // 3),
    )
    worker.lease_seconds = settings.queue_job_lease_seconds
    return worker


def run_worker(
    settings: Settings,
    newsdesk: Newsdesk,
    *,
    burst: bool = False,
    name: str | None = None,
    on_ready: Callable[[Any], None] | None = None,
) -> bool:
    """Load the model, then take tasks until stopped (SIGTERM: after the current task;
    a second one: at once) or, with ``burst``, until the queues are empty."""
    assert settings.redis_url
    connection = connect(settings.redis_url)
    ctx = WorkerContext(newsdesk, QueuedJobs(settings, connection), None)
    newsdesk.embedder().embed(["warm-up"])  # before registering: a registered worker is ready
    _ = newsdesk.store
    worker = make_worker(settings, connection, name)
    if on_ready is not None:
        on_ready(worker)
    token = _context.set(ctx)
    try:
        return bool(worker.work(burst=burst, with_scheduler=False, logging_level="WARNING"))
    finally:
        _context.reset(token)
        if ctx.sources is not None:
            ctx.sources.close()


# ---- feed polling on the queue ------------------------------------------------------------


class QueuedWatcher:
    """``newsdesk watch --queue``: takes each due source's lease and enqueues its poll."""

    def __init__(self, settings: Settings, registry: Any, connection: redis.Redis) -> None:
        self.settings = settings
        self.registry = registry
        self.config = settings.sources_config()
        poll, _ = queue_names(settings)
        self.queue = Queue(poll, connection=connection)
        self.owner = f"watch:{socket.gethostname()}:{uuid.uuid4().hex[:6]}"

    def tick(self, limit: int = 16) -> list[str]:
        """Enqueue the polls of up to ``limit`` due sources no one holds; their ids. A
        backlog of polls waiting for workers is not added to."""
        room = max(0, limit - self.queue.count)
        if room == 0:
            return []
        # One owner per tick: the lease names the task, not this watcher.
        owner = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        claimed = self.registry.claim_due(owner, self.config.lease_seconds, room)
        for source in claimed:
            self.queue.enqueue(
                run_poll_task,
                source.id,
                owner,
                job_timeout=-1,
                result_ttl=RQ_RESULT_TTL,
                retry=Retry(max=POLL_RETRIES),
                description=f"poll {source.url}",
            )
        return [s.id for s in claimed]

    def watch(
        self,
        stop: threading.Event,
        *,
        idle_seconds: float = 5.0,
        on_enqueued: Callable[[list[str]], None] | None = None,
    ) -> None:
        while not stop.is_set():
            try:
                enqueued = self.tick()
                due = self.registry.next_due()
            except (redis.RedisError, *self.registry.errors) as exc:
                log.warning("watch --queue: %s", exc)
                stop.wait(idle_seconds)
                continue
            if enqueued and on_enqueued is not None:
                on_enqueued(enqueued)
            wait = idle_seconds if due is None else min(idle_seconds, due - time.time())
            stop.wait(max(0.2, wait))
