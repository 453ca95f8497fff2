"""Storing articles: idempotent, atomic replacement, delete, crash repair, model check."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.context import Newsdesk
from service.settings import Settings
from tests.conftest import SEEDS, HashingEmbedder
from vectorstore.ingest import make_article, read_paths
from vectorstore.store import ChromaStore, EmbeddingModelMismatch, StoreWriteTooSlow


def _visible_chunks(nd: Newsdesk, article_id: str) -> list[str]:
    versions = nd.store.article_versions()
    return sorted(
        c.text
        for c in nd.store.iter_chunks()
        if c.article_id == article_id and versions.get(c.article_id) == c.version
    )


def test_ingesting_seeds_twice_adds_then_reports_unchanged(newsdesk: Newsdesk) -> None:
    first = newsdesk.indexer.index(read_paths([SEEDS]))
    assert (first.added, first.updated, first.unchanged, first.failed) == (3, 0, 0, 0)
    chunks = newsdesk.store.count_chunks()
    second = newsdesk.indexer.index(read_paths([SEEDS]))
    assert (second.added, second.updated, second.unchanged, second.chunks) == (0, 0, 3, 0)
    assert newsdesk.store.count_chunks() == chunks == first.chunks


def test_every_stored_chunk_is_an_exact_span_of_the_stored_text(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index(read_paths([SEEDS]))
    for c in newsdesk.store.iter_chunks():
        article = newsdesk.store.get_article(c.article_id)
        assert article is not None
        assert article.text[c.start : c.end] == c.text


def test_current_chunks_are_read_by_id_and_by_filter_only_when_the_count_is_off(
    newsdesk: Newsdesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = newsdesk.store
    newsdesk.indexer.index(read_paths([SEEDS]))
    newsdesk.indexer.index([make_article("Old words. " * 300, article_id="revised")])
    newsdesk.indexer.index([make_article("New words only.", article_id="revised")])
    records = store.article_meta([aid for aid, _ in store.iter_article_meta()])
    versions = {aid: meta["version"] for aid, meta in records.items()}
    expected = sorted(
        (c for c in store.iter_chunks() if versions[c.article_id] == c.version),
        key=lambda c: (c.article_id, c.index),
    )
    reads: list[dict] = []
    real_get = store.chunks.get

    def counting_get(**kwargs):  # type: ignore[no-untyped-def]
        reads.append(kwargs)
        return real_get(**kwargs)

    monkeypatch.setattr(store.chunks, "get", counting_get)
    got = store.current_chunks(records)
    assert sorted(got, key=lambda c: (c.article_id, c.index)) == expected
    # A filter scans the whole collection: with the records' counts none is needed.
    assert reads and not any("where" in r for r in reads)
    # A record without a count, or with a wrong one, is read through the filter instead.
    reads.clear()
    off = {aid: dict(meta) for aid, meta in records.items()}
    first, second = sorted(off)[:2]
    off[first].pop("chunks")
    off[second]["chunks"] += 3
    assert sorted(store.current_chunks(off), key=lambda c: (c.article_id, c.index)) == expected
    assert sum("where" in r for r in reads) == 1


def test_changed_text_for_same_id_replaces_all_old_chunks(newsdesk: Newsdesk) -> None:
    old = make_article("Old sentence one. " * 200, article_id="story")
    newsdesk.indexer.index([old])
    assert len(_visible_chunks(newsdesk, "story")) > 1
    new = make_article("Brand new text about elections.", article_id="story")
    report = newsdesk.indexer.index([new])
    assert report.updated == 1 and report.added == 0
    assert _visible_chunks(newsdesk, "story") == ["Brand new text about elections."]
    stored = [c for c in newsdesk.store.iter_chunks() if c.article_id == "story"]
    assert len(stored) == 1  # old version physically gone, not just hidden
    assert newsdesk.store.get_article("story").text == "Brand new text about elections."


def _crash_on_article_record(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The next write dies after its chunks, before its article record switches."""
    real_upsert = ChromaStore._upsert
    calls = {"n": 0}

    def crash(self, collection, *args, **kwargs):  # type: ignore[no-untyped-def]
        if collection is self.articles:
            raise KeyboardInterrupt("killed")
        calls["n"] += 1
        return real_upsert(self, collection, *args, **kwargs)

    monkeypatch.setattr(ChromaStore, "_upsert", crash)
    return calls


def test_crash_between_chunks_and_record_shows_old_version_then_repairs(
    make_newsdesk: Callable[..., Newsdesk], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No lease: the crashed writer's chunks count as leftovers at once.
    newsdesk = make_newsdesk(repair_lease_seconds=0.0, repair_interval_seconds=0.0)
    newsdesk.indexer.index([make_article("Version one text.", article_id="s")])
    calls = _crash_on_article_record(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        newsdesk.indexer.index([make_article("Version two text.", article_id="s")])
    monkeypatch.undo()
    # New chunks were written, but readers still see exactly the old article.
    assert calls["n"] == 1
    assert _visible_chunks(newsdesk, "s") == ["Version one text."]
    assert newsdesk.store.count_chunks() == 2
    # The next run completes the work and removes the orphan.
    report = newsdesk.indexer.index([make_article("Version two text.", article_id="s")])
    assert report.repaired_chunks == 1 and report.updated == 1
    assert _visible_chunks(newsdesk, "s") == ["Version two text."]
    assert newsdesk.store.count_chunks() == 1


def test_repair_leaves_chunks_younger_than_the_lease_to_their_writer(
    make_newsdesk: Callable[..., Newsdesk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unreferenced chunks may be another writer's work in flight: repair waits out the
    lease before it calls them leftovers."""
    newsdesk = make_newsdesk(repair_lease_seconds=3600.0, repair_interval_seconds=0.0)
    _crash_on_article_record(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        newsdesk.indexer.index([make_article("In flight elsewhere.", article_id="f")])
    monkeypatch.undo()
    assert newsdesk.store.repair() == 0
    assert newsdesk.store.count_chunks() == 1
    # An hour later they are a dead writer's leftovers.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3601.0)
    assert newsdesk.store.repair() == 1
    assert newsdesk.store.count_chunks() == 0


def test_a_writer_slower_than_half_the_lease_does_not_switch(
    make_newsdesk: Callable[..., Newsdesk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repair may already be deleting chunks that old, so the record must not point at
    them: the write fails (nothing acknowledged) and the old text stays visible."""
    newsdesk = make_newsdesk(repair_lease_seconds=10.0)
    newsdesk.indexer.index([make_article("Old text stays.", article_id="slow")])
    real_upsert = ChromaStore._upsert
    real_time = time.time
    skew = {"s": 0.0}

    def slow_chunks(self, collection, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = real_upsert(self, collection, *args, **kwargs)
        if collection is self.chunks:
            skew["s"] = 6.0  # the chunk upsert "took" six seconds
        return result

    monkeypatch.setattr(ChromaStore, "_upsert", slow_chunks)
    monkeypatch.setattr(time, "time", lambda: real_time() + skew["s"])
    with pytest.raises(StoreWriteTooSlow):
        newsdesk.indexer.index([make_article("New text never shown.", article_id="slow")])
    monkeypatch.undo()
    assert _visible_chunks(newsdesk, "slow") == ["Old text stays."]


def test_same_text_with_missing_chunks_is_rewritten_not_reported_unchanged(
    newsdesk: Newsdesk,
) -> None:
    """A store damaged by the old repair (record present, chunks gone) heals on re-ingest."""
    article = make_article("Sentence one is here. " * 150, article_id="hurt")
    newsdesk.indexer.index([article])
    total = newsdesk.store.count_chunks()
    assert total > 1
    newsdesk.store.chunks.delete(ids=newsdesk.store.chunk_ids(["hurt"])[:1])
    report = newsdesk.indexer.index([article])
    assert report.unchanged == 0 and report.updated == 1
    assert "rewritten" in report.warnings[0]["warning"]
    assert newsdesk.store.count_chunks() == total
    assert newsdesk.indexer.index([article]).unchanged == 1


def test_delete_keeps_a_concurrent_writers_chunks_of_the_same_id(
    newsdesk: Newsdesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delete removes the version it saw; a write of the same id that switches after it
    shows up complete (last writer wins), never as a record without chunks."""
    newsdesk.indexer.index([make_article("First text.", article_id="d")])
    real_upsert = ChromaStore._upsert

    def delete_between(self, collection, *args, **kwargs):  # type: ignore[no-untyped-def]
        if collection is self.articles:
            assert self.delete_article("d") is True  # lands between chunks and record
        return real_upsert(self, collection, *args, **kwargs)

    monkeypatch.setattr(ChromaStore, "_upsert", delete_between)
    newsdesk.indexer.index([make_article("Second text.", article_id="d")])
    monkeypatch.undo()
    assert _visible_chunks(newsdesk, "d") == ["Second text."]
    assert newsdesk.store.get_article("d").chunks == 1


def test_delete_removes_article_and_chunks(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index(read_paths([SEEDS]))
    victim = next(aid for aid, _ in newsdesk.store.iter_article_meta())
    assert newsdesk.store.delete_article(victim) is True
    assert newsdesk.store.get_article(victim) is None
    assert all(c.article_id != victim for c in newsdesk.store.iter_chunks())
    assert newsdesk.store.delete_article(victim) is False


def test_batch_with_a_bad_file_still_ingests_the_rest(newsdesk: Newsdesk, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.txt").write_text("A good article. With text.", "utf-8")
    (inbox / "bad.txt").write_bytes(b"")
    report = newsdesk.indexer.index(read_paths([inbox]))
    assert report.added == 1 and report.failed == 1
    assert report.errors[0]["reason"] == "empty file"


def test_opening_a_store_with_another_embedding_model_is_an_error(
    make_newsdesk,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    make_newsdesk().indexer.index([make_article("Some text.")])
    other = Newsdesk(settings.model_copy(update={"embedding_provider": "openai"}))
    with pytest.raises(EmbeddingModelMismatch, match="all-MiniLM-L6-v2"):
        _ = other.store


def test_keyword_index_follows_ingest_delete_and_restart(make_newsdesk) -> None:  # type: ignore[no-untyped-def]
    nd = make_newsdesk()
    nd.indexer.index([make_article("Zebras migrate across the plain.", article_id="z")])
    assert [c.article_id for c, _ in nd.keyword.search("zebras", 5)] == ["z"]
    nd.store.delete_article("z")
    assert nd.keyword.search("zebras", 5) == []
    nd.indexer.index([make_article("Zebras again, now in a new story.", article_id="z2")])
    restarted = make_newsdesk()  # a new process: loads the saved index or rebuilds it
    assert [c.article_id for c, _ in restarted.keyword.search("zebras", 5)] == ["z2"]


class _IndexMissing:
    """The chunks collection as Chroma left it after a SIGKILL: the record (and `get`'s
    embedding) is there, the HNSW index has no vector for it, so no query returns it."""

    def __init__(self, inner: object, lost: str) -> None:
        self._inner, self.lost = inner, lost
        self.upserted: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def query(self, **kwargs: object) -> dict:
        got = self._inner.query(**kwargs)  # type: ignore[attr-defined]
        if self.lost not in self.upserted:
            got["ids"] = [[i for i in row if i != self.lost] for row in got["ids"]]
        return got

    def upsert(self, *, ids: list[str], **kwargs: object) -> None:
        self.upserted += ids
        self._inner.upsert(ids=ids, **kwargs)  # type: ignore[attr-defined]


def test_vectors_the_index_lost_are_upserted_again(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index(read_paths([SEEDS]))
    lost = newsdesk.store.chunk_ids(newsdesk.store.article_versions())[3]
    chunks = _IndexMissing(newsdesk.store.chunks, lost)
    newsdesk.store.chunks = chunks
    assert newsdesk.store.restore_missing_vectors() == 1
    assert chunks.upserted == [lost]
    assert newsdesk.store.restore_missing_vectors() == 0  # found now: nothing to do


def test_every_open_of_the_embedded_store_checks_for_lost_vectors(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[bool] = []
    monkeypatch.setattr(
        ChromaStore, "restore_missing_vectors", lambda self: checked.append(True) or 0
    )
    lock = settings.chroma_dir / "newsdesk.lock"
    # Vectors went missing after clean shutdowns too (bench/chaos.py), not only after a crash.
    for previous in (None, "closed", "pid 4242, newsdesk serve"):
        checked.clear()
        store_dir = settings.data_dir / f"store-{previous}"
        s = settings.model_copy(update={"data_dir": store_dir})
        s.chroma_dir.mkdir(parents=True)
        if previous is not None:
            (s.chroma_dir / lock.name).write_text(previous, "utf-8")
        ChromaStore(s.store_config(), HashingEmbedder.model_id, 384)
        assert checked == [True], previous
        assert (s.chroma_dir / lock.name).read_text("utf-8").startswith(f"pid {os.getpid()}")


def test_the_api_records_a_clean_shutdown_of_the_store(newsdesk: Newsdesk) -> None:
    from fastapi.testclient import TestClient

    from service.api import create_app

    lock = newsdesk.settings.chroma_dir / "newsdesk.lock"
    with TestClient(create_app(newsdesk=newsdesk)):
        assert lock.read_text("utf-8").startswith(f"pid {os.getpid()}")
    assert lock.read_text("utf-8") == "closed"


def test_closing_the_store_lets_another_process_take_it(newsdesk: Newsdesk) -> None:
    import fcntl

    assert newsdesk.store.count_articles() == 0  # opened: this process holds the lock
    lock = newsdesk.settings.chroma_dir / "newsdesk.lock"
    with lock.open("rb") as other:  # another open file, as another process would have
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        newsdesk.store.close()
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert lock.read_text("utf-8") == "closed"


def test_an_open_checks_only_what_was_written_since_the_last_check(
    newsdesk: Newsdesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = newsdesk.store
    store.restore_missing_vectors()  # everything so far is verified
    newsdesk.indexer.index([make_article("Written after the check. " * 20, article_id="late")])
    seen: list[str] = []
    real = ChromaStore._make_findable

    def record(self: ChromaStore, ids: list[str], *args: object) -> int:
        seen.extend(ids)
        return real(self, ids, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ChromaStore, "_make_findable", record)
    assert store.restore_missing_vectors() == 0
    assert seen and {cid.split("#")[0] for cid in seen} == {"late"}
    seen.clear()
    # Each check moves the mark on (less a margin for clock skew, zero here).
    monkeypatch.setattr("vectorstore.store.VERIFY_CLOCK_MARGIN", 0.0)
    store.restore_missing_vectors()
    assert seen == []
