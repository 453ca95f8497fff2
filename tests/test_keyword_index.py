"""The keyword index follows the store's change log: incremental applies equal a rebuild,
replicas see each other's writes, searches never wait for an apply, filters run inside
tantivy, the log position survives a restart, and a replica behind the log rebuilds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.context import Newsdesk
from service.settings import Settings
from tests.chroma_server import ChromaServer
from tests.conftest import HashingEmbedder
from vectorstore.changelog import now_us
from vectorstore.config import KeywordConfig
from vectorstore.ingest import make_article
from vectorstore.keyword import KeywordIndex
from vectorstore.store import ArticleFilter, ChromaStore

QUERIES = ["harbour boats", "ferry strike", "river flood", "zebra migration", "council vote"]


def _config(directory: Path, check_seconds: float = 0.0, **kw: float) -> KeywordConfig:
    return KeywordConfig(
        directory=directory,
        check_seconds=check_seconds,
        log_overlap_seconds=kw.get("overlap", 60.0),
        log_retention_seconds=kw.get("retention", 86400.0),
        reconcile_seconds=kw.get("reconcile", 3600.0),
    )


def _corpus(n: int, revision: int = 0) -> list:  # type: ignore[type-arg]
    topics = ["harbour boats", "ferry strike", "river flood", "zebra migration", "council vote"]
    out = []
    for i in range(n):
        topic = topics[i % len(topics)]
        text = (
            f"Story {i} revision {revision}: the {topic} in town {i} drew {i * 7} people. "
            f"Officials said the {topic.split()[0]} would be discussed again on Monday. "
            + " ".join(f"Detail {j} about {topic} number {i}." for j in range(i % 4 * 10))
        )
        out.append(
            make_article(
                text,
                article_id=f"a{i:02d}",
                source=["Reuters", "AP", "BBC"][i % 3],
                published_at=f"2024-03-{1 + i % 28:02d}T12:00:00Z",
            )
        )
    return out


def _results(index: KeywordIndex, query: str, filters: ArticleFilter | None = None) -> list:  # type: ignore[type-arg]
    return [(c.id, round(score, 4)) for c, score in index.search(query, 20, filters)]


@pytest.fixture
def nd(make_newsdesk: Callable[..., Newsdesk]) -> Newsdesk:
    return make_newsdesk()


def test_incremental_add_revise_delete_equals_a_full_rebuild(nd: Newsdesk, tmp_path: Path) -> None:
    live = KeywordIndex(nd.store, _config(tmp_path / "live"))
    assert live.search("harbour", 5) == []  # built once, from an empty store
    nd.indexer.index(_corpus(20))
    assert live.catch_up() == 20
    revised = _corpus(20, revision=1)
    nd.indexer.index([revised[0], revised[5], revised[7]])  # revisions
    nd.store.delete_article("a03")
    nd.store.delete_article("a10")
    nd.indexer.index([make_article("A zebra migration story.", article_id="late")])

    applied = live.catch_up()
    fresh = KeywordIndex(nd.store, _config(tmp_path / "fresh"))
    for q in QUERIES:
        # The same chunks in the same order. Scores differ a little: like Lucene, tantivy
        # counts deleted documents in its BM25 statistics until their segment is merged.
        assert [cid for cid, _ in _results(live, q)] == [cid for cid, _ in _results(fresh, q)]
    assert sorted(live.chunk_ids()) == sorted(fresh.chunk_ids())
    assert sorted(live.chunk_ids()) == sorted(cid for cid, _ in nd.store.iter_chunk_meta())
    assert live.versions() == fresh.versions() == nd.store.article_versions()
    # Followed by applying the log, never by building again.
    assert (live.rebuilds, fresh.rebuilds) == (1, 1)
    assert applied == 3 + 2 + 1  # revised, deleted, added
    hits = {c.article_id for c, _ in live.search("revision 1", 50)}
    assert {"a00", "a05", "a07"} <= hits and "a03" not in hits


def test_search_reads_the_last_snapshot_while_an_apply_runs(
    nd: Newsdesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nd.indexer.index(_corpus(5))
    # A poll interval no test reaches: this test drives the applies itself.
    index = KeywordIndex(nd.store, _config(tmp_path / "kw", check_seconds=3600))
    before = _results(index, "harbour")
    assert before
    nd.indexer.index([make_article("The harbour ferry capsized at dawn.", article_id="new")])

    entered, release = threading.Event(), threading.Event()
    read_chunks = nd.store.current_chunks

    def slow_read(records: dict[str, dict]) -> list:  # type: ignore[type-arg]
        entered.set()
        assert release.wait(60)
        return read_chunks(records)

    monkeypatch.setattr(nd.store, "current_chunks", slow_read)
    applier = threading.Thread(target=index.catch_up)
    applier.start()
    assert entered.wait(60)
    found: list = []  # type: ignore[type-arg]
    searcher = threading.Thread(target=lambda: found.append(_results(index, "harbour")))
    searcher.start()
    searcher.join(60)
    # The apply is still blocked, and the search has answered from the last snapshot.
    assert not searcher.is_alive() and applier.is_alive()
    assert found == [before]
    assert index.versions().get("new") is None
    release.set()
    applier.join(60)
    assert not applier.is_alive()
    assert "new" in {c.article_id for c, _ in index.search("harbour ferry", 10)}


def test_filters_run_inside_the_engine(nd: Newsdesk, tmp_path: Path) -> None:
    strong = [
        make_article(
            f"Harbour harbour harbour: boats crowd harbour {i}.",
            article_id=f"big{i}",
            source="Big",
            published_at="2024-01-10T00:00:00Z",
        )
        for i in range(30)
    ]
    weak = make_article(
        "A long report on many things, among them one harbour, in a quiet town by the sea.",
        article_id="small",
        source="Small",
        published_at="2024-06-01T00:00:00Z",
    )
    undated = make_article("Another harbour story without a date.", article_id="undated")
    nd.indexer.index([*strong, weak, undated])
    index = KeywordIndex(nd.store, _config(tmp_path / "kw"))
    top3 = [c.article_id for c, _ in index.search("harbour", 3)]
    assert "small" not in top3  # the weak match is far down an unfiltered ranking ...
    # ... and still the one answer when the filter narrows the engine's search, not its top 3.
    by_source = index.search("harbour", 3, ArticleFilter(sources=("Small",)))
    assert [c.article_id for c, _ in by_source] == ["small"]
    by_id = index.search("harbour", 3, ArticleFilter(article_ids=("small", "undated")))
    assert {c.article_id for c, _ in by_id} == {"small", "undated"}
    after = index.search("harbour", 50, ArticleFilter(published_after="2024-05-01"))
    assert [c.article_id for c, _ in after] == ["small"]
    before = index.search("harbour", 50, ArticleFilter(published_before="2024-02-01"))
    assert {c.article_id for c, _ in before} == {f"big{i}" for i in range(30)}
    both = ArticleFilter(sources=("Big",), published_after="2024-05-01")
    assert index.search("harbour", 50, both) == []
    # Filters select without scoring: the same chunk scores the same with and without.
    unfiltered = dict(_results(index, "harbour"))
    for chunk, score in by_source:
        assert round(score, 4) == unfiltered.get(chunk.id, round(score, 4))


def test_position_and_versions_survive_a_restart(nd: Newsdesk, tmp_path: Path) -> None:
    nd.indexer.index(_corpus(6))
    first = KeywordIndex(nd.store, _config(tmp_path / "kw"))
    first.ensure_current(force=True)
    position = first.position
    assert position > 0
    nd.indexer.index([make_article("The zebra migration reached the river.", article_id="z")])
    first.catch_up()
    assert first.position > position

    restarted = KeywordIndex(nd.store, _config(tmp_path / "kw"))
    restarted.ensure_current()
    assert restarted.rebuilds == 0  # loaded, not built
    assert restarted.position == first.position
    assert restarted.versions() == nd.store.article_versions()
    # What was written while it was down is applied from the log on the next look.
    nd.indexer.index([make_article("A council vote on the zebra park.", article_id="z2")])
    assert {"z", "z2"} <= {c.article_id for c, _ in restarted.search("zebra", 10)}
    assert restarted.rebuilds == 0


def test_a_replica_behind_the_logs_retention_rebuilds(nd: Newsdesk, tmp_path: Path) -> None:
    nd.indexer.index(_corpus(4))
    index = KeywordIndex(nd.store, _config(tmp_path / "kw"))
    index.ensure_current()
    assert index.rebuilds == 1
    nd.indexer.index([make_article("The ferry strike ended.", article_id="gone-from-log")])
    # Another replica compacted every entry this one has not applied yet.
    nd.store.changelog.compact(now_us())
    assert nd.store.changelog.since(0) == []
    assert [c.article_id for c, _ in index.search("ferry strike ended", 1)] == ["gone-from-log"]
    assert index.rebuilds == 2

    # The same when the replica was down: its saved position is behind the horizon.
    restarted = KeywordIndex(nd.store, _config(tmp_path / "kw"))
    nd.store.changelog.compact(now_us() + 120_000_000)
    restarted.ensure_current()
    assert restarted.rebuilds == 1


def test_compaction_keeps_the_log_bounded(nd: Newsdesk, tmp_path: Path) -> None:
    nd.indexer.index(_corpus(3))
    assert nd.store.changelog.count() == 3
    time.sleep(0.01)
    # A retention shorter than the time since those writes: the poller's compaction
    # drops them (and leaves only its horizon entry).
    index = KeywordIndex(nd.store, _config(tmp_path / "kw", retention=0.005, overlap=0.001))
    index.ensure_current(force=True)
    assert nd.store.changelog.since(0) == []
    assert nd.store.changelog.horizon() > 0


def test_an_entry_that_commits_late_is_still_applied(nd: Newsdesk, tmp_path: Path) -> None:
    nd.indexer.index(_corpus(3))
    # Polling (not applying before each search), so only the log can tell it of a write.
    index = KeywordIndex(nd.store, _config(tmp_path / "kw", check_seconds=3600))
    index.ensure_current()
    position = index.position
    # A writer stamped its entry before this replica's position but committed it after
    # this replica last read the log (a slow upsert, a clock a little behind).
    appended: list[list[str]] = []
    real_append = nd.store.changelog.append
    nd.store.changelog.append = lambda ids, deleted=False: appended.append(list(ids))  # type: ignore[method-assign]
    nd.indexer.index([make_article("A river flood in Late Town.", article_id="late")])
    nd.store.changelog.append = real_append  # type: ignore[method-assign]
    assert appended == [["late"]]
    nd.store.changelog.collection.upsert(
        ids=[f"{position - 1_000_000:017d}-latewriter00"],
        metadatas=[{"article_id": "late", "ts": position - 1_000_000, "op": "write"}],
        documents=["late"],
        embeddings=[[0.0]],
    )
    assert index.catch_up() == 1
    assert [c.article_id for c, _ in index.search("Late Town", 1)] == ["late"]


def test_a_write_that_died_before_logging_is_healed(nd: Newsdesk, tmp_path: Path) -> None:
    nd.indexer.index(_corpus(3))
    index = KeywordIndex(nd.store, _config(tmp_path / "kw", check_seconds=3600))
    index.ensure_current()

    def died(ids: list[str], deleted: bool = False) -> None:
        raise KeyboardInterrupt  # stands in for the SIGKILL between switch and log

    nd.store.changelog.append = died  # type: ignore[assignment, method-assign]
    with pytest.raises(KeyboardInterrupt):
        nd.indexer.index([make_article("Unlogged harbour news.", article_id="unlogged")])
    del nd.store.changelog.append
    # The store's generation moved with no entry: one more check for a late entry, then
    # the catalogs are compared.
    assert index.catch_up() == 0
    assert index.catch_up() == 1
    assert [c.article_id for c, _ in index.search("unlogged", 1)] == ["unlogged"]


@pytest.mark.server
def test_replicas_on_one_chroma_server_see_each_others_writes(
    tmp_path: Path, settings: Settings
) -> None:
    server = ChromaServer(tmp_path / "chroma").start()
    try:
        shared = settings.model_copy(
            update={"chroma_host": "127.0.0.1", "chroma_port": server.port}
        )

        def replica(name: str) -> Newsdesk:
            s = shared.model_copy(update={"data_dir": tmp_path / name, "index_check_seconds": 0.1})
            return Newsdesk(s, embedder=HashingEmbedder())

        a, b = replica("a"), replica("b")
        a.indexer.index(_corpus(5))
        assert a.keyword.search("harbour", 5) and b.keyword.search("harbour", 5)
        a.indexer.index([make_article("Written on A: the zebra parade.", article_id="from-a")])
        b.indexer.index([make_article("Written on B: the walrus parade.", article_id="from-b")])
        a.store.delete_article("a00")

        def sees(index: KeywordIndex) -> bool:
            ids = {c.article_id for c, _ in index.search("parade", 10)}
            gone = not index.search("Story 0 revision", 50, ArticleFilter(article_ids=("a00",)))
            return ids == {"from-a", "from-b"} and gone

        # Each replica's background poller applies the other's writes by itself.
        deadline = time.monotonic() + 60
        while not (sees(a.keyword) and sees(b.keyword)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sees(a.keyword) and sees(b.keyword)
        assert a.keyword.rebuilds == b.keyword.rebuilds == 1
        a.keyword.close()
        b.keyword.close()
    finally:
        server.stop()


def test_changelog_entries_of_simultaneous_writers_never_collide(nd: Newsdesk) -> None:
    store: ChromaStore = nd.store
    barrier = threading.Barrier(4)

    def write(k: int) -> None:
        barrier.wait()
        for j in range(25):
            store.changelog.append([f"w{k}-{j}", "shared"])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    entries = store.changelog.since(0)
    assert len(entries) == len({e.id for e in entries}) == 4 * 25 * 2
    assert [e.ts for e in entries] == sorted(e.ts for e in entries)


def test_another_process_on_the_same_data_dir_gets_its_own_index_folder(
    nd: Newsdesk, tmp_path: Path
) -> None:
    import subprocess
    import sys

    base = tmp_path / "kw"
    base.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(base / "owner.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        nd.indexer.index(_corpus(3))
        index = KeywordIndex(nd.store, _config(base))
        assert index.search("harbour", 3)
        assert index.directory == base / "process-1"
        # In this process, a second index of the same folder shares it (a restart).
        again = KeywordIndex(nd.store, _config(base))
        again.ensure_current()
        assert again.directory == base / "process-1" and again.rebuilds == 0
    finally:
        holder.communicate("", timeout=30)
