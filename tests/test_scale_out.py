"""Scale-out: two uvicorn replicas with their own data dirs share one Chroma server; an
article ingested through one is found through the other, by dense search and by keyword,
within a few seconds."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chroma_server import ChromaServer, free_port
from tests.conftest import ROOT, SEEDS
from tests.hardening import child_env, end_process, wait_for
from tests.writers import replica_command

pytestmark = pytest.mark.server

START_TIMEOUT = 90.0  # imports on a busy 2-core CI machine
FOUND_WITHIN = 8.0  # "a few seconds": NEWSDESK_INDEX_CHECK_SECONDS=2 plus a rebuild

ARTICLE = {
    "id": "zorb-vote",
    "title": "Glitter ban",
    "source": "Zorb Daily",
    "published_at": "2025-01-07",
    "text": (
        "The Zorbian parliament voted 212 to 9 on Tuesday to ban glitter in public fountains. "
        "The speaker called the quixotrope lobby's campaign a triumph of persistence."
    ),
}
QUESTION = "How did the Zorbian parliament vote on glitter in public fountains?"
KEYWORD_QUESTION = "Who ran the quixotrope campaign?"  # a word no other article has


class Replica:
    def __init__(self, name: str, chroma_port: int, data: Path, logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / f"replica-{name}.log"
        env = child_env(
            NEWSDESK_CHROMA_HOST="127.0.0.1",
            NEWSDESK_CHROMA_PORT=str(chroma_port),
            NEWSDESK_DATA_DIR=str(data),
            NEWSDESK_INDEX_CHECK_SECONDS="2",
            NEWSDESK_RATE_LIMIT="10000/minute",
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                replica_command(self.port),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def ask(self, question: str, mode: str | None = None) -> dict:
        headers = {"X-Replica-Retrieval-Mode": mode} if mode else {}
        r = self.http.post("/v1/ask", json={"question": question}, headers=headers)
        assert r.status_code == 200, r.text
        # Every search behind this answer ran in the mode asked for.
        used = set(r.headers["x-replica-retrieval-used"].split(","))
        assert used == {mode or "hybrid"}, used
        return r.json()

    def stop(self) -> None:
        self.http.close()
        end_process(self.proc)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    chroma = ChromaServer(tmp_path / "chroma").start()
    replicas: list[Replica] = []
    try:
        for name in ("a", "b"):
            replicas.append(Replica(name, chroma.port, tmp_path / f"data-{name}", tmp_path))
        for replica in replicas:
            assert wait_for(replica.ready, START_TIMEOUT, 0.5), replica.log.read_text()[-3000:]
        yield replicas[0], replicas[1]
    finally:
        for replica in replicas:
            replica.stop()
        chroma.stop()


def cites(answer: dict, article_id: str) -> bool:
    return any(c["article_id"] == article_id for c in answer["citations"])


def test_an_article_ingested_on_one_replica_is_found_on_the_other(
    cluster: tuple[Replica, Replica],
) -> None:
    a, b = cluster
    for seed in sorted(SEEDS.iterdir()):
        r = a.http.post("/v1/articles", files={"file": (seed.name, seed.read_bytes())})
        assert r.status_code == 201, r.text
    # B has built its keyword index before the new article exists, and can't find it.
    assert b.http.get("/v1/articles").json()["total"] == 3
    assert not cites(b.ask(KEYWORD_QUESTION, mode="keyword"), ARTICLE["id"])
    assert not cites(b.ask(QUESTION), ARTICLE["id"])

    r = a.http.post("/v1/articles", json=ARTICLE)
    assert r.status_code == 201, r.text
    written = time.monotonic()

    # The article record and its text: straight from the shared store.
    got = b.http.get(f"/v1/articles/{ARTICLE['id']}")
    assert got.status_code == 200 and got.json()["text"] == ARTICLE["text"]

    # Dense search on B sees the new chunks as soon as they are in Chroma.
    dense = wait_for(lambda: cites(b.ask(QUESTION, mode="dense"), ARTICLE["id"]), FOUND_WITHIN)
    assert dense, "dense search on replica B never found the article"

    # B's keyword index notices the change and rebuilds by itself.
    keyword = wait_for(
        lambda: cites(b.ask(KEYWORD_QUESTION, mode="keyword"), ARTICLE["id"]), FOUND_WITHIN
    )
    keyword_s = time.monotonic() - written
    assert keyword, "keyword search on replica B never found the article"

    # And the ordinary hybrid answer on B cites it, with an exact span.
    answer = b.ask(QUESTION)
    assert cites(answer, ARTICLE["id"]) and answer["citations"]
    for c in answer["citations"]:
        text = b.http.get(f"/v1/articles/{c['article_id']}").json()["text"]
        assert text[c["start"] : c["end"]] == c["quote"]

    # A delete on B disappears from A's keyword search too.
    assert b.http.delete(f"/v1/articles/{ARTICLE['id']}").status_code == 204
    gone = wait_for(
        lambda: not cites(a.ask(KEYWORD_QUESTION, mode="keyword"), ARTICLE["id"]), FOUND_WITHIN
    )
    assert gone, "replica A still finds a deleted article by keyword"
    assert a.http.get(f"/v1/articles/{ARTICLE['id']}").status_code == 404
    print(f"found by keyword on the other replica {keyword_s:.1f}s after the write")
