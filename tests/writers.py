"""Concurrent writers, killed by write count, and the check every acknowledged write passes.

Shared by tests/test_concurrent_writers.py (small counts, in CI) and bench/chaos.py
(``make chaos``, larger counts). A writer is a thread, a process writing to the store
itself, or an HTTP client of one or more API servers; "acknowledged" means ``index()``
returned or the API answered 200/201. Kills are SIGKILLs triggered after a number of
acknowledgements, so they land inside the next write wherever it happens to be.

Run as ``python -m tests.writers DATA_OR_- WRITER START COUNT``: one writer process that
ingests articles straight into the store configured by NEWSDESK_* variables and prints
``ack ID`` after each one is stored.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.chroma_server import free_port
from tests.hardening import child_env, end_process, wait_for

ROOT = Path(__file__).resolve().parent.parent


def word(writer: str, n: int) -> str:
    """A word no other article has, so keyword search must find exactly this article."""
    return f"zq{writer}x{n}v"


def record(writer: str, n: int) -> dict[str, str]:
    """One article; every fifth is long enough for several chunks."""
    w = word(writer, n)
    sentences = [
        f"The {w} committee met on Monday in harbour town {n}.",
        f"Officials from district {n % 13} counted {n * 7} boats on the {w} quay.",
        f"Residents expect the {w} count to change by next week.",
    ]
    if n % 5 == 0:
        sentences += [f"Further detail {j} on the {w} harbour and its boats." for j in range(40)]
    return {
        "id": f"{writer}-{n:04d}",
        "title": f"Harbour report {writer} {n}",
        "source": f"Outlet {writer}",
        "text": " ".join(sentences),
    }


# ---- the check ------------------------------------------------------------------------


@dataclass
class Verdict:
    acknowledged: int = 0
    present: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.acknowledged - self.present


def check_acknowledged(newsdesk: Any, acked: dict[str, str]) -> Verdict:
    """Every acknowledged article (id -> text) is stored with that text and all its
    chunks, every chunk is an exact span of the text, and dense and keyword search both
    find it by its own word."""
    from vectorstore.store import record_version

    store = newsdesk.store
    verdict = Verdict(acknowledged=len(acked))
    records = store.get_articles(list(acked))
    metas = store.article_meta(list(acked))
    counts = store.chunk_counts(list(acked))
    newsdesk.keyword.ensure_current(force=True)
    embedder = newsdesk.embedder()
    for aid, text in acked.items():
        article = records.get(aid)
        if article is None:
            verdict.problems.append(f"{aid}: no record")
            continue
        if article.text != text:
            verdict.problems.append(f"{aid}: stored text differs")
            continue
        version = record_version(metas[aid])
        if article.chunks < 1 or counts.get((aid, version), 0) != article.chunks:
            verdict.problems.append(
                f"{aid}: {counts.get((aid, version), 0)} of {article.chunks} chunks"
            )
            continue
        writer, n = aid.rsplit("-", 1)
        w = word(writer, int(n))
        vector = embedder.embed([f"the {w} committee"])[0]
        dense = store.query_chunks(vector, 3, {"article_id": aid})
        if not any(c.version == version for c, _ in dense):
            verdict.problems.append(f"{aid}: dense search finds no current chunk")
            continue
        keyword = newsdesk.keyword.search(w, 3)
        if not keyword or keyword[0][0].article_id != aid:
            verdict.problems.append(f"{aid}: keyword search misses it")
            continue
        verdict.present += 1
    for chunk in store.iter_chunks():
        if chunk.article_id in records and records[chunk.article_id].version == chunk.version:
            article = records[chunk.article_id]
            if article.text[chunk.start : chunk.end] != chunk.text:
                verdict.problems.append(f"{chunk.id}: span differs from the text")
    return verdict


# ---- writers in threads -----------------------------------------------------------------


def write_in_threads(newsdesk: Any, writers: int, per_writer: int) -> dict[str, str]:
    """``writers`` threads each index ``per_writer`` articles one call at a time, as
    concurrent API requests do. Returns what was acknowledged."""
    from vectorstore.ingest import make_article

    acked: dict[str, str] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def run(writer: str) -> None:
        start.wait()
        for n in range(per_writer):
            r = record(writer, n)
            try:
                newsdesk.indexer.index([make_article(r["text"], article_id=r["id"])])
            except BaseException as exc:  # collected: the test shows them all
                errors.append(exc)
                return
            with lock:
                acked[r["id"]] = r["text"]

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return acked


# ---- writer processes -------------------------------------------------------------------


class WriterProcess:
    """``python -m tests.writers``: writes articles START.. into the store, acks each."""

    def __init__(self, writer: str, start: int, count: int, env: dict[str, str]) -> None:
        self.writer = writer
        self.next = start
        self.end = start + count
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.writers", writer, str(start), str(count)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def acks(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ack "):
                aid = line.split()[1]
                self.next = int(aid.rsplit("-", 1)[1]) + 1
                yield aid


def write_in_processes(
    env: dict[str, str], writers: int, per_writer: int, kill_every: int, seed: int = 7
) -> tuple[dict[str, str], int]:
    """Writer processes on one store; after every ``kill_every`` acknowledgements one of
    them, chosen at random, is SIGKILLed and restarted where it stopped. Returns what
    was acknowledged and how many kills landed."""
    rng = random.Random(seed)
    acked: dict[str, str] = {}
    lock = threading.Lock()
    kills = 0
    procs = {f"p{i}": WriterProcess(f"p{i}", 0, per_writer, env) for i in range(writers)}
    since_kill = 0
    failures: list[str] = []

    def pump(proc: WriterProcess) -> None:
        nonlocal since_kill
        for aid in proc.acks():
            writer, n = aid.rsplit("-", 1)
            with lock:
                acked[aid] = record(writer, int(n))["text"]
                since_kill += 1

    pumps = {name: threading.Thread(target=pump, args=(p,)) for name, p in procs.items()}
    for t in pumps.values():
        t.start()
    while any(p.proc.poll() is None for p in procs.values()):
        time.sleep(0.02)
        with lock:
            due = since_kill >= kill_every
        alive = [name for name, p in procs.items() if p.proc.poll() is None]
        if due and alive:
            name = rng.choice(alive)
            victim = procs[name]
            with contextlib.suppress(ProcessLookupError):
                victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            pumps[name].join()
            if victim.proc.returncode == -signal.SIGKILL:
                kills += 1
            with lock:
                since_kill = 0
            if victim.next < victim.end:
                procs[name] = WriterProcess(name, victim.next, victim.end - victim.next, env)
                pumps[name] = threading.Thread(target=pump, args=(procs[name],))
                pumps[name].start()
    for name, p in procs.items():
        pumps[name].join()
        if p.proc.returncode not in (0, -signal.SIGKILL):
            assert p.proc.stderr is not None
            failures.append(f"{name} exited {p.proc.returncode}: {p.proc.stderr.read()[-2000:]}")
    if failures:
        raise RuntimeError("; ".join(failures))
    return acked, kills


# ---- API servers and their clients ------------------------------------------------------


def replica_command(port: int) -> list[str]:
    """One API process on 127.0.0.1:port: the production app with the hashing embedder."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.replica_app:create",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


class ApiServer:
    """One API process (``tests.replica_app``: production app, hashing embedder)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> ApiServer:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                replica_command(self.port),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(ready, timeout, 0.2), self.log.read_text()[-3000:]
        return self

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc)


def server_env(data: Path, chroma_port: int | None = None) -> dict[str, str]:
    extra = {"NEWSDESK_DATA_DIR": str(data), "NEWSDESK_RATE_LIMIT": "100000/minute"}
    if chroma_port is not None:
        extra |= {"NEWSDESK_CHROMA_HOST": "127.0.0.1", "NEWSDESK_CHROMA_PORT": str(chroma_port)}
    return child_env(**extra)


def write_through_api(
    servers: list[ApiServer],
    clients: int,
    per_client: int,
    kill_every: int | None,
    seed: int = 11,
) -> tuple[dict[str, str], int]:
    """``clients`` threads POST articles round-robin to ``servers``; after every
    ``kill_every`` acknowledgements a random server is SIGKILLed and restarted. A client
    retries a request that got no answer (as a real client would) until it is answered."""
    rng = random.Random(seed)
    acked: dict[str, str] = {}
    lock = threading.Lock()
    kills = 0
    since_kill = 0
    errors: list[str] = []
    done = threading.Event()
    broken = threading.Event()  # a server did not come back: stop instead of hanging

    def post(client: httpx.Client, i: int, body: dict[str, str]) -> httpx.Response | None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not broken.is_set():
            server = servers[i % len(servers)]
            try:
                return client.post(f"{server.url}/v1/articles", json=body, timeout=60)
            except httpx.HTTPError:
                i += 1
                time.sleep(0.2)
        return None

    def run(writer: str) -> None:
        nonlocal since_kill
        with httpx.Client() as client:
            for n in range(per_client):
                body = record(writer, n)
                r = post(client, n, body)
                if r is None or r.status_code not in (200, 201):
                    status = "no answer" if r is None else f"{r.status_code} {r.text[:200]}"
                    errors.append(f"{body['id']}: {status}")
                    continue
                with lock:
                    acked[body["id"]] = body["text"]
                    since_kill += 1

    threads = [threading.Thread(target=run, args=(f"c{i}",)) for i in range(clients)]
    for t in threads:
        t.start()

    def killer() -> None:
        nonlocal kills, since_kill
        while not done.is_set():
            time.sleep(0.02)
            with lock:
                due = kill_every is not None and since_kill >= kill_every
                if due:
                    since_kill = 0
            if due:
                server = rng.choice(servers)
                server.kill()
                kills += 1
                try:
                    server.start()
                except BaseException as exc:
                    errors.append(f"restart failed: {exc}")
                    broken.set()
                    return

    killing = threading.Thread(target=killer)
    killing.start()
    for t in threads:
        t.join()
    done.set()
    killing.join()
    if errors:
        raise AssertionError(f"{len(errors)} writes were never acknowledged: {errors[:5]}")
    return acked, kills


def open_newsdesk(data: Path, chroma_port: int | None = None, **settings: Any) -> Any:
    """A Newsdesk on that store with the hashing embedder, for the final check."""
    from service.context import Newsdesk
    from service.settings import Settings
    from tests.conftest import HashingEmbedder

    extra: dict[str, Any] = {"chroma_host": None}
    if chroma_port is not None:
        extra = {"chroma_host": "127.0.0.1", "chroma_port": chroma_port}
    s = Settings(_env_file=None, data_dir=data, llm_base_url=None, **extra, **settings)
    return Newsdesk(s, embedder=HashingEmbedder())


def _main(argv: list[str]) -> None:
    from service.context import Newsdesk
    from service.settings import Settings
    from tests.conftest import HashingEmbedder
    from vectorstore.ingest import make_article

    writer, start, count = argv[0], int(argv[1]), int(argv[2])
    newsdesk = Newsdesk(Settings(), embedder=HashingEmbedder())  # type: ignore[arg-type]
    for n in range(start, start + count):
        r = record(writer, n)
        newsdesk.indexer.index([make_article(r["text"], article_id=r["id"])])
        print("ack", r["id"], flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
