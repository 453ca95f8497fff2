"""The sources being followed, what each poll of them found, and who is polling them now.

Kept in SQLite in the data dir (``sources.sqlite3``): the standard library has it, it is
one file beside the store, and its writes are atomic across processes, which is what a
lease needs. A poller takes a source with one ``UPDATE ... WHERE lease_until < now``: of
two pollers racing for it exactly one changes the row. The lease is renewed while the
poll runs and released when it ends; a poller that dies simply stops renewing, the lease
runs out, and the next poller takes the source up, skipping the items already stored (their
ETags and content hashes are in ``items``). Several ``watch`` processes on one machine (or
on several sharing the data dir over a filesystem with working locks) share the work this
way with no coordinator. Machines without a shared filesystem share a Redis instead
(``NEWSDESK_REDIS_URL``; vectorstore/sources/redis_registry.py).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from vectorstore.sources.identity import canonical_url

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    name TEXT,
    kind TEXT,
    every_seconds REAL NOT NULL,
    added_at REAL NOT NULL,
    next_poll_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    etag TEXT,
    last_modified TEXT,
    feed_title TEXT,
    last_polled_at REAL,
    last_success_at REAL,
    last_error TEXT,
    last_error_code TEXT,
    last_error_at REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    items_seen INTEGER NOT NULL DEFAULT 0,
    items_new INTEGER NOT NULL DEFAULT 0,
    items_updated INTEGER NOT NULL DEFAULT 0,
    items_unchanged INTEGER NOT NULL DEFAULT 0,
    items_failed INTEGER NOT NULL DEFAULT 0,
    item_errors TEXT NOT NULL DEFAULT '[]',
    polls INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS items (
    source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    article_id TEXT,
    canonical_url TEXT,
    etag TEXT,
    last_modified TEXT,
    content_hash TEXT,
    updated_at TEXT,
    fetched_at REAL NOT NULL,
    PRIMARY KEY (source_id, url)
);
"""


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def source_id(url: str) -> str:
    """A short id from the canonical URL: adding the same source twice finds the first."""
    return hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:12]


@dataclass
class Source:
    id: str
    url: str
    name: str | None
    kind: str | None
    every_seconds: float
    added_at: float
    next_poll_at: float
    lease_owner: str | None
    lease_until: float
    etag: str | None
    last_modified: str | None
    feed_title: str | None
    last_polled_at: float | None
    last_success_at: float | None
    last_error: str | None
    last_error_code: str | None
    last_error_at: float | None
    failures: int
    items_seen: int
    items_new: int
    items_updated: int
    items_unchanged: int
    items_failed: int
    item_errors: str
    polls: int

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """The shape ``sources list --json`` and ``GET /v1/sources`` show."""
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "url": self.url,
            "name": self.name or self.feed_title,
            "kind": self.kind,
            "every_seconds": self.every_seconds,
            "added_at": _iso(self.added_at),
            "next_poll_at": _iso(self.next_poll_at),
            "polling": self.lease_until > now,
            "last_polled_at": _iso(self.last_polled_at),
            "last_success_at": _iso(self.last_success_at),
            "last_error": self.last_error,
            "last_error_code": self.last_error_code,
            "last_error_at": _iso(self.last_error_at),
            "consecutive_failures": self.failures,
            "last_poll": {
                "items_seen": self.items_seen,
                "items_new": self.items_new,
                "items_updated": self.items_updated,
                "items_unchanged": self.items_unchanged,
                "items_failed": self.items_failed,
                "item_errors": json.loads(self.item_errors or "[]"),
            },
            "polls": self.polls,
        }


@dataclass
class ItemState:
    url: str
    article_id: str | None
    etag: str | None
    last_modified: str | None
    content_hash: str | None


@dataclass
class PollRecord:
    """What one poll of a source found; written when its lease is released."""

    ok: bool
    kind: str | None = None
    feed_title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    error_code: str | None = None
    items_seen: int = 0
    items_new: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    items_failed: int = 0
    item_errors: list[dict[str, str]] = field(default_factory=list)
    retry_after: float | None = None
    not_modified: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def outcome_fields(record: PollRecord, now: float) -> dict[str, Any]:
    """The fields a poll's outcome sets on its source (None clears one), shared by both
    registries so they record a poll alike. The lease, ``next_poll_at``, ``polls`` and a
    failure's ``failures + 1`` are each registry's to write."""
    changes: dict[str, Any] = {"last_polled_at": now}
    if record.kind:
        changes["kind"] = record.kind
    if not record.ok:
        changes |= {
            "last_error": record.error,
            "last_error_code": record.error_code,
            "last_error_at": now,
        }
        return changes
    changes |= {
        "last_success_at": now,
        "failures": 0,
        "items_seen": record.items_seen,
        "items_new": record.items_new,
        "items_updated": record.items_updated,
        "items_unchanged": record.items_unchanged,
        "items_failed": record.items_failed,
        "item_errors": json.dumps(record.item_errors[:20]),
    }
    if not record.not_modified:
        changes |= {"etag": record.etag, "last_modified": record.last_modified}
    if record.feed_title:
        changes["feed_title"] = record.feed_title
    if record.items_failed:
        first = record.item_errors[0] if record.item_errors else {}
        changes |= {
            "last_error": f"{record.items_failed} item(s) failed; first: "
            f"{first.get('reason', '?')}",
            "last_error_code": "items_failed",
            "last_error_at": now,
        }
    else:
        # Errors of earlier polls stay readable (last_error_at says when) until a clean
        # poll clears them.
        changes |= {"last_error": None, "last_error_code": None}
    return changes


class SourceRegistry(Protocol):
    """What the poller and the service need of a registry: ``Registry`` (SQLite, one
    machine) and ``RedisRegistry`` (vectorstore/sources/redis_registry.py, several)."""

    # Errors a passing outage raises; ``watch`` waits and tries again on these.
    errors: tuple[type[Exception], ...]

    def close(self) -> None: ...
    def add(
        self, url: str, name: str | None, every_seconds: float, now: float | None = None
    ) -> Source: ...
    def get(self, sid: str) -> Source | None: ...
    def sources(self) -> list[Source]: ...
    def remove(self, sid: str) -> bool: ...
    def claim(
        self, sid: str, owner: str, lease_seconds: float, *, due_only: bool = False
    ) -> bool: ...
    def claim_due(self, owner: str, lease_seconds: float, limit: int) -> list[Source]: ...
    def renew(self, sid: str, owner: str, lease_seconds: float) -> bool: ...
    def next_due(self) -> float | None: ...
    def release(
        self,
        sid: str,
        owner: str,
        record: PollRecord,
        next_poll_at: float,
        now: float | None = None,
    ) -> None: ...
    def schedule_now(self, sid: str) -> None: ...
    def items(self, sid: str) -> dict[str, ItemState]: ...
    def save_items(self, sid: str, rows: list[dict[str, Any]]) -> None: ...


class Registry:
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # WAL: readers (``sources list``) never wait for a poller's write.
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def close(self) -> None:
        """Nothing held open: a connection is made per call."""

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: threads and processes share the file, not a connection.
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        try:
            yield db
        finally:
            db.close()

    # ---- sources ------------------------------------------------------------------

    def add(
        self, url: str, name: str | None, every_seconds: float, now: float | None = None
    ) -> Source:
        """A new source, due at once. Raises ``KeyError`` with the existing id when the
        URL (canonically) is already followed."""
        now = time.time() if now is None else now
        url = canonical_url(url)
        sid = source_id(url)
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO sources (id, url, name, every_seconds, added_at, next_poll_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (sid, url, name, every_seconds, now, now),
                )
            except sqlite3.IntegrityError as exc:
                raise KeyError(sid) from exc
        source = self.get(sid)
        assert source is not None
        return source

    def get(self, sid: str) -> Source | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM sources WHERE id = ?", (sid,)).fetchone()
        return Source(**dict(row)) if row else None

    def sources(self) -> list[Source]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM sources ORDER BY added_at, id").fetchall()
        return [Source(**dict(r)) for r in rows]

    def remove(self, sid: str) -> bool:
        with self._connect() as db:
            db.execute("DELETE FROM items WHERE source_id = ?", (sid,))
            return db.execute("DELETE FROM sources WHERE id = ?", (sid,)).rowcount == 1

    # ---- leases -------------------------------------------------------------------

    def claim(self, sid: str, owner: str, lease_seconds: float, *, due_only: bool = False) -> bool:
        """Take the source's lease if no one holds it; True if this caller now does."""
        now = time.time()
        sql = "UPDATE sources SET lease_owner = ?, lease_until = ? WHERE id = ? AND lease_until < ?"
        args: list[Any] = [owner, now + lease_seconds, sid, now]
        if due_only:
            sql += " AND next_poll_at <= ?"
            args.append(now)
        with self._connect() as db:
            return db.execute(sql, args).rowcount == 1

    def claim_due(self, owner: str, lease_seconds: float, limit: int) -> list[Source]:
        """Sources that are due and unleased, each now leased to ``owner``; most overdue
        first."""
        now = time.time()
        with self._connect() as db:
            ids = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM sources WHERE next_poll_at <= ? AND lease_until < ? "
                    "ORDER BY next_poll_at LIMIT ?",
                    (now, now, limit * 4),
                )
            ]
        claimed = []
        for sid in ids:
            if len(claimed) >= limit:
                break
            if self.claim(sid, owner, lease_seconds, due_only=True):
                source = self.get(sid)
                if source is not None:
                    claimed.append(source)
        return claimed

    def renew(self, sid: str, owner: str, lease_seconds: float) -> bool:
        """Extend a lease we hold; False if it ran out and another poller took it."""
        with self._connect() as db:
            return (
                db.execute(
                    "UPDATE sources SET lease_until = ? WHERE id = ? AND lease_owner = ? "
                    "AND lease_until >= ?",
                    (time.time() + lease_seconds, sid, owner, time.time()),
                ).rowcount
                == 1
            )

    def next_due(self) -> float | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT MIN(MAX(next_poll_at, lease_until)) AS t FROM sources"
            ).fetchone()
        return row["t"] if row and row["t"] is not None else None

    def release(
        self,
        sid: str,
        owner: str,
        record: PollRecord,
        next_poll_at: float,
        now: float | None = None,
    ) -> None:
        """Write the poll's outcome and free the lease (only if we still hold it: a poller
        whose lease was taken over must not overwrite the new holder's state)."""
        now = time.time() if now is None else now
        changes = outcome_fields(record, now)
        sets = ["lease_owner = NULL", "lease_until = 0", "next_poll_at = ?", "polls = polls + 1"]
        sets += [f"{name} = ?" for name in changes]
        if not record.ok:
            sets.append("failures = failures + 1")
        args: list[Any] = [next_poll_at, *changes.values(), sid, owner]
        with self._connect() as db:
            db.execute(
                f"UPDATE sources SET {', '.join(sets)} WHERE id = ? AND lease_owner = ?", args
            )

    def schedule_now(self, sid: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE sources SET next_poll_at = ? WHERE id = ?", (time.time(), sid))

    # ---- items --------------------------------------------------------------------

    def items(self, sid: str) -> dict[str, ItemState]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT url, article_id, etag, last_modified, content_hash FROM items "
                "WHERE source_id = ?",
                (sid,),
            ).fetchall()
        return {r["url"]: ItemState(**dict(r)) for r in rows}

    def save_items(self, sid: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO items (source_id, url, article_id, canonical_url, etag, "
                "last_modified, content_hash, updated_at, fetched_at) VALUES "
                "(:source_id, :url, :article_id, :canonical_url, :etag, :last_modified, "
                ":content_hash, :updated_at, :fetched_at) ON CONFLICT (source_id, url) DO "
                "UPDATE SET article_id = excluded.article_id, canonical_url = "
                "excluded.canonical_url, etag = excluded.etag, last_modified = "
                "excluded.last_modified, content_hash = excluded.content_hash, updated_at = "
                "excluded.updated_at, fetched_at = excluded.fetched_at",
                [{"source_id": sid, "fetched_at": now} | r for r in rows],
            )
            db.execute("COMMIT")
