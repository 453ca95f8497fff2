"""Chroma storage: an ``articles`` collection (canonical texts) and a ``chunks`` collection.

Replacing an article's text is made atomic by versioning instead of transactions, which
Chroma doesn't have: new chunks are written under the new content hash first, then the
article record is switched to that hash in one upsert, then the old chunks are deleted.
Readers only trust chunks whose version matches the article record, so at every moment
an article is seen either wholly old or wholly new. A crash leaves only unreferenced
chunks behind, which ``repair`` removes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from service.settings import Settings
from vectorstore.chunk import Chunk
from vectorstore.ingest import Article, published_timestamp

VERSION_CHARS = 16


class StoreError(RuntimeError):
    """The store cannot be used as configured."""


class StoreUnavailable(StoreError):
    """The Chroma server cannot be reached."""


class EmbeddingModelMismatch(StoreError):
    """The collection was built with another embedding model; its vectors would be garbage."""


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

    @property
    def version(self) -> str:
        return self.content_hash[:VERSION_CHARS]

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


def chunk_id(article_id: str, version: str, index: int) -> str:
    return f"{article_id}#{version}#{index}"


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
    )


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


@_guard_public_methods
class ChromaStore:
    def __init__(self, settings: Settings, embedding_model: str, dimension: int) -> None:
        self.settings = settings
        self.embedding_model = embedding_model
        self.dimension = dimension
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        try:
            if settings.chroma_host:
                self.client = chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
            else:
                settings.chroma_dir.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(
                    path=str(settings.chroma_dir), settings=chroma_settings
                )
        except Exception as exc:  # chromadb raises bare ValueError/ConnectionError variants
            where = f"{settings.chroma_host}:{settings.chroma_port}"
            raise StoreUnavailable(f"cannot reach the Chroma server at {where}: {exc}") from exc
        meta = {
            "embedding_model": embedding_model,
            "dimension": dimension,
            "hnsw:space": "cosine",
        }
        self.articles = self._collection(f"{settings.collection_prefix}-articles", meta)
        self.chunks = self._collection(f"{settings.collection_prefix}-chunks", meta)
        self.state = self.client.get_or_create_collection(
            f"{settings.collection_prefix}-state", embedding_function=None
        )
        self.max_batch = max(1, min(self.client.get_max_batch_size(), 2000))

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
        return {aid: meta["content_hash"][:VERSION_CHARS] for aid, meta in self.iter_article_meta()}

    def count_articles(self) -> int:
        return self.articles.count()

    def count_chunks(self) -> int:
        return self.chunks.count()

    # ---- writes ---------------------------------------------------------------------

    def write_articles(self, items: Sequence[tuple[Article, Sequence[Chunk], np.ndarray]]) -> None:
        """Write new versions of articles: chunks first, then switch the records, then clean."""
        if not items:
            return
        ids, docs, metas, vecs = [], [], [], []
        for article, chunks, vectors in items:
            version = article.content_hash[:VERSION_CHARS]
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
                        }
                    )
                )
        self._upsert(self.chunks, ids, docs, metas, vecs)

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
                    }
                )
                for a, c, _ in items
            ],
            art_vecs,
        )
        # Old versions go in two calls for the whole batch, not one delete per article.
        current = {a.id: a.content_hash[:VERSION_CHARS] for a, _, _ in items}
        stale: list[str] = []
        ids_list = list(current)
        for i in range(0, len(ids_list), self.max_batch):
            got = self.chunks.get(
                where={"article_id": {"$in": ids_list[i : i + self.max_batch]}},
                include=["metadatas"],
            )
            stale += [
                cid
                for cid, meta in zip(got["ids"], got["metadatas"], strict=True)
                if meta.get("version") != current.get(meta.get("article_id"))
            ]
        for i in range(0, len(stale), self.max_batch):
            self.chunks.delete(ids=stale[i : i + self.max_batch])
        self.bump_generation()

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
        """Remove the record first so readers stop seeing the article, then its chunks."""
        existed = bool(self.articles.get(ids=[article_id], include=[])["ids"])
        self.articles.delete(ids=[article_id])
        self.chunks.delete(where={"article_id": article_id})
        self.bump_generation()
        return existed

    def repair(self) -> int:
        """Delete chunks that no article record refers to (left by a crash). Returns count."""
        versions = self.article_versions()
        orphans: list[str] = []
        for cid, meta in self.iter_chunk_meta():
            if versions.get(meta.get("article_id")) != meta.get("version"):
                orphans.append(cid)
        for i in range(0, len(orphans), self.max_batch):
            self.chunks.delete(ids=orphans[i : i + self.max_batch])
        # Always: a run killed after switching article records but before its own bump
        # leaves no orphan to betray it, and readers would keep their stale keyword index.
        self.bump_generation()
        return len(orphans)

    # ---- change detection -------------------------------------------------------------

    def generation(self) -> str:
        """A token that changes on every write; lets readers (the keyword index, other
        replicas) notice changes with one tiny read instead of rescanning articles."""
        got = self.state.get(ids=["generation"], include=["documents"])
        return got["documents"][0] if got["ids"] else ""

    def bump_generation(self) -> None:
        self.state.upsert(ids=["generation"], documents=[uuid.uuid4().hex], embeddings=[[0.0]])

    def article_catalog(self) -> dict[str, tuple[str, str | None]]:
        """Every article id with its current chunk version and its source."""
        return {
            aid: (meta["content_hash"][:VERSION_CHARS], meta.get("source"))
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
            out.append((_stored_chunk(cid, doc, meta), 1.0 - float(dist)))
        return out
