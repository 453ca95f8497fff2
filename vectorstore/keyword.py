"""BM25 keyword index over the stored chunks: a tantivy index per replica, kept in step
with Chroma by applying the store's change log (vectorstore/changelog.py).

Chroma is the source of truth. A replica's index starts as one build from the store's
chunks; after that it only applies what the log says changed since its position: for each
article named, it reads the article's current record and chunks from the store, deletes the
article's documents from tantivy and adds the current ones. Applying is idempotent, so the
log's overlap window and a crash between tantivy's commit and the saved position are
harmless. The position, and the version of every article the index holds, are saved next to
the index (``state.sqlite3``) after each commit, so a restart applies only what changed
while it was down. A replica whose position is older than the log's horizon (compacted
away), or whose saved state is missing or of another format, builds again.

Searches never wait on maintenance: tantivy serves them from the last committed snapshot
(``Searcher``), which the applier swaps for a new one after each commit. A background
thread applies the log every ``check_seconds``; with ``check_seconds`` 0 every search
applies it first, synchronously (tests, and one-process use that wants no thread).

A write whose process died between switching its records and logging them leaves no entry.
When the store's generation token moves and no entry arrives by the next check, and in any
case every ``reconcile_seconds``, the index compares its article versions with the store's
records (metadata only) and applies the difference; with ``check_seconds`` 0, on every
generation change (entries from other writes can hide a missing one).

Tokens are what bm25s gave (``\\w\\w+``, lowercased, Lucene's English stopwords, Snowball
English stems), analysed by tantivy itself; tantivy scores with BM25 (k1 1.2, b 0.75).
Filters (article ids, outlets, published_ts range) are clauses of the tantivy query.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import tantivy

from vectorstore.changelog import Change, now_us
from vectorstore.config import KeywordConfig
from vectorstore.ingest import published_timestamp
from vectorstore.store import (
    ArticleFilter,
    ChromaStore,
    StoredChunk,
    _unavailable_as_store_error,
    record_version,
)

log = logging.getLogger(__name__)
# Bumped when the schema or the analyser changes: a saved index of another format is
# built again.
INDEX_FORMAT = 2
ANALYZER = "newsdesk_en"
# Per apply: small, since one apply is a few articles; the full build gets more.
APPLY_HEAP_BYTES = 20_000_000
BUILD_HEAP_BYTES = 64_000_000
WRITER_ATTEMPTS = 50
# Hits fetched past the n asked for, so that chunks tied with the n-th are all seen.
TIE_MARGIN = 16
# Processes sharing one data dir (serve --workers N) each get an index folder of their own.
MAX_PROCESS_SLOTS = 64


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("chunk_id", stored=True, tokenizer_name="raw")
    sb.add_text_field("article_id", stored=True, tokenizer_name="raw")
    sb.add_text_field("version", stored=True, tokenizer_name="raw")
    sb.add_integer_field("index", stored=True)
    sb.add_integer_field("start", stored=True)
    sb.add_integer_field("end", stored=True)
    sb.add_text_field("title", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("source", stored=True, tokenizer_name="raw")
    sb.add_text_field("published_at", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_integer_field("published_ts", stored=True, indexed=True, fast=True)
    sb.add_text_field("text", stored=True, tokenizer_name=ANALYZER, index_option="freq")
    return sb.build()


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(r"(?u)\b\w\w+\b"))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _document(chunk: StoredChunk) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_text("chunk_id", chunk.id)
    doc.add_text("article_id", chunk.article_id)
    doc.add_text("version", chunk.version)
    doc.add_integer("index", chunk.index)
    doc.add_integer("start", chunk.start)
    doc.add_integer("end", chunk.end)
    doc.add_text("title", chunk.title)
    if chunk.source is not None:
        doc.add_text("source", chunk.source)
    if chunk.published_at is not None:
        doc.add_text("published_at", chunk.published_at)
    ts = published_timestamp(chunk.published_at)
    if ts is not None:
        doc.add_integer("published_ts", ts)
    doc.add_text("text", chunk.text)
    return doc


def _chunk(doc: tantivy.Document) -> StoredChunk:
    return StoredChunk(
        id=doc.get_first("chunk_id"),
        article_id=doc.get_first("article_id"),
        version=doc.get_first("version"),
        index=int(doc.get_first("index")),
        start=int(doc.get_first("start")),
        end=int(doc.get_first("end")),
        text=doc.get_first("text"),
        title=doc.get_first("title") or "",
        source=doc.get_first("source"),
        published_at=doc.get_first("published_at"),
    )


class KeywordIndex:
    def __init__(self, store: ChromaStore, config: KeywordConfig) -> None:
        self.store = store
        self.config = config
        self.directory = config.directory
        self.check_seconds = config.check_seconds
        self._schema = _schema()
        self._analyzer = _analyzer()
        self._open_lock = threading.Lock()
        # One apply at a time per index; searches never take it.
        self._apply_lock = threading.Lock()
        self._index: tantivy.Index | None = None
        self._searcher: tantivy.Searcher | None = None
        # What the committed index holds: article -> (version, source).
        self._articles: dict[str, tuple[str, str | None]] = {}
        self._versions: dict[str, str] = {}
        self._source_counts: Counter[str] = Counter()
        # Swapped whole after each apply, so readers never iterate a changing dict.
        self._sources: frozenset[str] = frozenset()
        self._position = 0
        self._seen: dict[str, int] = {}
        self._generation: str | None = None
        self._known_horizon = 0
        self._unsaved: dict[str, tuple[str, str | None] | None] = {}
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._quiet_generation: str | None = None
        self._reconciled_at = 0.0
        self._compacted_at = 0.0
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.rebuilds = 0

    # ---- what the retriever reads --------------------------------------------------------

    def versions(self, force: bool = False) -> dict[str, str]:
        """The current chunk version of every article the index holds."""
        self.ensure_current(force=force)
        return self._versions

    def sources(self) -> set[str]:
        """Every outlet named in the indexed articles."""
        self.ensure_current()
        return set(self._sources)

    @property
    def position(self) -> int:
        """Microseconds: every log entry stamped before it has been applied."""
        return self._position

    def ensure_current(self, force: bool = False) -> None:
        """Open (building once if needed); with ``force``, or when there is no background
        poller, also apply the log now. Never called by searches on a polling index."""
        self._ensure_open()
        if force or self.check_seconds <= 0:
            self.catch_up()

    def invalidate(self) -> None:
        """This process has just written: apply the log now, so its next search sees the
        write (the writer's request waits, searches don't)."""
        if self._index is not None:
            self.catch_up()

    def close(self) -> None:
        self._stop.set()

    def search(
        self, query: str, n: int, filters: ArticleFilter | None = None
    ) -> list[tuple[StoredChunk, float]]:
        self._ensure_open()
        if self.check_seconds <= 0:
            self.catch_up()
        searcher = self._searcher
        if searcher is None or n <= 0:
            return []
        terms = list(dict.fromkeys(self._analyzer.analyze(query)))
        if not terms:
            return []
        text = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "text", t))
                for t in terms
            ]
        )
        clauses = [(tantivy.Occur.Must, text)]
        clauses += [(tantivy.Occur.Must, q) for q in self._filter_queries(filters)]
        combined = tantivy.Query.boolean_query(clauses)
        hits = [h for h in searcher.search(combined, n + TIE_MARGIN, count=False).hits if h[0] > 0]
        # Equal scores (chunks alike in length and terms) come back in the order the
        # chunks were added, which differs between a replica that applied the change log
        # and one that built from the store: break ties by chunk id, so every replica
        # gives the same ranking.
        if len(hits) > n:
            hits = [h for h in hits if h[0] >= hits[n - 1][0]]
        found = [(_chunk(searcher.doc(addr)), float(score)) for score, addr in hits]
        found.sort(key=lambda hit: (-hit[1], hit[0].id))
        return found[:n]

    def _filter_queries(self, filters: ArticleFilter | None) -> list[tantivy.Query]:
        if filters is None or filters.is_empty():
            return []
        out: list[tantivy.Query] = []
        if filters.article_ids:
            out.append(
                tantivy.Query.term_set_query(self._schema, "article_id", list(filters.article_ids))
            )
        if filters.sources:
            out.append(tantivy.Query.term_set_query(self._schema, "source", list(filters.sources)))
        after = published_timestamp(filters.published_after) if filters.published_after else None
        before = published_timestamp(filters.published_before) if filters.published_before else None
        if after is not None or before is not None:
            out.append(
                tantivy.Query.range_query(
                    self._schema, "published_ts", tantivy.FieldType.Integer, after, before
                )
            )
        # Filters select; only the words score.
        return [tantivy.Query.const_score_query(q, 0.0) for q in out]

    def chunk_ids(self) -> list[str]:
        """Every chunk id the committed index holds (for checks and tests)."""
        self._ensure_open()
        searcher = self._searcher
        if searcher is None or searcher.num_docs == 0:
            return []
        hits = searcher.search(tantivy.Query.all_query(), searcher.num_docs, count=False).hits
        return [searcher.doc(addr).get_first("chunk_id") for _, addr in hits]

    # ---- opening and building ----------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._index is not None:
            return
        with self._open_lock:
            if self._index is not None:
                return
            if self._lock_fd is None:
                self._claim_directory()
            with self._apply_lock, _unavailable_as_store_error():
                if not self._load():
                    self._rebuild()
            if self.check_seconds > 0:
                # Bring a restarted replica up to date before its first answer.
                self.catch_up()
                self._poller = threading.Thread(
                    target=self._poll, name="keyword-index", daemon=True
                )
                self._poller.start()

    def _claim_directory(self) -> None:
        """Take the configured folder, or, when another process of this data dir has it
        (``serve --workers N``), the first free ``process-N`` folder inside it: one writer
        per index. POSIX record locks belong to the process, so a second KeywordIndex in
        the same process (a restart in a test) shares its folder, and a dead process's
        lock goes with it."""
        base = self.config.directory
        for slot in range(MAX_PROCESS_SLOTS):
            candidate = base if slot == 0 else base / f"process-{slot}"
            candidate.mkdir(parents=True, exist_ok=True)
            fd = os.open(candidate / "owner.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # held by another process: this one holds nothing to drop
                continue
            # Kept open for the process's life: closing any descriptor of the file would
            # drop the process's lock on it.
            self._lock_fd = fd
            self.directory = candidate
            return
        raise OSError(f"more than {MAX_PROCESS_SLOTS} processes share {base}")

    def _open_index(self, name: str) -> tantivy.Index:
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(self._schema, path=str(path))
        index.register_tokenizer(ANALYZER, self._analyzer)
        return index

    def _load(self) -> bool:
        """Open the saved index and state; False when there is none to trust."""
        try:
            state = self._read_state()
            if state is None:
                return False
            position, name, articles = state
            if not (self.directory / name / "meta.json").exists():
                return False
            index = self._open_index(name)
            index.reload()
        except (OSError, ValueError, sqlite3.Error) as exc:
            log.info("keyword index not loaded (%s); building it", exc)
            return False
        horizon = self._horizon()
        if position - self._overlap_us() < horizon:
            log.info("keyword index is behind the change log's retention; building it")
            return False
        self._known_horizon = horizon
        self._install(index, articles)
        self._position = position
        return True

    def _rebuild(self) -> None:
        """Build from every chunk in the store; the caller holds the apply lock."""
        started = time.perf_counter()
        # Entries stamped after this are applied later (idempotent if already built in).
        position = now_us()
        # Entries compacted before this are covered by reading the store itself.
        horizon = self._horizon()
        generation = self.store.generation()
        catalog = self.store.article_catalog()
        versions = {aid: version for aid, (version, _) in catalog.items()}
        # A new folder: searches keep reading the old snapshot until the swap below.
        name = f"tantivy-{position}"
        index = self._open_index(name)
        writer = index.writer(BUILD_HEAP_BYTES, 1)
        count = 0
        for chunk in self.store.iter_chunks():
            if versions.get(chunk.article_id) == chunk.version:
                writer.add_document(_document(chunk))
                count += 1
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        self._write_state(position, name, catalog)
        self._install(index, catalog)
        self._position = position
        self._seen = {}
        self._generation = generation
        self._known_horizon = horizon
        self._reconciled_at = time.monotonic()
        self.rebuilds += 1
        # Earlier builds, and the previous format's bm25s index; open snapshots of them
        # keep their (unlinked) files until they are dropped.
        for old in self.directory.iterdir():
            if old.is_dir() and old.name != name and old.name.startswith(("tantivy", "index")):
                shutil.rmtree(old, ignore_errors=True)
        log.info("keyword index rebuilt: %d chunks in %.2fs", count, time.perf_counter() - started)

    def _install(self, index: tantivy.Index, articles: dict[str, tuple[str, str | None]]) -> None:
        self._articles = dict(articles)
        self._versions = {aid: v for aid, (v, _) in articles.items()}
        self._source_counts = Counter(s for _, s in articles.values() if s)
        self._sources = frozenset(self._source_counts)
        self._searcher = index.searcher()
        self._index = index

    # ---- following the log ---------------------------------------------------------------

    def _overlap_us(self) -> int:
        return int(self.config.log_overlap_seconds * 1_000_000)

    def _horizon(self) -> int:
        return self.store.changelog.horizon()

    def _poll(self) -> None:
        while not self._stop.wait(self.check_seconds):
            try:
                self.catch_up()
            except Exception as exc:  # a store outage: keep serving the last snapshot
                log.warning("keyword index could not apply the change log: %s", exc)

    def catch_up(self) -> int:
        """Apply every log entry not applied yet; returns how many articles changed."""
        self._ensure_open()
        with self._apply_lock, _unavailable_as_store_error():
            return self._catch_up()

    def _catch_up(self) -> int:
        changelog = self.store.changelog
        generation = self.store.generation()
        since = self._position - self._overlap_us()
        changes = changelog.since(since)
        # Read after the entries: a compaction that removed any of them shows here.
        horizon = changelog.horizon()
        if horizon > since and horizon > self._known_horizon:
            self._rebuild()
            return len(self._articles)
        new = [c for c in changes if c.id not in self._seen]
        applied = self._apply(dict.fromkeys(c.article_id for c in new)) if new else 0
        self._advance(new)
        self._save(bool(new))
        now = time.monotonic()
        # Applying before every search (check_seconds 0) also compares the catalogs on
        # every change, as the index always did: a killed writer's switch that the next
        # run found unchanged has no entry, and other writes' entries may hide it.
        sync = self.check_seconds <= 0 and generation != self._generation
        if not sync and (new or generation == self._generation):
            self._quiet_generation = None
            self._generation = generation
        elif sync or self._quiet_generation == generation:
            # The store changed and no entry said what (a writer died before logging, a
            # repair): compare the catalogs.
            applied += self._reconcile()
            self._quiet_generation = None
            self._generation = generation
        else:
            # Its entry may be committing right now: give it one more check.
            self._quiet_generation = generation
        if now - self._reconciled_at > self.config.reconcile_seconds:
            applied += self._reconcile()
        self._compact(now)
        return applied

    def _advance(self, new: list[Change]) -> None:
        if not new:
            return
        for c in new:
            self._seen[c.id] = c.ts
        self._position = max(self._position, max(c.ts for c in new))
        floor = self._position - self._overlap_us()
        self._seen = {cid: ts for cid, ts in self._seen.items() if ts >= floor}

    def _reconcile(self) -> int:
        self._reconciled_at = time.monotonic()
        catalog = self.store.article_catalog()
        differ = [aid for aid, (v, _) in catalog.items() if self._versions.get(aid) != v]
        differ += [aid for aid in self._versions if aid not in catalog]
        return self._apply(dict.fromkeys(differ)) if differ else 0

    def _compact(self, now: float) -> None:
        # Never inside the overlap window: live replicas re-read it on every check.
        retention = max(self.config.log_retention_seconds, 2 * self.config.log_overlap_seconds)
        if now - self._compacted_at < max(retention / 10, 1.0):
            return
        self._compacted_at = now
        self.store.changelog.compact(now_us() - int(retention * 1_000_000))

    def _apply(self, article_ids: Iterable[str]) -> int:
        """Make the index hold each article's current version (or nothing, if deleted)."""
        ids = list(article_ids)
        metas = self.store.article_meta(ids)
        current = {aid: (record_version(m), m.get("source")) for aid, m in metas.items()}
        todo = [aid for aid in ids if self._articles.get(aid) != current.get(aid)]
        if not todo:
            return 0
        chunks = self.store.current_chunks({aid: metas[aid] for aid in todo if aid in metas})
        index = self._index
        assert index is not None
        writer = self._writer(index)
        for aid in todo:
            writer.delete_documents_by_term("article_id", aid)
        for chunk in chunks:
            writer.add_document(_document(chunk))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        self._searcher = index.searcher()
        for aid in todo:
            old = self._articles.pop(aid, None)
            if old and old[1]:
                self._source_counts[old[1]] -= 1
            self._versions.pop(aid, None)
            if aid in current:
                self._articles[aid] = current[aid]
                self._versions[aid] = current[aid][0]
                if current[aid][1]:
                    self._source_counts[current[aid][1]] += 1
        self._sources = frozenset(s for s, n in self._source_counts.items() if n > 0)
        self._unsaved.update({aid: current.get(aid) for aid in todo})
        return len(todo)

    def _writer(self, index: tantivy.Index) -> Any:
        # Another KeywordIndex of this directory in this process (a test's "restart")
        # may hold tantivy's writer lock for a moment.
        for attempt in range(WRITER_ATTEMPTS):
            try:
                return index.writer(APPLY_HEAP_BYTES, 1)
            except ValueError:
                if attempt == WRITER_ATTEMPTS - 1:
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")

    # ---- saved state: position and article versions, next to the index ---------------

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The state database, in one transaction; only used under the apply lock."""
        if self._conn is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.directory / "state.sqlite3", timeout=30, check_same_thread=False
            )
            # Losing the last transactions in a power cut only means applying them again;
            # WAL keeps the file itself intact, without an fsync per apply.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS articles "
                    "(article_id TEXT PRIMARY KEY, version TEXT NOT NULL, source TEXT)"
                )
            self._conn = conn
        with self._conn:
            yield self._conn

    def _read_state(self) -> tuple[int, str, dict[str, tuple[str, str | None]]] | None:
        if not (self.directory / "state.sqlite3").exists():
            return None
        with self._db() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != str(INDEX_FORMAT) or not {"position", "index"} <= set(meta):
                return None
            rows = conn.execute("SELECT article_id, version, source FROM articles").fetchall()
        return int(meta["position"]), meta["index"], {aid: (v, s) for aid, v, s in rows}

    def _write_state(
        self, position: int, name: str, articles: dict[str, tuple[str, str | None]]
    ) -> None:
        with self._db() as conn:
            conn.execute("DELETE FROM articles")
            conn.executemany(
                "INSERT INTO articles VALUES (?, ?, ?)",
                [(aid, v, s) for aid, (v, s) in articles.items()],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("format", str(INDEX_FORMAT)), ("position", str(position)), ("index", name)],
            )

    def _save(self, moved: bool) -> None:
        """One transaction for what the last commit changed and the new position; after
        tantivy's commit, so a crash in between only means applying those entries again."""
        changed, self._unsaved = self._unsaved, {}
        if not changed and not moved:
            return
        with self._db() as conn:
            conn.executemany(
                "DELETE FROM articles WHERE article_id = ?",
                [(aid,) for aid, v in changed.items() if v is None],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO articles VALUES (?, ?, ?)",
                [(aid, v[0], v[1]) for aid, v in changed.items() if v is not None],
            )
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", ("position", str(self._position))
            )
