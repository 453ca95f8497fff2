"""Faults: the LLM failing in every way, the Chroma server going away, ingestion killed.

The promise: each request ends promptly with an extractive answer (fallback on) or a
502/503 JSON error (fallback off), the process stays healthy, the service recovers by
itself when a dependency comes back, and a killed ingestion loses nothing and leaves
nothing half-written behind.
"""

from __future__ import annotations

import http.server
import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai._base_client
import pytest
import respx
from fastapi.testclient import TestClient

from service.api import create_app
from service.context import Newsdesk
from service.settings import Settings
from tests.chroma_server import ChromaServer
from tests.conftest import ROOT, SEEDS, HashingEmbedder
from tests.hardening import (
    QUESTION,
    assert_citations_verbatim,
    assert_error,
    child_env,
    end_process,
)
from tests.llm_mock import BASE_URL, CHAT_URL, completion
from vectorstore.config import KeywordConfig
from vectorstore.ingest import make_article, read_paths
from vectorstore.keyword import KeywordIndex
from vectorstore.store import ChromaStore

# ---- the LLM endpoint failing ------------------------------------------------------------

#: Each fault is a respx side effect for POST /chat/completions.
LLM_FAULTS: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "connection refused": lambda req: (_ for _ in ()).throw(
        httpx.ConnectError("refused", request=req)
    ),
    "read timeout": lambda req: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=req)),
    "429 storm": lambda req: httpx.Response(
        429, json={"error": {"message": "slow down", "type": "rate_limit"}}
    ),
    "500s": lambda req: httpx.Response(500, json={"error": {"message": "boom"}}),
    "html error page": lambda req: httpx.Response(
        502, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}
    ),
    "200 with html": lambda req: httpx.Response(
        200, text="<html>not json</html>", headers={"content-type": "text/html"}
    ),
    "200 with a non-completion object": lambda req: httpx.Response(200, json={"hello": "world"}),
    "prose instead of json": lambda req: completion("Sure! The answer is that many people fled."),
    "json of the wrong shape": lambda req: completion({"unexpected": [1, 2, 3]}),
    "reply cut off": lambda req: completion('{"claims": [{"text": "Over 121,000 peo'),
    "empty reply": lambda req: completion(""),
}


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Skip the SDK's retry sleeps, recording how long it wanted to wait."""
    slept: list[float] = []
    monkeypatch.setattr(openai._base_client.time, "sleep", slept.append)
    return slept


@pytest.fixture(scope="module")
def seeded_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeds, ingested once for this module's read-only tests."""
    data = tmp_path_factory.mktemp("faults-seeded")
    s = Settings(_env_file=None, data_dir=data, llm_base_url=None, llm_api_key=None)
    Newsdesk(s, embedder=HashingEmbedder()).indexer.index(read_paths([SEEDS]))
    return data


@pytest.fixture
def llm_newsdesk(
    settings: Settings, seeded_data: Path, no_backoff: list[float]
) -> Callable[..., Newsdesk]:
    def make(**overrides: object) -> Newsdesk:
        s = settings.model_copy(
            update={
                "data_dir": seeded_data,
                "llm_base_url": BASE_URL,
                "llm_max_retries": 2,
                **overrides,
            }
        )
        return Newsdesk(s, embedder=HashingEmbedder(), llm_http_client=httpx.Client())

    return make


@pytest.mark.parametrize("fault", list(LLM_FAULTS))
def test_llm_fault_falls_back_to_extractive(
    fault: str, llm_newsdesk: Callable[..., Newsdesk]
) -> None:
    nd = llm_newsdesk(llm_fallback="extractive")
    with (
        respx.mock(assert_all_called=False) as router,
        TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c,
    ):
        chat = router.post(CHAT_URL).mock(side_effect=LLM_FAULTS[fault])
        router.get(f"{BASE_URL}/models").mock(side_effect=LLM_FAULTS[fault])
        r = c.post("/v1/ask", json={"question": QUESTION})
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["engine"] == "extractive"
        assert data["fallback_reason"] and data["fallback_reason"].startswith("llm_")
        assert not data["refused"] and data["citations"]
        assert_citations_verbatim(c, data["citations"])
        r = c.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}
        )
        assert r.status_code == 200 and r.json()["newsdesk"]["engine"] == "extractive"
        assert chat.called
        # Retries are bounded: at most 1 + llm_max_retries calls per request (2 requests).
        assert chat.call_count <= 2 * (1 + nd.settings.llm_max_retries)
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        # The fallback keeps the replica in the load balancer even when the LLM is broken.
        assert ready.status_code == 200 and ready.json()["status"] in ("ready", "degraded")


@pytest.mark.parametrize("fault", list(LLM_FAULTS))
def test_llm_fault_is_a_json_error_without_fallback(
    fault: str, llm_newsdesk: Callable[..., Newsdesk]
) -> None:
    nd = llm_newsdesk(llm_fallback="none")
    with (
        respx.mock(assert_all_called=False) as router,
        TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c,
    ):
        router.post(CHAT_URL).mock(side_effect=LLM_FAULTS[fault])
        router.get(f"{BASE_URL}/models").mock(side_effect=LLM_FAULTS[fault])
        body = assert_error(c.post("/v1/ask", json={"question": QUESTION}), (502, 503))
        assert body["error"]["code"] in ("llm_unavailable", "llm_bad_response", "llm_auth")
        r = c.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}
        )
        assert_error(r, (502, 503))
        r = c.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": QUESTION}], "stream": True},
        )
        assert_error(r, (502, 503))
        assert c.get("/healthz").status_code == 200
        # Articles don't need the LLM and keep working.
        assert c.get("/v1/articles").status_code == 200


def test_llm_recovers_after_an_outage(llm_newsdesk: Callable[..., Newsdesk]) -> None:
    nd = llm_newsdesk(llm_fallback="extractive")
    with (
        respx.mock(assert_all_called=False) as router,
        TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c,
    ):
        route = router.post(CHAT_URL).mock(side_effect=httpx.ConnectError("refused"))
        assert c.post("/v1/ask", json={"question": QUESTION}).json()["engine"] == "extractive"
        # The endpoint comes back: the same app uses it again, with no restart.
        route.mock(
            side_effect=lambda req: completion({"claims": [], "answer": "", "refused": True})
        )
        data = c.post("/v1/ask", json={"question": QUESTION}).json()
        assert data["engine"] == "llm" and data["fallback_reason"] is None


def test_429_storm_with_long_retry_after_stays_within_the_timeout(
    llm_newsdesk: Callable[..., Newsdesk], no_backoff: list[float]
) -> None:
    nd = llm_newsdesk(llm_fallback="extractive", llm_timeout_seconds=10.0)
    with (
        respx.mock(assert_all_called=False) as router,
        TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c,
    ):
        router.post(CHAT_URL).mock(
            return_value=httpx.Response(
                429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "100"}
            )
        )
        data = c.post("/v1/ask", json={"question": QUESTION}).json()
        assert data["engine"] == "extractive"
    # Waiting out Retry-After is time the caller spends blocked; it must fit the budget.
    assert sum(no_backoff) <= nd.settings.llm_timeout_seconds, no_backoff


class _HangingHandler(http.server.BaseHTTPRequestHandler):
    release: threading.Event
    answered: threading.Event

    def _hang(self) -> None:
        # Read the body so the client's write completes, then say nothing for a long time.
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.release.wait(30)
        self.answered.set()
        try:
            self.send_response(504)
            self.end_headers()
        except OSError:
            pass

    do_GET = do_POST = _hang

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class HangingLLM:
    url: str
    answered: threading.Event  # set once the server has answered anything at all


@pytest.fixture
def hanging_llm() -> Iterator[HangingLLM]:
    """A real HTTP server on 127.0.0.1 that answers only after 30 s (or at teardown)."""
    release, answered = threading.Event(), threading.Event()
    handler = type("Handler", (_HangingHandler,), {"release": release, "answered": answered})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HangingLLM(f"http://127.0.0.1:{server.server_address[1]}/v1", answered)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("fallback", ["extractive", "none"])
def test_hanging_llm_ends_within_the_timeout(
    settings: Settings, seeded_data: Path, hanging_llm: HangingLLM, fallback: str
) -> None:
    """Our own timeout ends the request, not the server: by the time each response is
    back, the hanging server has still not answered anything."""
    s = settings.model_copy(
        update={
            "data_dir": seeded_data,
            "llm_base_url": hanging_llm.url,
            "llm_timeout_seconds": 0.5,
            "llm_max_retries": 0,
            "llm_fallback": fallback,
        }
    )
    nd = Newsdesk(s, embedder=HashingEmbedder())  # the SDK's own transport: real sockets
    with TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c:
        r = c.post("/v1/ask", json={"question": QUESTION})
        assert not hanging_llm.answered.is_set()
        if fallback == "extractive":
            assert r.status_code == 200, r.text
            data = r.json()
            assert data["engine"] == "extractive" and data["fallback_reason"]
            assert data["fallback_reason"].startswith("llm_unavailable")
            assert_citations_verbatim(c, data["citations"])
        else:
            assert_error(r, 503, "llm_unavailable")
        ready = c.get("/readyz")
        assert not hanging_llm.answered.is_set()
        assert ready.json()["checks"]["llm"] == "unreachable"
        assert ready.status_code == (200 if fallback == "extractive" else 503)
        assert c.get("/healthz").status_code == 200


# ---- the Chroma server going away ----------------------------------------------------------

ARTICLE_ID = "e064d63275ef0870"  # a seed


def unsigned(citations: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "url"} for c in citations]


@pytest.mark.server
def test_chroma_server_outage_is_503_and_recovers_by_itself(tmp_path: Path) -> None:
    server = ChromaServer(tmp_path / "chroma").start()
    try:
        s = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            chroma_host="127.0.0.1",
            chroma_port=server.port,
            llm_base_url=None,
            llm_api_key=None,
            index_check_seconds=0.0,
            rate_limit="100000/minute",
        )
        nd = Newsdesk(s, embedder=HashingEmbedder())
        nd.indexer.index(read_paths([SEEDS]))
        with TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c:
            before = c.post("/v1/ask", json={"question": QUESTION})
            assert before.status_code == 200 and before.json()["citations"]
            assert c.get(f"/v1/articles/{ARTICLE_ID}").status_code == 200

            # Requests in flight when the server dies (SIGKILL: mid-response, no goodbye)
            # end in 200 or a 503 JSON error, never a 500.
            seen: list[tuple[int, str]] = []
            stop = threading.Event()

            def hammer() -> None:
                while not stop.is_set():
                    for r in (
                        c.post("/v1/ask", json={"question": QUESTION}),
                        c.get(f"/v1/articles/{ARTICLE_ID}"),
                        c.get("/v1/articles"),
                    ):
                        code = (
                            r.json().get("error", {}).get("code", "")
                            if r.status_code >= 400
                            else ""
                        )
                        seen.append((r.status_code, code))

            workers = [threading.Thread(target=hammer) for _ in range(3)]
            for w in workers:
                w.start()
            time.sleep(0.5)
            assert server.proc is not None
            server.proc.kill()
            server.proc.wait(10)
            server.proc = None
            time.sleep(1.0)
            stop.set()
            for w in workers:
                w.join(30)
            assert not any(w.is_alive() for w in workers)
            assert set(seen) <= {(200, ""), (503, "store_unavailable")}, Counter(seen)
            assert (503, "store_unavailable") in seen

            for _ in range(2):
                assert_error(
                    c.post("/v1/ask", json={"question": QUESTION}), 503, "store_unavailable"
                )
                assert_error(c.get(f"/v1/articles/{ARTICLE_ID}"), 503, "store_unavailable")
                assert_error(c.get("/v1/articles"), 503, "store_unavailable")
                r = c.post("/v1/articles", json={"text": "A new story about the river Oona."})
                assert_error(r, 503, "store_unavailable")
                r = c.post(
                    "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": QUESTION}]},
                )
                assert_error(r, 503, "store_unavailable")
                assert c.get("/healthz").status_code == 200
                ready = c.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["store"] != "ok"

            # A replica that starts while the store is down answers 503 too, not 500.
            late = Newsdesk(s, embedder=HashingEmbedder())
            with TestClient(create_app(newsdesk=late), raise_server_exceptions=False) as c2:
                assert_error(c2.get(f"/v1/articles/{ARTICLE_ID}"), 503, "store_unavailable")
                assert c2.get("/readyz").status_code == 503

                server.start()  # same port, same path
                # Both recover by themselves, with nothing rebuilt.
                assert c2.get(f"/v1/articles/{ARTICLE_ID}").status_code == 200
            r = c.post("/v1/ask", json={"question": QUESTION})
            assert r.status_code == 200, r.text
            # The same spans; each link is signed anew with its own expiry.
            assert unsigned(r.json()["citations"]) == unsigned(before.json()["citations"])
            assert_citations_verbatim(c, r.json()["citations"])
            assert c.get(f"/v1/articles/{ARTICLE_ID}").status_code == 200
            assert c.get("/readyz").status_code == 200
            r = c.post(
                "/v1/articles", json={"text": "The river Oona flooded 40 homes.", "id": "oona"}
            )
            assert r.status_code == 201, r.text
            assert c.get("/v1/articles/oona").status_code == 200
    finally:
        server.stop()


# ---- ingestion killed with SIGKILL ---------------------------------------------------------

# A "zygote": imports everything once, then forks one child per ingestion run, so each
# run starts in milliseconds and the kill lands on ingestion work, not on imports. The
# store is opened only in the child, after the fork.
ZYGOTE = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from service.context import Newsdesk
    from service.settings import Settings
    from tests.conftest import HashingEmbedder
    from vectorstore.ingest import read_paths

    class KillOnWrite:
        # A Chroma collection whose n-th write (counted over all of them) SIGKILLs us.

        def __init__(self, inner, counter, kill_at):
            self.inner, self.counter, self.kill_at = inner, counter, kill_at

        def __getattr__(self, name):
            attr = getattr(self.inner, name)
            if name not in ("add", "upsert", "update", "delete"):
                return attr

            def write(*args, **kwargs):
                self.counter[0] += 1
                if self.counter[0] == self.kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return attr(*args, **kwargs)

            return write

    def ingest(folder, data, kill_at):
        # One writer at a time here, so no lease: the next run repairs a kill at once.
        s = Settings(
            _env_file=None, data_dir=Path(data), chroma_host=None, llm_base_url=None,
            repair_lease_seconds=0, repair_interval_seconds=0,
        )
        nd = Newsdesk(s, embedder=HashingEmbedder())
        # Small batches: many write points for a kill to land on.
        nd.indexer.batch_chunks = 16
        if hasattr(nd.indexer, "batch_articles"):
            nd.indexer.batch_articles = 16
        counter = [0]
        for name in ("articles", "chunks", "state"):
            setattr(nd.store, name, KillOnWrite(getattr(nd.store, name), counter, int(kill_at)))
        report = nd.indexer.index(read_paths([Path(folder)]))
        nd.keyword.ensure_current(force=True)  # also saves the keyword index to disk
        print("writes", counter[0], flush=True)
        return report

    def orphans(data):
        nd = Newsdesk(Settings(_env_file=None, data_dir=Path(data)), embedder=HashingEmbedder())
        versions = nd.store.article_versions()
        chunks = nd.store.iter_chunk_meta()
        n = sum(versions.get(m["article_id"]) != m["version"] for _, m in chunks)
        print("orphans", n, flush=True)

    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                {"ingest": ingest, "orphans": orphans}[command](*args)
            except BaseException as exc:
                print("error", repr(exc), file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        print("child", pid, flush=True)
        started = time.monotonic()
        _, status = os.waitpid(pid, 0)
        seconds = time.monotonic() - started
        print("exit", pid, os.waitstatus_to_exitcode(status), seconds, flush=True)
    """
)


class _Zygote:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line() == ["ready"]

    def _line(self) -> list[str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"ingest zygote died with {self.proc.poll()}"
        return line.split()

    def run(self, folder: Path, data: Path, kill_at: int = 0) -> tuple[int, int]:
        """One ingestion run, SIGKILLed by itself at its ``kill_at``-th write to Chroma
        (0: never). Returns (exit code, writes made)."""
        _, pid = self._send(f"ingest {folder} {data} {kill_at}")
        line = self._line()
        writes = 0
        if line[0] == "writes":
            writes = int(line[1])
            line = self._line()
        tag, done_pid, code, _ = line
        assert tag == "exit" and done_pid == pid
        return int(code), writes

    def orphans(self, data: Path) -> int:
        """Chunks that no article record refers to, counted in a fresh child process."""
        _, pid = self._send(f"orphans {data}")
        result = self._line()
        assert result[0] == "orphans", result
        tag, done_pid, code, _ = self._line()
        assert tag == "exit" and done_pid == pid and code == "0"
        return int(result[1])

    def _send(self, command: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = self._line()
        assert reply[0] == "child", reply
        return reply

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        end_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


N_ARTICLES = 300


def _write_corpus(folder: Path, revision: int) -> dict[str, str]:
    """~300 small articles; a third change text at every revision. Returns id -> hash."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(N_ARTICLES):
        rev = revision if i % 3 == 0 else 0
        sentences = [
            f"Story {i} revision {rev} reports on the harbour of town number {i}.",
            f"Officials in district {i % 17} said {i * 13} boats were counted on Monday.",
            f"Residents of town {i} expect the count to change next week, revision {rev}.",
        ]
        if i % 10 == 0:  # some longer ones, several chunks each
            sentences += [f"Further detail {j} on the harbour of town {i}." for j in range(30)]
        record = {"id": f"story-{i:03d}", "title": f"Story {i}", "text": " ".join(sentences)}
        path = folder / f"story-{i:03d}.json"
        path.write_text(json.dumps(record), encoding="utf-8")
        expected[record["id"]] = make_article(record["text"], article_id=record["id"]).content_hash
    return expected


def _settings(data: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data, chroma_host=None, llm_base_url=None)


def _open_store(data: Path) -> ChromaStore:
    return ChromaStore(_settings(data).store_config(), HashingEmbedder.model_id, 384)


def test_ingestion_killed_at_random_points_loses_nothing(tmp_path: Path) -> None:
    folder, data = tmp_path / "corpus", tmp_path / "data"
    rng = random.Random(7)
    zygote = _Zygote()
    try:
        _write_corpus(folder, revision=0)
        code, _ = zygote.run(folder, data)
        assert code == 0
        outcomes = []
        for revision in (1, 2, 3, 3):
            # A third of the articles change at each revision; the last killed run and the
            # final run see the same text, so only repair can clean what the kill left.
            # Each run's writes are counted on an unkilled dry run of the same revision
            # in a copy, so the kill lands on a real write, anywhere in the run.
            expected = _write_corpus(folder, revision=revision)
            dry = tmp_path / f"dry{revision}-{len(outcomes)}"
            shutil.copytree(data, dry)
            code, writes = zygote.run(folder, dry)
            assert code == 0 and writes > 2
            code, _ = zygote.run(folder, data, kill_at=rng.randint(1, writes))
            outcomes.append(code)
        left_behind = zygote.orphans(data)
        code, _ = zygote.run(folder, data)
        assert code == 0
    finally:
        zygote.close()
    assert outcomes == [-signal.SIGKILL] * 4, outcomes
    print(f"kills: {outcomes}, orphans before the final run: {left_behind}")

    store = _open_store(data)
    _assert_consistent(store, data / "keyword", expected)
    hits = KeywordIndex(store, _settings(data).keyword_config()).search("harbour town 123", 5)
    assert hits and hits[0][0].article_id == "story-123"


def _keyword_config(directory: Path) -> KeywordConfig:
    return KeywordConfig(
        directory,
        check_seconds=0.0,
        log_overlap_seconds=60.0,
        log_retention_seconds=86400.0,
        reconcile_seconds=900.0,
    )


def _assert_consistent(store: ChromaStore, keyword_dir: Path, expected: dict[str, str]) -> None:
    """Every article once with its latest text; chunks complete, unique, none orphaned;
    the keyword index holds exactly the chunks Chroma holds."""
    article_ids = [aid for aid, _ in store.iter_article_meta()]
    assert len(article_ids) == len(set(article_ids)) == len(expected)
    versions = store.article_versions()
    hashes = {aid: meta["content_hash"] for aid, meta in store.iter_article_meta()}
    assert hashes == expected

    chunk_meta = list(store.iter_chunk_meta())
    ids = [cid for cid, _ in chunk_meta]
    assert len(ids) == len(set(ids))
    orphans = [cid for cid, m in chunk_meta if versions.get(m["article_id"]) != m["version"]]
    assert orphans == []
    positions = Counter((m["article_id"], int(m["index"])) for _, m in chunk_meta)
    assert max(positions.values()) == 1
    per_article = Counter(m["article_id"] for _, m in chunk_meta)
    stored = dict(store.iter_article_meta())
    for aid in expected:
        n = per_article[aid]
        assert n == int(stored[aid]["chunks"]) and n >= 1, aid
        assert {i for (a, i) in positions if a == aid} == set(range(n)), aid
    assert store.count_chunks() == len(ids)

    # Chunk spans still index the canonical text.
    texts = {aid: a.text for aid, a in store.get_articles(list(expected)).items()}
    for chunk in store.iter_chunks():
        assert texts[chunk.article_id][chunk.start : chunk.end] == chunk.text

    # The keyword index (also saved to disk by killed runs) agrees with Chroma.
    keyword = KeywordIndex(store, _keyword_config(keyword_dir))
    keyword.ensure_current(force=True)
    assert sorted(keyword.chunk_ids()) == sorted(ids)


def _assert_never_half_visible(store: ChromaStore) -> None:
    """What readers trust (chunks whose version matches the record) is whole."""
    versions = store.article_versions()
    stored = dict(store.iter_article_meta())
    visible: dict[str, set[int]] = {aid: set() for aid in versions}
    for _, m in store.iter_chunk_meta():
        if versions.get(m["article_id"]) == m["version"]:
            visible[m["article_id"]].add(int(m["index"]))
    for aid, indices in visible.items():
        assert indices == set(range(int(stored[aid]["chunks"]))), aid


class _Killed(BaseException):
    """Like SIGKILL for the code under test: nothing catches it, nothing after it runs."""


class _DiesOnWrite:
    """A Chroma collection that dies on the n-th write call shared by all wrapped ones."""

    WRITES = ("add", "upsert", "update", "delete")

    def __init__(self, inner: object, counter: list[int], die_at: int) -> None:
        self._inner, self._counter, self._die_at = inner, counter, die_at

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._inner, name)
        if name not in self.WRITES:
            return attr

        def write(*args: object, **kwargs: object) -> object:
            self._counter[0] += 1
            if self._counter[0] == self._die_at:
                raise _Killed
            return attr(*args, **kwargs)

        return write


def test_ingestion_dying_between_any_two_writes_is_repaired(
    make_newsdesk: Callable[..., Newsdesk], tmp_path: Path
) -> None:
    """Deterministic companion of the SIGKILL test: die at every write call in turn."""
    nd = make_newsdesk(repair_lease_seconds=0.0, repair_interval_seconds=0.0)
    nd.indexer.batch_chunks = 6
    if hasattr(nd.indexer, "batch_articles"):
        nd.indexer.batch_articles = 3
    folder = tmp_path / "corpus"

    def articles(revision: int) -> tuple[list, dict[str, str]]:
        items, expected = [], {}
        for i in range(7):
            text = " ".join(
                f"Story {i} revision {revision} sentence {j} about the harbour."
                for j in range(3 + i)
            )
            article = make_article(text, article_id=f"s{i}")
            items.append(article)
            expected[article.id] = article.content_hash
        return items, expected

    items, expected = articles(0)
    nd.indexer.index(items)
    # A reader that lives through all of it, as another replica's keyword index would.
    live = KeywordIndex(nd.store, _keyword_config(tmp_path / "live"))
    live.ensure_current()
    names = [n for n in ("articles", "chunks", "state") if hasattr(nd.store, n)]
    originals = {n: getattr(nd.store, n) for n in names}
    die_at, deaths = 1, 0
    while True:
        # Every article changes, in several batches; then (second half) only one.
        items, expected = articles(die_at)
        counter = [0]
        for n in names:
            setattr(nd.store, n, _DiesOnWrite(originals[n], counter, die_at))
        try:
            nd.indexer.index(items)
            finished = True
        except _Killed:
            finished, deaths = False, deaths + 1
        finally:
            for n in names:
                setattr(nd.store, n, originals[n])
        _assert_never_half_visible(nd.store)
        if finished:
            break
        report = nd.indexer.index(items)  # the next run completes and cleans up
        assert report.failed == 0
        _assert_consistent(nd.store, folder / f"kw{die_at}", expected)
        live.ensure_current()  # not forced: it must notice the change by itself
        visible = sorted(cid for cid, _ in nd.store.iter_chunk_meta())
        assert sorted(live.chunk_ids()) == visible, f"stale after death {die_at}"
        die_at += 1
    assert deaths >= 5, deaths  # every write of an update run was a death point

    # One article updated alone (as POST /v1/articles does): a single batch, so no later
    # batch's writes can hide a missed change notice from the live reader.
    revision = die_at
    for die_at in range(1, 10):
        revision += 1
        one, _ = articles(revision)
        expected["s0"] = one[0].content_hash
        counter = [0]
        for n in names:
            setattr(nd.store, n, _DiesOnWrite(originals[n], counter, die_at))
        try:
            nd.indexer.index(one[:1])
            finished = True
        except _Killed:
            finished = False
        finally:
            for n in names:
                setattr(nd.store, n, originals[n])
        _assert_never_half_visible(nd.store)
        nd.indexer.index(one[:1])
        _assert_consistent(nd.store, folder / f"one{die_at}", expected)
        live.ensure_current()
        visible = sorted(cid for cid, _ in nd.store.iter_chunk_meta())
        assert sorted(live.chunk_ids()) == visible, f"stale after death {die_at}"
        if finished:
            break
