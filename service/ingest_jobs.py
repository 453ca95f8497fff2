"""Bulk ingest jobs: an upload is saved to disk, acknowledged with a job id, and indexed by
one background thread that keeps the job's progress in a state file.

Why on disk: a job must survive the process. The upload and a ``state.json`` are written
(and fsynced) before the client gets its 202, so a job that was acknowledged is either
finished or resumed by the next process that opens this data dir. A resumed job reads its
upload again from the start; articles stored before the stop come back as "unchanged",
since a write of the same text is a no-op. Readers of the state file (``GET /v1/jobs``)
only ever see counts of articles that were stored before the file was written.

One worker thread per process: embedding is CPU-bound, so two jobs at once would only
share the cores and both finish later.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.context import Newsdesk
from vectorstore.indexer import IngestProgress, IngestReport
from vectorstore.ingest import Article, Failure, read_file
from vectorstore.store import StoreError

log = logging.getLogger("newsdesk.jobs")

JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
UNFINISHED = ("queued", "running")
# While only records are being read, state files are rewritten at most this often.
SAVE_INTERVAL_SECONDS = 0.5


class _Stopped(Exception):
    """The process is shutting down: leave the job to be resumed."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_upload(path: Path, name: str) -> list[Article | Failure]:
    """The upload's records, with origins naming the uploaded file, not the saved copy.

    An upload is not a file of ours to follow: without an id or URL its article is known
    by its text alone (two uploads of one text are one article, as before)."""
    items = list(read_file(path, identity=False))
    for item in items:
        item.origin = (item.origin or "").replace(str(path), name)
    return items


class IngestJobs:
    """The jobs of one data dir: submit, read, and the worker thread that runs them."""

    def __init__(
        self, newsdesk: Callable[[], Newsdesk], root: Path, *, retention_seconds: float
    ) -> None:
        self._newsdesk = newsdesk
        self.root = root
        self.retention_seconds = retention_seconds
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- files ------------------------------------------------------------------------

    def _dir(self, job_id: str) -> Path:
        return self.root / job_id

    def _save(self, state: dict[str, Any], *, durable: bool = True) -> None:
        # Progress need not survive a power cut (a resumed job counts again from zero);
        # the job's existence and its end do.
        path = self._dir(state["id"]) / "state.json"
        _write_atomic(path, json.dumps(state).encode(), durable=durable)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as last saved; read from disk so every process on this data dir agrees."""
        if not JOB_ID.match(job_id):
            return None
        try:
            return json.loads((self._dir(job_id) / "state.json").read_text("utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _inputs(self, job_id: str) -> list[Path]:
        return sorted(self._dir(job_id).glob("input.*"))

    @contextlib.contextmanager
    def _claim(self, job_id: str) -> Iterator[bool]:
        """Whether this process may run the job: an flock, which dies with its holder, so
        a job left by a killed process is free again while one being run is not."""
        with open(self._dir(job_id) / "lock", "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ---- submit -----------------------------------------------------------------------

    def submit(
        self, data: bytes, suffix: str, name: str, items: list[Article | Failure]
    ) -> dict[str, Any]:
        """Save the upload and its job, durably, then queue it. ``items`` is the upload
        already read (by the caller, to refuse what holds no article before answering)."""
        job_id = f"job_{uuid.uuid4().hex}"
        folder = self._dir(job_id)
        folder.mkdir(parents=True)
        try:
            _write_atomic(folder / f"input{suffix}", data)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)  # a full disk: nothing was acknowledged
            raise
        state = new_job_state(job_id, name, items)
        self._save(state)
        _fsync_dir(folder)
        _fsync_dir(self.root)
        self._queue.put(job_id)
        return state

    # ---- worker -----------------------------------------------------------------------

    def start(self) -> None:
        """Queue the jobs an earlier process left unfinished, drop expired ones, and start
        the worker."""
        self.root.mkdir(parents=True, exist_ok=True)
        unfinished = []
        for folder in self.root.iterdir():
            state = self.get(folder.name)
            if state is None:
                continue
            if state["state"] in UNFINISHED:
                unfinished.append(state)
            elif self._expired(state):
                with self._claim(state["id"]) as mine:
                    if mine:
                        for path in folder.iterdir():
                            path.unlink()
                        folder.rmdir()
        for state in sorted(unfinished, key=lambda s: s["created_at"]):
            log.info("resuming ingest job %s (%s)", state["id"], state["state"])
            self._queue.put(state["id"])
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="ingest-jobs", daemon=True)
        self._thread.start()

    def _expired(self, state: dict[str, Any]) -> bool:
        finished = state.get("finished_at")
        if not finished:
            return False
        age = datetime.now(UTC) - datetime.fromisoformat(finished)
        return age.total_seconds() > self.retention_seconds

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the current embedding slice; the job stays queued for the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("ingest job worker still running after %.0f s", timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._run(job_id)
            except Exception:
                log.exception("ingest job %s: unexpected error", job_id)

    def _run(self, job_id: str) -> None:
        with self._claim(job_id) as mine:
            if not mine:
                return  # another process on this data dir is running it
            state = self.get(job_id)
            if state is None or state["state"] not in UNFINISHED:
                return
            if state["attempts"]:
                state["message"] = (
                    "The server stopped while this job ran (shut down or killed); it was "
                    "restarted from its first record (articles already stored count as "
                    "unchanged)."
                )
            state.update(state="running", started_at=_now(), attempts=state["attempts"] + 1)
            # Each attempt counts from zero: the counts only ever say what this run stored.
            state.update(IngestProgress(articles_total=state["articles"]["total"]).to_json())
            self._save(state)
            try:
                report = self._index(state)
            except _Stopped:
                state.update(
                    state="queued",
                    message="Interrupted by a shutdown; it resumes when the server starts again.",
                )
                self._save(state)
                return
            except StoreError as exc:
                self._finish(state, "failed", str(exc))
                return
            except Exception:
                log.exception("ingest job %s failed", job_id)
                self._finish(state, "failed", f"Internal error; the server log has job {job_id}.")
                return
            finally:
                # Searches must see what was stored, not a keyword index from before.
                self._newsdesk().keyword.invalidate()
            state.update(
                errors=report.errors, warnings=report.warnings, article_ids=report.article_ids
            )
            self._finish(state, "done", None)
            for path in self._inputs(job_id):
                path.unlink()

    def _finish(self, state: dict[str, Any], outcome: str, message: str | None) -> None:
        state.update(state=outcome, finished_at=_now())
        if message is not None:
            state["message"] = message
        self._save(state)
        log.info("ingest job %s %s", state["id"], outcome)

    def _index(self, state: dict[str, Any]) -> IngestReport:
        inputs = self._inputs(state["id"])
        if not inputs:
            raise StoreError("the job's upload is missing from the data dir")
        items = read_upload(inputs[0], state["name"])

        def check() -> None:
            if self._stop.is_set():
                raise _Stopped

        def save(current: dict[str, Any]) -> None:
            self._save(current, durable=False)

        return index_with_progress(self._newsdesk(), items, state, save, check=check)


def new_job_state(job_id: str, name: str, items: list[Article | Failure]) -> dict[str, Any]:
    """A job as acknowledged: queued, with the upload's refused records already listed."""
    errors = [{"origin": i.origin, "reason": i.reason} for i in items if isinstance(i, Failure)]
    progress = IngestProgress(articles_total=len(items))
    return {
        "id": job_id,
        "state": "queued",
        "name": name,
        "created_at": _now(),
        "started_at": None,
        "finished_at": None,
        "attempts": 0,
        "message": None,
        **progress.to_json(),
        "errors": errors,
        "warnings": [],
        "article_ids": [],
    }


def index_with_progress(
    newsdesk: Newsdesk,
    items: list[Article | Failure],
    state: dict[str, Any],
    save: Callable[[dict[str, Any]], None],
    *,
    check: Callable[[], None] | None = None,
) -> IngestReport:
    """Index the upload, handing ``save`` the job's state as it progresses; ``check`` runs
    at every step and may raise to stop the run. The state ends with the progress as of
    the run's end."""
    last: dict[str, Any] = {"saved": 0.0, "counts": None}
    seen: list[IngestProgress] = []

    def on_progress(progress: IngestProgress) -> None:
        if not seen:
            seen.append(progress)
        if check is not None:
            check()
        # Every slice embedded and batch written is saved; records read (which come
        # fast) at most every SAVE_INTERVAL_SECONDS.
        counts = (progress.articles_done, progress.chunks_embedded, progress.chunks_written)
        now = time.monotonic()
        if counts == last["counts"] and now - last["saved"] < SAVE_INTERVAL_SECONDS:
            return
        state.update(progress.to_json())
        save(state)
        last.update(saved=now, counts=counts)

    report = newsdesk.indexer.index(items, on_progress=on_progress)
    state.update(seen[0].to_json())
    return report
