"""Chroma storage: an ``articles`` collection (canonical texts) and a ``chunks`` collection.

Replacing an article's text is made atomic by versioning instead of transactions, which
Chroma doesn't have: new chunks are written under a fresh version token first, then the
article record is switched to that token in one upsert, then the chunks of the version
it replaced are deleted. Readers only trust chunks whose version matches the article
record, so at every moment an article is seen either wholly old or wholly new.

Any number of writers (threads, replicas on one Chroma server) can do this at once,
because every write gets its own version token: a writer only ever deletes a version
that it has just seen replaced, and a replaced version never becomes current again, so
no writer can delete chunks another writer is about to make visible. A crash leaves
only unreferenced chunks behind, which ``repair`` removes once they are older than the
lease that bounds how long a live writer may take between its chunks and its switch.

The embedded store (a local Chroma directory) belongs to one process at a time: Chroma's
embedded mode does not see another process's writes, so a second process is refused
with a clear error instead of silently serving stale or broken reads.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import inspect
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from vectorstore import stories, syndication
from vectorstore.changelog import ChangeLog
from vectorstore.chunk import Chunk
from vectorstore.config import StoreConfig
from vectorstore.ingest import Article, published_timestamp

log = logging.getLogger(__name__)
VERSION_CHARS = 16
# Seconds of clock difference between writers allowed for when picking the chunks written
# since the last check (the embedded store has one writing process, so this is generous).
VERIFY_CLOCK_MARGIN = 60.0
# Chunks checked at most per open: twice Chroma's hnsw:sync_threshold and then some.
RESTORE_CHECK_NEWEST = 2500
RESTORE_CHECK_BATCH = 100
FINDABLE_ATTEMPTS = 3
# Aliases followed at most from a story id to the story it now is (merges of merges).
STORY_ALIAS_HOPS = 8
# Story neighbours are fetched unfiltered, this many times over, and kept if in the window;
# the time-filtered query runs only when the farthest fetched is still this similar.
STORY_OVERFETCH = 4
STORY_FAR = 0.3


class StoreError(RuntimeError):
    """The store cannot be used as configured. ``code`` is stable, for callers to report
    and match on (the Newsdesk API answers with it); subclasses without their own say
    only that the store is unavailable."""

    code: ClassVar[str] = "store_unavailable"


class StoreUnavailable(StoreError):
    """The Chroma server cannot be reached."""


class EmbeddingModelMismatch(StoreError):
    """The collection was built with another embedding model; its vectors would be garbage."""

    code: ClassVar[str] = "embedding_model_mismatch"


class StoreLocked(StoreError):
    """Another process has the embedded store open."""


class StoreFull(StoreError):
    """The disk under the store is (nearly) full; the write was refused, nothing was lost."""

    code: ClassVar[str] = "insufficient_storage"


class StoreWriteTooSlow(StoreError):
    """A write took longer than the repair lease; switching to its chunks is not safe."""

    code: ClassVar[str] = "store_busy"


@dataclass(frozen=True)
class StoredArticle:
    id: str
    text: str
    title: str
    content_hash: str
    source: str | None
    url: str | None
    author: str | None
    published_at: str | None
    origin: str | None
    chunks: int
    # The version token the article's chunks carry; None for records written before
    # tokens existed, whose chunks carry the content hash prefix.
    write_version: str | None = None
    # 1 for the first text stored under this id, +1 for each changed text since.
    revision: int = 1
    # When the current revision replaced an earlier one (ISO 8601), else None.
    updated_at: str | None = None
    # The id of the first stored copy of the same story text (syndication), else None.
    syndication_group: str | None = None

    @property
    def version(self) -> str:
        return self.write_version or self.content_hash[:VERSION_CHARS]

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "source": self.source,
            "url": self.url,
            "author": self.author,
            "published_at": self.published_at,
            "content_hash": self.content_hash,
            "chunks": self.chunks,
            "chars": len(self.text),
            "revision": self.revision,
            "updated_at": self.updated_at,
            "syndication_group": self.syndication_group,
        }


@dataclass(frozen=True)
class StoredChunk:
    id: str
    article_id: str
    version: str
    index: int
    start: int
    end: int
    text: str
    title: str
    source: str | None
    published_at: str | None


@dataclass(frozen=True)
class ArticleFilter:
    """Filters shared by dense and keyword search."""

    article_ids: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    published_after: str | None = None
    published_before: str | None = None

    def is_empty(self) -> bool:
        return not (
            self.article_ids or self.sources or self.published_after or self.published_before
        )

    def chroma_where(self) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.article_ids:
            clauses.append({"article_id": {"$in": list(self.article_ids)}})
        if self.sources:
            clauses.append({"source": {"$in": list(self.sources)}})
        if self.published_after:
            clauses.append({"published_ts": {"$gte": published_timestamp(self.published_after)}})
        if self.published_before:
            clauses.append({"published_ts": {"$lte": published_timestamp(self.published_before)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def matches(self, meta: dict[str, Any]) -> bool:
        if self.article_ids and meta.get("article_id") not in self.article_ids:
            return False
        if self.sources and meta.get("source") not in self.sources:
            return False
        ts = meta.get("published_ts")
        if self.published_after and (ts is None or ts < published_timestamp(self.published_after)):
            return False
        return not (
            self.published_before
            and (ts is None or ts > published_timestamp(self.published_before))
        )


def _unavailable(exc: Exception) -> bool:
    """Whether an exception from the Chroma client means the server can't be reached."""
    import httpx

    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("could not connect", "connection refused", "connect error"))


@contextlib.contextmanager
def _unavailable_as_store_error() -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if _unavailable(exc):
            raise StoreUnavailable(f"the Chroma store is unreachable: {exc}") from exc
        if _disk_full(exc):
            raise StoreFull(f"the store's disk is full: {exc}") from exc
        raise


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def gen_wrapper(self: ChromaStore, *args: Any, **kwargs: Any) -> Any:
            with _unavailable_as_store_error():
                yield from method(self, *args, **kwargs)

        return gen_wrapper

    @functools.wraps(method)
    def wrapper(self: ChromaStore, *args: Any, **kwargs: Any) -> Any:
        with _unavailable_as_store_error():
            return method(self, *args, **kwargs)

    return wrapper


def _guard_public_methods(cls: type) -> type:
    """Turn connection failures of every store call into StoreUnavailable, which the API
    answers with 503 and which ends when the server is back."""
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, _guarded(member))
    return cls


def _outlet_key(name: str) -> str:
    # Outlet names match whatever their case and spacing, as --source does.
    return " ".join(name.split()).casefold()


# How many articles one metadata-filtered chunk read asks for.
CHUNK_FILTER_BATCH = 100


def chunk_id(article_id: str, version: str, index: int) -> str:
    return f"{article_id}#{version}#{index}"


def new_version() -> str:
    """A version token no other write will ever use (see the module docstring)."""
    return uuid.uuid4().hex[:VERSION_CHARS]


def record_version(meta: dict[str, Any]) -> str:
    """The version an article record points its readers at."""
    return meta.get("version") or meta["content_hash"][:VERSION_CHARS]


def _disk_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("no space left", "disk is full", "disk full", "quota exceeded"))


# One lock per embedded data dir per process: several stores in one process share
# Chroma's client (and its lock), another process is refused. Kept for the process's
# life; the kernel drops it when the process dies, SIGKILL included.
_held_locks: dict[str, tuple[int, int]] = {}


CLOSED = b"closed"


def _lock_embedded_dir(directory: Path) -> bool:
    """Take the one-process lock; True when the previous owner died without closing (its
    pid is still in the lock file), which is when Chroma may have lost vectors."""
    key = str(directory.resolve())
    held = _held_locks.get(key)
    if held and held[0] == os.getpid():
        return False
    path = directory / "newsdesk.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise StoreLocked(
            f"the embedded store in {directory} is in use by another process ({holder}). "
            "Send articles through the running server (newsdesk ingest --api URL, or "
            "POST /v1/articles), or run a Chroma server (NEWSDESK_CHROMA_HOST) that every "
            "process shares."
        ) from None
    previous = os.pread(fd, 512, 0).strip()
    os.ftruncate(fd, 0)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv else "python"
    os.pwrite(fd, f"pid {os.getpid()}, {command}".encode(), 0)
    _held_locks[key] = (os.getpid(), fd)
    # Runs on a normal exit and after uvicorn's SIGTERM shutdown; not after SIGKILL, which
    # is exactly the case the next owner must check for.
    atexit.register(_release_embedded_dir, key, unlock=False)
    return bool(previous) and previous != CLOSED


def _release_embedded_dir(key: str, *, unlock: bool) -> None:
    """Record a clean shutdown in the lock file; with ``unlock``, also let another process
    take the store. Looked up by directory, never by a file descriptor that may have been
    closed and reused since."""
    held = _held_locks.get(key)
    if not held or held[0] != os.getpid():
        return
    with contextlib.suppress(OSError):
        os.ftruncate(held[1], 0)
        os.pwrite(held[1], CLOSED, 0)
    if unlock:
        del _held_locks[key]
        os.close(held[1])  # closing the descriptor drops the flock


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    # Chroma metadata values can't be None; an absent key means "unknown".
    return {k: v for k, v in meta.items() if v is not None}


def _stored_article(article_id: str, text: str, meta: dict[str, Any]) -> StoredArticle:
    return StoredArticle(
        id=article_id,
        text=text,
        title=meta.get("title") or article_id,
        content_hash=meta["content_hash"],
        source=meta.get("source"),
        url=meta.get("url"),
        author=meta.get("author"),
        published_at=meta.get("published_at"),
        origin=meta.get("origin"),
        chunks=int(meta.get("chunks", 0)),
        write_version=meta.get("version"),
        revision=int(meta.get("revision", 1)),
        updated_at=meta.get("updated_at"),
        syndication_group=meta.get("syndication_group"),
    )


@dataclass(frozen=True)
class Revision:
    """One stored text of an article."""

    article_id: str
    revision: int
    content_hash: str
    written_at: float
    chars: int


def revision_id(article_id: str, content_hash: str) -> str:
    # Keyed by text, so rewriting the same text (a heal after a crash) is idempotent.
    return f"{article_id}@{content_hash[:VERSION_CHARS]}"


def _stored_chunk(cid: str, text: str, meta: dict[str, Any]) -> StoredChunk:
    return StoredChunk(
        id=cid,
        article_id=meta["article_id"],
        version=meta["version"],
        index=int(meta["index"]),
        start=int(meta["start"]),
        end=int(meta["end"]),
        text=text,
        title=meta.get("title", ""),
        source=meta.get("source"),
        published_at=meta.get("published_at"),
    )


def _story_record(
    members: Sequence[tuple[str, dict[str, Any]]], created_at: float
) -> tuple[str, dict[str, Any]]:
    """A story's title and record fields, from its members' article records."""
    first_id, first = min(members, key=lambda m: (m[1].get("story_ts", 0.0), m[0]))
    last = max(float(m.get("story_ts", 0.0)) for _, m in members)
    outlets = sorted({m["source"] for _, m in members if m.get("source")})
    return first.get("title") or first_id, {
        "kind": "story",
        "created_at": created_at,
        "first_ts": float(first.get("story_ts", 0.0)),
        "last_ts": last,
        "articles": len(members),
        # Distinct texts: copies of one syndicated text count once (stories.story_scores).
        "texts": len({m.get("syndication_group") or aid for aid, m in members}),
        "outlets": json.dumps(outlets),
        "n_outlets": len(outlets),
    }


def _story_texts(record: dict[str, Any] | None) -> int:
    """How many distinct texts a story record counts (records written before texts were
    counted have only the articles)."""
    record = record or {}
    return int(record.get("texts") or record.get("articles") or 1)


@_guard_public_methods
class ChromaStore:
    def __init__(self, config: StoreConfig, embedding_model: str, dimension: int) -> None:
        self.config = config
        self.embedding_model = embedding_model
        self.dimension = dimension
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        unclean = False
        try:
            if config.chroma_host:
                self.client = chromadb.HttpClient(
                    host=config.chroma_host, port=config.chroma_port, settings=chroma_settings
                )
            else:
                config.chroma_dir.mkdir(parents=True, exist_ok=True)
                unclean = _lock_embedded_dir(config.chroma_dir)
                self.client = chromadb.PersistentClient(
                    path=str(config.chroma_dir), settings=chroma_settings
                )
        except StoreError:
            raise
        except Exception as exc:  # chromadb raises bare ValueError/ConnectionError variants
            where = f"{config.chroma_host}:{config.chroma_port}"
            raise StoreUnavailable(f"cannot reach the Chroma server at {where}: {exc}") from exc
        meta = {
            "embedding_model": embedding_model,
            "dimension": dimension,
            "hnsw:space": "cosine",
        }
        self.articles = self._collection(f"{config.collection_prefix}-articles", meta)
        self.chunks = self._collection(f"{config.collection_prefix}-chunks", meta)
        self.state = self.client.get_or_create_collection(
            f"{config.collection_prefix}-state", embedding_function=None
        )
        # Every text an article has had, for citations that name an earlier revision.
        self.revisions_store = self.client.get_or_create_collection(
            f"{config.collection_prefix}-revisions", embedding_function=None
        )
        self.max_batch = max(1, min(self.client.get_max_batch_size(), 2000))
        self._last_repair: float | None = None
        if not config.chroma_host:
            # Every open, not only after a crash: bench/chaos.py also found vectors missing
            # after a clean shutdown that followed SIGKILLed sessions (0-10 of 375 a run).
            restored = self.restore_missing_vectors()
            if restored:
                why = "the last owner died" if unclean else "the last session"
                log.warning("restored %d chunk vectors lost since %s", restored, why)

    def _collection(self, name: str, meta: dict[str, Any]) -> Any:
        # No embedding function: vectors always come from our own embedder, and Chroma's
        # default one would try to download a model.
        collection = self.client.get_or_create_collection(
            name, embedding_function=None, metadata=meta
        )
        built_with = (collection.metadata or {}).get("embedding_model")
        if built_with and built_with != self.embedding_model:
            raise EmbeddingModelMismatch(
                f"collection '{name}' was built with embedding model '{built_with}', but "
                f"'{self.embedding_model}' is configured. Use the same model, point "
                "NEWSDESK_DATA_DIR/NEWSDESK_COLLECTION_PREFIX elsewhere, or re-ingest "
                "into an empty store."
            )
        return collection

    def close(self) -> None:
        """Record a clean shutdown of the embedded store, so its next owner skips the
        lost-vector check, and let another process take it. Needed besides atexit: uvicorn
        re-raises SIGTERM after its graceful shutdown, and a process ended by a signal
        runs no atexit handlers. Don't use this store object afterwards."""
        if self.config.chroma_host:
            return
        _release_embedded_dir(str(self.config.chroma_dir.resolve()), unlock=True)

    def heartbeat(self) -> bool:
        try:
            self.client.heartbeat()
            return True
        except Exception:
            return False

    # ---- articles -------------------------------------------------------------------

    def article_meta(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(ids))  # Chroma rejects a get with a repeated id
        for i in range(0, len(ids), self.max_batch):
            batch = list(ids[i : i + self.max_batch])
            got = self.articles.get(ids=batch, include=["metadatas"])
            for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
                found[aid] = meta or {}
        return found

    def get_article(self, article_id: str) -> StoredArticle | None:
        got = self.articles.get(ids=[article_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        return _stored_article(article_id, got["documents"][0], got["metadatas"][0])

    def get_articles(self, ids: Sequence[str]) -> dict[str, StoredArticle]:
        found: dict[str, StoredArticle] = {}
        ids = list(dict.fromkeys(ids))  # Chroma rejects a get with a repeated id
        for i in range(0, len(ids), self.max_batch):
            batch = list(ids[i : i + self.max_batch])
            got = self.articles.get(ids=batch, include=["documents", "metadatas"])
            for aid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                found[aid] = _stored_article(aid, doc, meta)
        return found

    def iter_article_meta(self, page: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
        offset = 0
        while True:
            got = self.articles.get(include=["metadatas"], limit=page, offset=offset)
            if not got["ids"]:
                return
            yield from zip(got["ids"], got["metadatas"], strict=True)
            offset += len(got["ids"])

    def article_versions(self) -> dict[str, str]:
        """Every article id with the version its chunks must carry."""
        return {aid: record_version(meta) for aid, meta in self.iter_article_meta()}

    def chunk_ids(self, article_ids: Sequence[str]) -> list[str]:
        """The ids of every chunk of these articles, any version; no metadata is read."""
        found: list[str] = []
        ids = list(dict.fromkeys(article_ids))
        for i in range(0, len(ids), self.max_batch):
            got = self.chunks.get(
                where={"article_id": {"$in": ids[i : i + self.max_batch]}}, include=[]
            )
            found += got["ids"]
        return found

    def chunk_counts(self, article_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        """How many chunks each (article, version) has."""
        counts: dict[tuple[str, str], int] = {}
        for cid in self.chunk_ids(article_ids):
            aid, version, _ = cid.rsplit("#", 2)
            counts[(aid, version)] = counts.get((aid, version), 0) + 1
        return counts

    def count_articles(self) -> int:
        return self.articles.count()

    def count_chunks(self) -> int:
        return self.chunks.count()

    # ---- writes ---------------------------------------------------------------------

    def write_articles(self, items: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]]) -> None:
        """Write new versions of articles: chunks first, then switch the records, then clean.

        Safe with any number of concurrent writers: see the module docstring."""
        if not items:
            return
        self.ensure_disk_space(self._estimate_bytes(items))
        started = time.time()
        previous = {
            aid: meta
            for aid, meta in self.article_meta([a.id for a, _, _ in items]).items()
            if meta.get("content_hash")
        }
        replaced = {aid: record_version(meta) for aid, meta in previous.items()}
        revisions = self._write_revisions([a for a, _, _ in items], previous, started)
        versions = {a.id: new_version() for a, _, _ in items}
        ids, docs, metas, vecs = [], [], [], []
        for article, chunks, vectors in items:
            version = versions[article.id]
            ts = published_timestamp(article.published_at)
            for chunk, vector in zip(chunks, vectors, strict=True):
                ids.append(chunk_id(article.id, version, chunk.index))
                docs.append(chunk.text)
                vecs.append(vector)
                metas.append(
                    _clean_meta(
                        {
                            "article_id": article.id,
                            "version": version,
                            "index": chunk.index,
                            "start": chunk.start,
                            "end": chunk.end,
                            "title": article.title,
                            "source": article.source,
                            "published_at": article.published_at,
                            "published_ts": ts,
                            "written_at": started,
                        }
                    )
                )
        self._upsert(self.chunks, ids, docs, metas, vecs)
        self._make_findable(ids, docs, metas, vecs)
        lease = self.config.repair_lease_seconds
        if lease > 0 and time.time() - started > lease / 2:
            # Repair may already count these chunks as a dead writer's leftovers.
            raise StoreWriteTooSlow(
                "writing the chunks took longer than half the repair lease "
                f"({self.config.repair_lease_seconds:.0f} s); nothing was switched, retry"
            )

        # Written with the record rather than by an update afterwards: one Chroma write
        # less per article, and a neighbour placed meanwhile already sees its time.
        story_fields = {
            a.id: self._story_fields(a, previous.get(a.id, {}), started) for a, _, _ in items
        }
        art_vecs = []
        for _, _, vectors in items:
            mean = vectors.mean(axis=0) if len(vectors) else np.zeros(self.dimension)
            norm = float(np.linalg.norm(mean)) or 1.0
            art_vecs.append(mean / norm)
        self._upsert(
            self.articles,
            [a.id for a, _, _ in items],
            [a.text for a, _, _ in items],
            [
                _clean_meta(
                    {
                        **a.metadata(),
                        "published_ts": published_timestamp(a.published_at),
                        "chunks": len(c),
                        "version": versions[a.id],
                        **revisions[a.id],
                        **self._syndication_fields(a, {x.id for x, _, _ in items}),
                        **story_fields[a.id],
                    }
                )
                for a, c, _ in items
            ],
            art_vecs,
        )
        self._assign_stories(items, art_vecs, previous, story_fields)
        # Only the versions these records replaced: never a version another writer may
        # be about to switch to.
        stale = [
            cid
            for cid in self.chunk_ids(list(replaced))
            if replaced.get(cid.rsplit("#", 2)[0]) == cid.rsplit("#", 2)[1]
        ]
        for i in range(0, len(stale), self.max_batch):
            self.chunks.delete(ids=stale[i : i + self.max_batch])
        self.bump_generation()
        # Last: readers apply the log by re-reading current records, so it must follow them.
        self.changelog.append([a.id for a, _, _ in items])

    def _write_revisions(
        self, articles: Sequence[Article], previous: dict[str, dict[str, Any]], now: float
    ) -> dict[str, dict[str, Any]]:
        """Store each text as a revision before any record points at it; returns the
        record fields (revision, updated_at) per article.

        Two writers racing with different texts for one id may give both the same number;
        both texts are kept, listed by the time they were written."""
        fields: dict[str, dict[str, Any]] = {}
        ids, docs, metas = [], [], []
        legacy = [aid for aid, meta in previous.items() if "revision" not in meta]
        # A record from before revisions existed: keep its text as revision 1.
        for aid, old in self.get_articles(legacy).items():
            ids.append(revision_id(aid, old.content_hash))
            docs.append(old.text)
            metas.append(
                {
                    "article_id": aid,
                    "revision": 1,
                    "content_hash": old.content_hash,
                    "written_at": 0.0,
                }
            )
        for article in articles:
            prev = previous.get(article.id)
            # The outlet's own modified time when it gives one, else when we saw the change.
            if prev is None:
                number, updated = 1, article.updated_at
            elif prev["content_hash"] == article.content_hash:
                number = int(prev.get("revision", 1))
                updated = article.updated_at or prev.get("updated_at")
            else:
                number = int(prev.get("revision", 1)) + 1
                updated = article.updated_at or datetime.fromtimestamp(now, UTC).isoformat(
                    timespec="seconds"
                )
            fields[article.id] = {"revision": number, "updated_at": updated}
            ids.append(revision_id(article.id, article.content_hash))
            docs.append(article.text)
            metas.append(
                {
                    "article_id": article.id,
                    "revision": number,
                    "content_hash": article.content_hash,
                    "written_at": now,
                }
            )
        for i in range(0, len(ids), self.max_batch):
            self.revisions_store.upsert(
                ids=ids[i : i + self.max_batch],
                documents=docs[i : i + self.max_batch],
                metadatas=metas[i : i + self.max_batch],
                embeddings=[[0.0]] * len(ids[i : i + self.max_batch]),
            )
        return fields

    def _syndication_fields(self, article: Article, writing: set[str]) -> dict[str, Any]:
        """Signature fields for the record, and the group of the stored copy it matches."""
        sig = syndication.signature(article.text)
        if sig is None:
            return {}
        got = self.articles.get(where=syndication.candidate_filter(sig), include=["metadatas"])
        candidates = [
            (aid, meta.get("minhash"), meta.get("syndication_group"))
            for aid, meta in zip(got["ids"], got["metadatas"], strict=True)
            if aid != article.id and aid not in writing and meta
        ]
        match = syndication.best_match(sig, candidates, self.config.syndication_min_jaccard)
        fields: dict[str, Any] = {"minhash": sig.encode(), **sig.bands()}
        if match:
            fields["syndication_group"] = match[0]
        return fields

    def ids_by_identity(self, identities: Sequence[str]) -> dict[str, str]:
        """The stored article id of each identity (a file) that has one."""
        keys = list(dict.fromkeys(identities))
        found: dict[str, str] = {}
        for i in range(0, len(keys), self.max_batch):
            got = self.articles.get(
                where={"identity": {"$in": keys[i : i + self.max_batch]}}, include=["metadatas"]
            )
            for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
                found[meta["identity"]] = aid
        return found

    def revisions(self, article_id: str) -> list[Revision]:
        """Every stored text of an article, oldest first."""
        got = self.revisions_store.get(
            where={"article_id": article_id}, include=["metadatas", "documents"]
        )
        out = [
            Revision(
                article_id=article_id,
                revision=int(meta["revision"]),
                content_hash=meta["content_hash"],
                written_at=float(meta.get("written_at", 0.0)),
                chars=len(doc or ""),
            )
            for meta, doc in zip(got["metadatas"], got["documents"], strict=True)
        ]
        return sorted(out, key=lambda r: (r.revision, r.written_at))

    def get_revision(self, article_id: str, revision: int) -> StoredArticle | None:
        """The article as it read at ``revision`` (the current record's fields, that text)."""
        current = self.get_article(article_id)
        if current is None:
            return None
        if revision == current.revision:
            return current
        got = self.revisions_store.get(
            where={"$and": [{"article_id": article_id}, {"revision": revision}]},
            include=["metadatas", "documents"],
        )
        if not got["ids"]:
            return None
        # The latest written text of that number (see _write_revisions on races).
        _, doc, meta = max(
            zip(got["ids"], got["documents"], got["metadatas"], strict=True),
            key=lambda g: float(g[2].get("written_at", 0.0)),
        )
        return replace(current, text=doc, content_hash=meta["content_hash"], revision=revision)

    def syndicated_copies(self, group_ids: Sequence[str]) -> dict[str, list[str]]:
        """The ids of every stored copy in each group (the group's first copy included)."""
        ids = list(dict.fromkeys(group_ids))
        out: dict[str, list[str]] = {g: [g] for g in ids}
        if not ids:
            return out
        got = self.articles.get(where={"syndication_group": {"$in": ids}}, include=["metadatas"])
        for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
            out.setdefault(meta["syndication_group"], []).append(aid)
        return out

    def _upsert(
        self, collection: Any, ids: list[str], docs: list[str], metas: list[dict], vecs: list
    ) -> None:
        for i in range(0, len(ids), self.max_batch):
            collection.upsert(
                ids=ids[i : i + self.max_batch],
                documents=docs[i : i + self.max_batch],
                metadatas=metas[i : i + self.max_batch],
                embeddings=[np.asarray(v, dtype=np.float32) for v in vecs[i : i + self.max_batch]],
            )

    def delete_article(self, article_id: str) -> bool:
        """Remove the record first so readers stop seeing the article, then its chunks.

        Only the version the record pointed at: a concurrent write of the same id keeps
        its chunks, and wins if it switches after this delete."""
        self.ensure_disk_space(0)
        meta = self.article_meta([article_id]).get(article_id)
        if meta is None:
            return False
        version = record_version(meta)
        self.articles.delete(ids=[article_id])
        self.chunks.delete(where={"$and": [{"article_id": article_id}, {"version": version}]})
        self.revisions_store.delete(where={"article_id": article_id})
        self._story_article_removed(meta)
        self.bump_generation()
        self.changelog.append([article_id], deleted=True)
        return True

    def repair(self, *, force: bool = False) -> int:
        """Delete chunks that no article record refers to and that are older than the
        repair lease (left by a crash, not in flight). Returns how many.

        It reads every chunk's metadata, so unless forced it runs on a store's first call
        and then at most every ``repair_interval_seconds``."""
        now = time.monotonic()
        if (
            not force
            and self._last_repair is not None
            and now - self._last_repair < self.config.repair_interval_seconds
        ):
            return 0
        self._last_repair = now
        self.ensure_disk_space(0)
        # Taken before reading the records: a writer switches within half a lease of
        # writing its chunks, so any chunk older than this was switched to (or abandoned)
        # before the records below were read.
        cutoff = time.time() - self.config.repair_lease_seconds
        versions = self.article_versions()
        orphans: list[str] = []
        for cid, meta in self.iter_chunk_meta():
            if versions.get(meta.get("article_id")) == meta.get("version"):
                continue
            if float(meta.get("written_at", 0.0)) <= cutoff:
                orphans.append(cid)
        for i in range(0, len(orphans), self.max_batch):
            self.chunks.delete(ids=orphans[i : i + self.max_batch])
        # Always: a run killed after switching article records but before its own bump
        # leaves no orphan to betray it, and readers would keep their stale keyword index.
        self.bump_generation()
        return len(orphans)

    # ---- stories ----------------------------------------------------------------------
    # How articles are grouped is in vectorstore/stories.py; this is where its state lives.
    # Every story record is recomputed from the article records that name it, never
    # incremented, so concurrent writers converge on what the members say.

    def _story_collection(self) -> Any:
        collection = getattr(self, "_stories", None)
        if collection is None:
            collection = self.client.get_or_create_collection(
                f"{self.config.collection_prefix}-stories", embedding_function=None
            )
            self._stories = collection
        return collection

    def _story_records(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        got = self._story_collection().get(ids=ids, include=["metadatas"])
        return {sid: meta or {} for sid, meta in zip(got["ids"], got["metadatas"], strict=True)}

    def _canonical_stories(self, ids: Sequence[str]) -> dict[str, str]:
        """Each story id with the story it now is (itself, or what it was merged into)."""
        return self._resolve_stories(ids)[0]

    def _resolve_stories(
        self, ids: Sequence[str]
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """The canonical story of each id, and the records read on the way there: a caller
        that needs the canonical stories' records has them without another round trip."""
        out = {sid: sid for sid in ids}
        seen: dict[str, dict[str, Any]] = {}
        pending = set(out.values())
        for _ in range(STORY_ALIAS_HOPS):
            records = self._story_records(sorted(pending))
            seen.update(records)
            moved = {
                sid: meta["alias_of"]
                for sid, meta in records.items()
                if meta.get("kind") == "alias" and meta.get("alias_of")
            }
            if not moved:
                break
            out = {k: moved.get(v, v) for k, v in out.items()}
            pending = set(moved.values())
        return out, seen

    def _story_aliases(self, story_ids: Sequence[str]) -> dict[str, list[str]]:
        """The ids merged (directly or through another alias) into each story."""
        out: dict[str, list[str]] = {sid: [] for sid in story_ids}
        frontier = {sid: sid for sid in story_ids}
        for _ in range(STORY_ALIAS_HOPS):
            if not frontier:
                break
            got = self._story_collection().get(
                where={"alias_of": {"$in": list(frontier)}}, include=["metadatas"]
            )
            nxt: dict[str, str] = {}
            for aid, meta in zip(got["ids"], got["metadatas"], strict=True):
                root = frontier[meta["alias_of"]]
                if aid not in out[root]:
                    out[root].append(aid)
                    nxt[aid] = root
            frontier = nxt
        return out

    def _story_members(self, ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        ids = list(dict.fromkeys(ids))
        got = self.articles.get(
            where={"story_id": {"$in": ids}} if len(ids) > 1 else {"story_id": ids[0]},
            include=["metadatas"],
        )
        return list(zip(got["ids"], got["metadatas"], strict=True))

    def _story_neighbours(
        self, vector: np.ndarray, chunks: np.ndarray, ts: float, exclude: str
    ) -> list[stories.Neighbour]:
        """The nearest articles in the window, each scored by its closest chunk to ours."""
        return self._scored_neighbours(self._neighbour_rows(vector, ts, exclude), chunks)

    def _later_neighbours(
        self,
        vector: np.ndarray,
        chunks: np.ndarray,
        ts: float,
        exclude: str,
        known: set[str],
    ) -> list[stories.Neighbour]:
        """The nearest articles in the window that are in a story now but were not among
        the `known` ones: only a story placed since the first look can change anything, so
        the others' chunks and aliases need not be read again."""
        rows = [
            row
            for row in self._neighbour_rows(vector, ts, exclude)
            if row[0] not in known and row[1].get("story_id")
        ]
        return self._scored_neighbours(rows, chunks) if rows else []

    def _neighbour_rows(
        self, vector: np.ndarray, ts: float, exclude: str
    ) -> list[tuple[str, dict[str, Any], float]]:
        """The nearest comparable articles in the window: (id, record, vector distance)."""
        cfg = self.config.stories
        window = cfg.window_hours * 3600.0

        def in_window(meta: dict[str, Any] | None) -> bool:
            return bool(meta) and abs(float(meta.get("story_ts", float("inf"))) - ts) <= window

        # An unfiltered query is ~10x cheaper than Chroma's filtered one (bench/stories.py):
        # the nearest STORY_OVERFETCH x neighbours, of which those in the window are the
        # window's nearest. Only when they are too few and the farthest fetched is still
        # close (a subject that recurs) is the filtered query needed.
        vec = np.asarray(vector, dtype=np.float32)
        got = self.articles.query(
            query_embeddings=[vec],
            n_results=cfg.neighbours * STORY_OVERFETCH + 1,
            include=["metadatas", "distances"],
        )
        found = list(zip(got["ids"][0], got["metadatas"][0], got["distances"][0], strict=True))
        kept = [(aid, meta, dist) for aid, meta, dist in found if in_window(meta)]
        full = len(found) >= cfg.neighbours * STORY_OVERFETCH + 1
        if full and len(kept) <= cfg.neighbours and 1.0 - float(found[-1][2]) >= STORY_FAR:
            got = self.articles.query(
                query_embeddings=[vec],
                n_results=cfg.neighbours + 1,
                where={
                    "$and": [
                        {"story_ts": {"$gte": ts - window}},
                        {"story_ts": {"$lte": ts + window}},
                    ]
                },
                include=["metadatas", "distances"],
            )
            kept = list(zip(got["ids"][0], got["metadatas"][0], got["distances"][0], strict=True))
        return [
            (aid, meta, dist)
            for aid, meta, dist in kept[: cfg.neighbours + 1]
            if aid != exclude and meta and not meta.get("story_solo")
        ][: cfg.neighbours]

    def _scored_neighbours(
        self, rows: Sequence[tuple[str, dict[str, Any], float]], chunks: np.ndarray
    ) -> list[stories.Neighbour]:
        """Each row scored by its closest chunk to ours, its story resolved to the
        canonical one."""
        theirs: dict[str, list[np.ndarray]] = {}
        if rows and len(chunks):
            found = self._current_chunk_rows({aid: meta for aid, meta, _ in rows}, ["embeddings"])
            theirs = {
                aid: [np.asarray(got["embeddings"]) for _, got in chunk_rows]
                for aid, chunk_rows in found.items()
            }
        canonical, records = self._resolve_stories(
            [m["story_id"] for _, m, _ in rows if m.get("story_id")]
        )
        return [
            stories.Neighbour(
                article_id=aid,
                cosine=stories.chunk_cosine(chunks, stories.unit_rows(np.stack(theirs[aid])))
                if aid in theirs
                else 1.0 - float(dist),
                terms=stories.decode_terms(meta.get("story_terms")),
                story_id=canonical.get(meta.get("story_id", "")),
                group=meta.get("syndication_group"),
                story_texts=_story_texts(records.get(canonical.get(meta.get("story_id", ""), ""))),
            )
            for aid, meta, dist in rows
        ]

    def _story_fields(self, article: Article, prev: dict[str, Any], now: float) -> dict[str, Any]:
        """The record fields that place an article in time and subject for stories."""
        ts = published_timestamp(article.published_at)
        # Undated: when it was first stored. A page without a date is almost always
        # fetched while it is news; with no window at all it could join any story of
        # any year that shares its subject.
        story_ts = float(ts if ts is not None else prev.get("story_ts", now))
        terms = stories.key_terms(f"{article.title}\n{article.text}")
        return {
            "story_ts": story_ts,
            "story_terms": stories.encode_terms(terms),
            "story_solo": len(article.text) < self.config.stories.min_chars or None,
        }

    def _assign_stories(
        self,
        items: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]],
        vectors: Sequence[np.ndarray],
        previous: dict[str, dict[str, Any]],
        fields: dict[str, dict[str, Any]],
    ) -> None:
        """Put each just-written article in a story (see vectorstore/stories.py)."""
        cfg = self.config.stories
        # Texts too short to compare start stories of their own: in one batch of writes,
        # since a bulk load of short items would otherwise cost several round trips each.
        fresh_solos = [
            a
            for a, _, _ in items
            if fields[a.id]["story_solo"] and not previous.get(a.id, {}).get("story_id")
        ]
        if fresh_solos:
            self._start_solo_stories(fresh_solos, fields)
        solo_ids = {a.id for a in fresh_solos}
        written = self.article_meta([a.id for a, _, _ in items if a.id not in solo_ids])
        for (article, _, chunk_vectors), vector in zip(items, vectors, strict=True):
            if article.id in solo_ids:
                continue
            prev = previous.get(article.id, {})
            story_ts = fields[article.id]["story_ts"]
            terms = stories.key_terms(f"{article.title}\n{article.text}")
            solo = bool(fields[article.id]["story_solo"])
            group = written.get(article.id, {}).get("syndication_group")
            mine = stories.unit_rows(chunk_vectors) if len(chunk_vectors) else vector[None, :]
            neighbours = [] if solo else self._story_neighbours(vector, mine, story_ts, article.id)
            if solo:
                chosen, merge = None, ()
            else:
                chosen, merge = self._choose_story(article.id, terms, neighbours, group, prev)
            if chosen is None:
                # Its only member is this article, so the record a refresh would compute is
                # known now: written once, before the article names it (no reader meets an
                # article whose story has no record), and no refresh is needed after.
                chosen = stories.new_story_id()
                member = written.get(article.id) or {**article.metadata(), **fields[article.id]}
                title, meta = _story_record([(article.id, member)], time.time())
                self._story_collection().upsert(
                    ids=[chosen], documents=[title], metadatas=[meta], embeddings=[[0.0]]
                )
                self.articles.update(ids=[article.id], metadatas=[{"story_id": chosen}])
            else:
                self.articles.update(ids=[article.id], metadatas=[{"story_id": chosen}])
                self._refresh_story(chosen)
            for other in merge:
                chosen = self._merge_stories(chosen, other)
            # A writer assigning a neighbour at the same moment saw neither this article's
            # story nor we its: whichever of the two checks last sees both and merges. A copy
            # merges nothing (it goes where its first copy is), so it needs no second look.
            before = {n.article_id for n in neighbours if n.story_id}
            later = (
                []
                if solo or group
                else self._later_neighbours(vector, mine, story_ts, article.id, before)
            )
            later_scores = stories.story_scores(terms, later, cfg.term_weight, cfg.links)
            for sid, value in sorted(later_scores.items()):
                if sid != chosen and value >= cfg.join_threshold:
                    chosen = self._merge_stories(chosen, sid)
            if (
                prev.get("story_id")
                and self._canonical_stories([prev["story_id"]])[prev["story_id"]] != chosen
            ):
                self._refresh_story(prev["story_id"])

    def _choose_story(
        self,
        article_id: str,
        terms: frozenset[str],
        neighbours: Sequence[stories.Neighbour],
        group: str | None,
        previous: dict[str, Any],
    ) -> tuple[str | None, tuple[str, ...]]:
        cfg = self.config.stories
        if group and not self.article_meta([group]).get(group, {}).get("story_solo"):
            # A copy adds no evidence of its own: it goes where its text's first copy is.
            owner = self.story_ids_of([group]).get(group)
            if owner:
                return owner, ()
        if previous.get("story_id"):
            # A revision keeps its story while its new text still fits it.
            kept = self._canonical_stories([previous["story_id"]])[previous["story_id"]]
            # Its story's size counts this article, which is not among its neighbours.
            others_only = [
                replace(n, story_texts=n.story_texts - 1) if n.story_id == kept else n
                for n in neighbours
            ]
            scores = stories.story_scores(terms, others_only, cfg.term_weight, cfg.links)
            others = [
                aid
                for aid, _ in self._story_members([kept, *self._story_aliases([kept])[kept]])
                if aid != article_id
            ]
            if not others or scores.get(kept, float("-inf")) >= cfg.join_threshold:
                return kept, ()
        decision = stories.decide(
            terms,
            neighbours,
            join_threshold=cfg.join_threshold,
            merge_threshold=cfg.merge_threshold,
            term_weight=cfg.term_weight,
            links=cfg.links,
        )
        return decision.story_id, decision.merge

    def _merge_stories(self, a: str, b: str) -> str:
        """Merge two stories into the older; returns the id kept. Stories split apart by
        hand stay apart."""
        canonical, records = self._resolve_stories([a, b])
        a, b = canonical[a], canonical[b]
        if a == b:
            return a
        if self._were_split(a, b):
            return a
        keep, gone = stories.older_first(
            [(s, float(records.get(s, {}).get("created_at", 0.0))) for s in (a, b)]
        )
        members = [
            aid for aid, _ in self._story_members([gone, *self._story_aliases([gone])[gone]])
        ]
        for i in range(0, len(members), self.max_batch):
            batch = members[i : i + self.max_batch]
            self.articles.update(ids=batch, metadatas=[{"story_id": keep}] * len(batch))
        self._story_collection().upsert(
            ids=[gone],
            documents=[""],
            metadatas=[{"kind": "alias", "alias_of": keep}],
            embeddings=[[0.0]],
        )
        self._record_story_event("merge", (keep, gone), ())
        self._refresh_story(keep)
        return keep

    def _were_split(self, a: str, b: str) -> bool:
        got = self._story_collection().get(
            where={"$and": [{"kind": "event"}, {"event_kind": "split"}, {"story": a}]},
            include=["metadatas"],
        )
        return any(b in json.loads(m.get("story_ids", "[]")) for m in got["metadatas"])

    def _record_story_event(
        self, kind: str, story_ids: tuple[str, ...], article_ids: tuple[str, ...]
    ) -> None:
        event = uuid.uuid4().hex[:16]
        at = datetime.now(UTC).isoformat(timespec="seconds")
        # One record per story it concerns, so each story finds its events with one query.
        self._story_collection().upsert(
            ids=[f"event-{event}-{i}" for i in range(len(story_ids))],
            documents=[kind] * len(story_ids),
            metadatas=[
                {
                    "kind": "event",
                    "event": event,
                    "event_kind": kind,
                    "story": sid,
                    "at": at,
                    "story_ids": json.dumps(list(story_ids)),
                    "article_ids": json.dumps(list(article_ids)),
                }
                for sid in story_ids
            ],
            embeddings=[[0.0]] * len(story_ids),
        )

    def _refresh_story(self, story_id: str) -> None:
        """Recompute a story's record from its members (the fields list_stories filters on)."""
        canonical, records = self._resolve_stories([story_id])
        story_id = canonical[story_id]
        record = records.get(story_id, {})
        members = self._story_members([story_id, *self._story_aliases([story_id])[story_id]])
        if not members:
            self._story_collection().delete(ids=[story_id])
            return
        title, meta = _story_record(members, float(record.get("created_at", time.time())))
        self._story_collection().upsert(
            ids=[story_id], documents=[title], metadatas=[meta], embeddings=[[0.0]]
        )

    def _start_solo_stories(self, articles: Sequence[Article], fields: dict[str, dict]) -> None:
        """A story of its own for each article, its record written as a refresh would."""
        ids = [stories.new_story_id() for _ in articles]
        created = time.time()
        records = [
            _story_record([(a.id, {**a.metadata(), **fields[a.id]})], created) for a in articles
        ]
        for i in range(0, len(ids), self.max_batch):
            part = slice(i, i + self.max_batch)
            # The story record first: an article never names a story that has no record.
            self._story_collection().upsert(
                ids=ids[part],
                documents=[title for title, _ in records[part]],
                metadatas=[meta for _, meta in records[part]],
                embeddings=[[0.0]] * len(ids[part]),
            )
            self.articles.update(
                ids=[a.id for a in articles[part]],
                metadatas=[{"story_id": sid} for sid in ids[part]],
            )

    def _story_article_removed(self, meta: dict[str, Any]) -> None:
        if meta.get("story_id"):
            self._refresh_story(meta["story_id"])

    def _build_stories(self, story_ids: Sequence[str]) -> list[stories.Story]:
        ids = list(dict.fromkeys(story_ids))
        if not ids:
            return []
        aliases = self._story_aliases(ids)
        owner = {sid: sid for sid in ids} | {a: sid for sid in ids for a in aliases[sid]}
        members: dict[str, list[tuple[str, dict[str, Any]]]] = {sid: [] for sid in ids}
        for aid, meta in self._story_members(list(owner)):
            members[owner[meta["story_id"]]].append((aid, meta))
        got = self._story_collection().get(
            where={"$and": [{"kind": "event"}, {"story": {"$in": list(owner)}}]},
            include=["metadatas"],
        )
        events: dict[str, dict[str, stories.StoryEvent]] = {sid: {} for sid in ids}
        for meta in got["metadatas"]:
            events[owner[meta["story"]]][meta["event"]] = stories.StoryEvent(
                kind=meta["event_kind"],
                at=meta["at"],
                story_ids=tuple(json.loads(meta["story_ids"])),
                article_ids=tuple(json.loads(meta["article_ids"])),
            )
        out = []
        for sid in ids:
            rows = sorted(members[sid], key=lambda m: (m[1].get("story_ts", 0.0), m[0]))
            if not rows:
                continue

            def seen(meta: dict[str, Any]) -> str | None:
                if meta.get("published_at"):
                    return str(meta["published_at"])
                ts = meta.get("story_ts")
                return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()

            out.append(
                stories.Story(
                    id=sid,
                    title=rows[0][1].get("title") or rows[0][0],
                    article_ids=tuple(aid for aid, _ in rows),
                    outlets=tuple(sorted({m["source"] for _, m in rows if m.get("source")})),
                    first_seen=seen(rows[0][1]),
                    last_seen=seen(max(rows, key=lambda m: m[1].get("story_ts", 0.0))[1]),
                    aliases=tuple(aliases[sid]),
                    events=tuple(sorted(events[sid].values(), key=lambda e: e.at)),
                )
            )
        return out

    def story_ids_of(self, article_ids: Sequence[str]) -> dict[str, str]:
        """The story each article is in (aliases resolved); articles without one omitted."""
        raw = {
            aid: meta["story_id"]
            for aid, meta in self.article_meta(article_ids).items()
            if meta.get("story_id")
        }
        canonical = self._canonical_stories(sorted(set(raw.values())))
        return {aid: canonical[sid] for aid, sid in raw.items()}

    def get_story(self, story_id: str) -> stories.Story | None:
        """The story, found by its id or by the id of a story merged into it."""
        canonical = self._canonical_stories([story_id])[story_id]
        found = self._build_stories([canonical])
        return found[0] if found else None

    def list_stories(
        self,
        *,
        since_ts: float | None = None,
        until_ts: float | None = None,
        outlets: Sequence[str] | None = None,
        min_outlets: int = 1,
        ids: Sequence[str] | None = None,
        limit: int = 50,
    ) -> list[stories.Story]:
        """Stories whose time span overlaps [since, until], latest development first."""
        clauses: list[dict[str, Any]] = [{"kind": "story"}]
        if since_ts is not None:
            clauses.append({"last_ts": {"$gte": float(since_ts)}})
        if until_ts is not None:
            clauses.append({"first_ts": {"$lte": float(until_ts)}})
        if min_outlets > 1:
            clauses.append({"n_outlets": {"$gte": int(min_outlets)}})
        wanted: set[str] = set()
        if ids is not None:
            wanted = set(self._canonical_stories(list(ids)).values())
            if not wanted:
                return []
        where = clauses[0] if len(clauses) == 1 else {"$and": clauses}
        got = self._story_collection().get(where=where, include=["metadatas"])
        wanted_outlets = {_outlet_key(o) for o in outlets or ()}
        rows = []
        for sid, meta in zip(got["ids"], got["metadatas"], strict=True):
            if ids is not None and sid not in wanted:
                continue
            names = {_outlet_key(o) for o in json.loads(meta.get("outlets", "[]"))}
            if wanted_outlets and not wanted_outlets & names:
                continue
            rows.append((float(meta.get("last_ts", 0.0)), sid))
        rows.sort(key=lambda r: (-r[0], r[1]))
        built = self._build_stories([sid for _, sid in rows[: max(0, limit)]])
        # The records are derived and may lag a concurrent write by a moment; the members
        # are the truth.
        return [
            s
            for s in built
            if (min_outlets <= 1 or len(s.outlets) >= min_outlets)
            and (not wanted_outlets or wanted_outlets & {_outlet_key(o) for o in s.outlets})
        ]

    def place_unplaced_articles(self, batch: int = 64) -> int:
        """Put every article that has no story into one, oldest first, as a write would
        have: an article stored before stories existed, or whose writer died between its
        record and its placement. Returns how many were placed; running it again (or two
        at once) places only what is still unplaced when its batch is read."""
        unplaced = sorted(
            (float(meta.get("story_ts") or meta.get("published_ts") or 0.0), aid)
            for aid, meta in self.iter_article_meta()
            if not meta.get("story_id")
        )
        placed = 0
        for i in range(0, len(unplaced), batch):
            # One read of the batch's records, as they are now: an article placed (or
            # deleted) since the listing is left alone.
            got = self.articles.get(
                ids=[aid for _, aid in unplaced[i : i + batch]],
                include=["documents", "metadatas", "embeddings"],
            )
            records = {
                aid: (doc, meta or {}, np.asarray(vec, dtype=np.float32))
                for aid, doc, meta, vec in zip(
                    got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
                )
                if not (meta or {}).get("story_id")
            }
            if not records:
                continue
            chunk_rows = self._current_chunk_rows(
                {aid: meta for aid, (_, meta, _) in records.items()}, ["embeddings", "metadatas"]
            )
            items, item_vectors, fields = [], [], {}
            now = time.time()
            for aid, (doc, meta, vector) in records.items():
                stored = _stored_article(aid, doc, meta)
                article = Article(
                    id=aid,
                    text=stored.text,
                    title=stored.title,
                    content_hash=stored.content_hash,
                    source=stored.source,
                    url=stored.url,
                    author=stored.author,
                    published_at=stored.published_at,
                    origin=stored.origin,
                )
                rows = chunk_rows.get(aid, [])
                # An undated article is placed at when its text was stored, as a write
                # places it, not at today's date.
                written = [float(r["metadatas"].get("written_at") or now) for _, r in rows]
                prev = meta if "story_ts" in meta else {"story_ts": min(written, default=now)}
                fields[aid] = self._story_fields(article, prev, now)
                chunk_vectors = (
                    np.stack([np.asarray(r["embeddings"], dtype=np.float32) for _, r in rows])
                    if rows
                    else np.zeros((0, self.dimension), dtype=np.float32)
                )
                items.append((article, (), chunk_vectors))
                item_vectors.append(vector)
            self.articles.update(
                ids=[a.id for a, _, _ in items],
                metadatas=[_clean_meta(fields[a.id]) for a, _, _ in items],
            )
            self._assign_stories(items, item_vectors, {}, fields)
            placed += len(items)
        return placed

    def split_story(self, story_id: str, article_ids: Sequence[str]) -> stories.Story:
        """Move these articles of a story into a new story; a split event is recorded on
        both, and the two are never merged back automatically."""
        canonical = self._canonical_stories([story_id])[story_id]
        current = self._build_stories([canonical])
        if not current:
            raise KeyError(story_id)
        moving = list(dict.fromkeys(article_ids))
        members = set(current[0].article_ids)
        unknown = [a for a in moving if a not in members]
        if unknown:
            raise ValueError(f"not in story {canonical}: {', '.join(unknown)}")
        if not moving or len(moving) == len(members):
            raise ValueError("a split must leave at least one article on each side")
        new = stories.new_story_id()
        self._story_collection().upsert(
            ids=[new],
            documents=[""],
            metadatas=[{"kind": "story", "created_at": time.time()}],
            embeddings=[[0.0]],
        )
        for i in range(0, len(moving), self.max_batch):
            batch = moving[i : i + self.max_batch]
            self.articles.update(ids=batch, metadatas=[{"story_id": new}] * len(batch))
        self._record_story_event("split", (canonical, new), tuple(moving))
        self._refresh_story(canonical)
        self._refresh_story(new)
        return self._build_stories([new])[0]

    # ---- vectors lost in a crash ---------------------------------------------------------

    def restore_missing_vectors(self) -> int:
        """Make every chunk written since the last check findable again (see
        ``_make_findable``); returns how many were not. Run when the embedded store is
        opened, so the previous session's writes are checked, once (its newest
        RESTORE_CHECK_NEWEST chunks, after a bulk load).

        Chroma 1.5's embedded store persists its HNSW index every ``hnsw:sync_threshold``
        (1000) additions; after SIGKILLs, bench/chaos.py found chunks whose records and
        embeddings were stored but which no query returned, for good. Only vectors added
        since the last check can be at risk; older ones were verified then."""
        since = self._verified_until()
        checked_at = time.time()
        where = {"written_at": {"$gte": since - VERIFY_CLOCK_MARGIN}} if since else None
        written: list[tuple[float, str]] = []
        offset = 0
        while True:
            got = self.chunks.get(where=where, include=["metadatas"], limit=5000, offset=offset)
            if not got["ids"]:
                break
            written += [
                (float((m or {}).get("written_at", 0.0)), cid)
                for cid, m in zip(got["ids"], got["metadatas"], strict=True)
            ]
            offset += len(got["ids"])
        # Only vectors added since the index was last persisted (every 1,000 additions) are
        # at risk: after a bulk load the newest are checked, so an open stays seconds long.
        ids = [cid for _, cid in sorted(written, reverse=True)[:RESTORE_CHECK_NEWEST]]
        restored = 0
        for i in range(0, len(ids), RESTORE_CHECK_BATCH):
            got = self.chunks.get(
                ids=ids[i : i + RESTORE_CHECK_BATCH],
                include=["embeddings", "documents", "metadatas"],
            )
            restored += self._make_findable(
                got["ids"], got["documents"], got["metadatas"], got["embeddings"]
            )
        self.state.upsert(
            ids=["vectors_verified_until"], documents=[repr(checked_at)], embeddings=[[0.0]]
        )
        return restored

    def _verified_until(self) -> float:
        got = self.state.get(ids=["vectors_verified_until"], include=["documents"])
        try:
            return float(got["documents"][0]) if got["ids"] else 0.0
        except (TypeError, ValueError):
            return 0.0

    def _unfindable(self, ids: Sequence[str], metas: Sequence[dict], vecs: Sequence) -> list[int]:
        """Positions of chunks that a query with their own vector, among their articles'
        chunks, does not return: not in the HNSW index, or in it but unreachable."""
        lost: list[int] = []
        for i in range(0, len(ids), RESTORE_CHECK_BATCH):
            part = range(i, min(i + RESTORE_CHECK_BATCH, len(ids)))
            articles = sorted({metas[k]["article_id"] for k in part})
            found = self.chunks.query(
                query_embeddings=[np.asarray(vecs[k], dtype=np.float32) for k in part],
                # Identical texts (an article's orphaned older versions) tie at distance 0.
                n_results=10,
                where={"article_id": {"$in": articles}}
                if len(articles) > 1
                else {"article_id": articles[0]},
                include=["distances"],
            )["ids"]
            lost += [k for k, row in zip(part, found, strict=True) if ids[k] not in row]
        return lost

    def _make_findable(
        self, ids: Sequence[str], docs: Sequence[str], metas: Sequence[dict], vecs: Sequence
    ) -> int:
        """Query each chunk with its own vector and upsert again those not returned.
        Returns how many were not returned at first.

        Upserting again is what brings back vectors lost in a SIGKILL (restore, above). In
        a live process it is not always enough: with four writer threads, bench/chaos.py
        saw 1 or 2 of 300 new articles whose stored vector no query returned in the
        writing process, even serialised and re-added, while a fresh process on the same
        store found them. Those are logged; keyword search finds them meanwhile. One query
        per 100 chunks is cheap next to embedding them."""
        if not ids:
            return 0
        lost = self._unfindable(ids, metas, vecs)
        needed = len(lost)
        for _ in range(FINDABLE_ATTEMPTS):
            if not lost:
                break
            self.chunks.upsert(
                ids=[ids[k] for k in lost],
                embeddings=[np.asarray(vecs[k], dtype=np.float32) for k in lost],
                documents=[docs[k] for k in lost],
                metadatas=[metas[k] for k in lost],
            )
            still = self._unfindable(
                [ids[k] for k in lost], [metas[k] for k in lost], [vecs[k] for k in lost]
            )
            lost = [lost[k] for k in still]
        if lost:
            # Stored and found by keyword search; dense search may miss them until a
            # later write re-links the index. Not a reason to lose the write.
            log.warning("%d chunks not findable by dense search after re-linking", len(lost))
        return needed

    # ---- disk space -------------------------------------------------------------------

    def _estimate_bytes(self, items: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]]) -> int:
        """A generous guess of what a write adds on disk: Chroma keeps each document in
        SQLite with a full-text index, its vector in the HNSW segment and the write-ahead
        log, and the article record again."""
        chunk_bytes = sum(len(c.text.encode()) for _, chunks, _ in items for c in chunks)
        n_chunks = sum(len(chunks) for _, chunks, _ in items)
        article_bytes = sum(len(a.text.encode()) for a, _, _ in items)
        return 6 * (chunk_bytes + article_bytes) + (n_chunks + len(items)) * (
            4 * 4 * self.dimension + 2048
        )

    def ensure_disk_space(self, needed: int) -> None:
        """Refuse a write that would leave less than the reserve free (embedded store:
        a Chroma server's disk is its own to watch)."""
        if self.config.chroma_host:
            return
        try:
            free = shutil.disk_usage(self.config.chroma_dir).free
        except OSError:
            return
        reserve = self.config.min_free_disk_mb * 1024 * 1024
        if free < reserve + needed:
            raise StoreFull(
                f"not enough disk space for this write: {free // 1024} KiB free under "
                f"{self.config.chroma_dir}, {(reserve + needed) // 1024} KiB needed "
                f"(NEWSDESK_MIN_FREE_DISK_MB={self.config.min_free_disk_mb} plus the write). "
                "Nothing was stored; free some space and retry."
            )

    # ---- change detection -------------------------------------------------------------

    def generation(self) -> str:
        """A token that changes on every write; lets readers (the keyword index, other
        replicas) notice changes with one tiny read instead of rescanning articles."""
        got = self.state.get(ids=["generation"], include=["documents"])
        return got["documents"][0] if got["ids"] else ""

    def bump_generation(self) -> None:
        self.state.upsert(ids=["generation"], documents=[uuid.uuid4().hex], embeddings=[[0.0]])

    @functools.cached_property
    def changelog(self) -> ChangeLog:
        """Which articles each write touched, for replicas' keyword indexes (changelog.py)."""
        return ChangeLog(self.client, self.config.collection_prefix)

    def article_catalog(self) -> dict[str, tuple[str, str | None]]:
        """Every article id with its current chunk version and its source."""
        return {
            aid: (record_version(meta), meta.get("source"))
            for aid, meta in self.iter_article_meta()
        }

    # ---- chunks ---------------------------------------------------------------------

    def iter_chunk_meta(self, page: int = 2000) -> Iterator[tuple[str, dict[str, Any]]]:
        offset = 0
        while True:
            got = self.chunks.get(include=["metadatas"], limit=page, offset=offset)
            if not got["ids"]:
                return
            yield from zip(got["ids"], got["metadatas"], strict=True)
            offset += len(got["ids"])

    def iter_chunks(self, page: int = 2000) -> Iterator[StoredChunk]:
        offset = 0
        while True:
            got = self.chunks.get(include=["documents", "metadatas"], limit=page, offset=offset)
            if not got["ids"]:
                return
            for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                yield _stored_chunk(cid, doc, meta)
            offset += len(got["ids"])

    def current_chunks(self, records: dict[str, dict[str, Any]]) -> list[StoredChunk]:
        """The chunks of each article's current version, given its article record."""
        rows = self._current_chunk_rows(records, ["documents", "metadatas"])
        return [
            _stored_chunk(cid, got["documents"] or "", got["metadatas"])
            for aid in records
            for cid, got in rows.get(aid, ())
        ]

    def _current_chunk_rows(
        self, records: dict[str, dict[str, Any]], include: list[Any]
    ) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Each article's current chunks in index order: (chunk id, {field: value}) with
        the ``include``d fields.

        A version's chunks are numbered 0..n-1 and its record says n, so they are read by
        id, at a cost that does not grow with the store; a metadata filter scans the
        collection (bench/scale.py: a replica's apply went from 68 ms at 10k chunks to 156
        ms at 1M that way; story assignment ~10 ms a read at 100k). Articles whose record
        has no count, or whose chunks are not all where their ids say, are read through
        the filter."""
        wanted = {aid: record_version(meta) for aid, meta in records.items()}
        counts = {
            aid: meta["chunks"]
            for aid, meta in records.items()
            if isinstance(meta.get("chunks"), int) and not isinstance(meta["chunks"], bool)
        }
        fields = ["metadatas", *(f for f in include if f != "metadatas")]
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}

        def keep(got: dict[str, Any]) -> None:
            for k, cid in enumerate(got["ids"]):
                meta = got["metadatas"][k]
                if meta and wanted.get(meta.get("article_id")) == meta.get("version"):
                    row = {f: got[f][k] for f in fields}
                    found.setdefault(meta["article_id"], []).append((cid, row))

        ids = [chunk_id(aid, wanted[aid], i) for aid, n in counts.items() for i in range(n)]
        for i in range(0, len(ids), self.max_batch):
            keep(self.chunks.get(ids=ids[i : i + self.max_batch], include=fields))
        rest = [aid for aid in wanted if len(found.get(aid, ())) != counts.get(aid, -1)]
        for aid in rest:
            found.pop(aid, None)
        for i in range(0, len(rest), CHUNK_FILTER_BATCH):
            batch = rest[i : i + CHUNK_FILTER_BATCH]
            where = {"article_id": {"$in": batch}} if len(batch) > 1 else {"article_id": batch[0]}
            keep(self.chunks.get(where=where, include=fields))
        for rows in found.values():
            rows.sort(key=lambda row: int(row[1]["metadatas"]["index"]))
        return found

    def query_chunks(
        self, vector: np.ndarray, n: int, where: dict[str, Any] | None
    ) -> list[tuple[StoredChunk, float]]:
        """Nearest chunks with their cosine similarity."""
        # Chroma 1.x returns fewer results when the collection is small or empty, so no
        # count() first: it cost ~4% of a request (bench/service_overhead.py profile).
        got = self.chunks.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        out = []
        for cid, doc, meta, dist in zip(
            got["ids"][0],
            got["documents"][0],
            got["metadatas"][0],
            got["distances"][0],
            strict=True,
        ):
            if meta is None or doc is None:
                # Deleted between Chroma's index lookup and its document fetch.
                continue
            out.append((_stored_chunk(cid, doc, meta), 1.0 - float(dist)))
        return out
