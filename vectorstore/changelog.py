"""The change log: which articles every write touched, in order, in the shared store.

Each ``write_articles`` and ``delete_article`` ends by appending one entry per article to a
``{prefix}-changes`` Chroma collection, so that every replica's keyword index
(``vectorstore/keyword.py``) applies only what changed since its last position instead of
re-reading the corpus.

Ordering without a sequence server. Chroma has no transactions and no counter, so a
shared monotonic sequence would need a compare-and-set it cannot do, and a per-writer
sequence would need every reader to know every writer that ever existed. Instead an
entry's id is its writer's wall-clock time in microseconds plus a random suffix, so two
writers on two machines appending at once never collide, and entries sort by time.
What time-ordering alone cannot promise is that an entry is *visible* by the time a later
one is: writer A stamps t=100 and its upsert commits at t=140, after writer B's t=120 has
been read. So a reader never asks "what came after my last entry", it asks "what came
after my last entry minus an overlap window" (``overlap_seconds``, 60 s by default) and
skips the entries it already applied in that window. The window must exceed the time
between a writer's stamp and its commit (one small upsert) plus the clock difference
between writers; NTP keeps that far below a minute.

Applying an entry is idempotent by construction: the entry only names the article; the
reader then reads the article's *current* record and chunks from the store. Applying an
entry twice, late, or out of order gives the same index, so the overlap costs nothing but
a re-read of a few ids.

Retention. Whichever keyword index compacts (at most every tenth of the retention) first
writes a ``horizon`` entry saying "entries before T may be gone", then deletes the entries
older than T. A reader reads the entries first and the horizon second, so if a compaction
removed something it needed, it sees a horizon past its position and rebuilds from the
store instead of silently skipping. The log holds at most ``retention_seconds`` of writes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WRITE = "write"
DELETE = "delete"
HORIZON = "horizon"
PAGE = 5000


def now_us() -> int:
    """Wall-clock microseconds: Chroma metadata integers are 64-bit, floats may not be."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Change:
    id: str
    article_id: str
    ts: int
    op: str


class ChangeLog:
    def __init__(self, client: Any, prefix: str) -> None:
        self.collection = client.get_or_create_collection(
            f"{prefix}-changes", embedding_function=None
        )

    def append(self, article_ids: Sequence[str], *, deleted: bool = False) -> None:
        ids = list(dict.fromkeys(article_ids))
        if not ids:
            return
        stamp = now_us()
        op = DELETE if deleted else WRITE
        entry_ids = [f"{stamp:017d}-{uuid.uuid4().hex[:12]}" for _ in ids]
        metas = [{"article_id": aid, "ts": stamp, "op": op} for aid in ids]
        for i in range(0, len(ids), PAGE):
            self.collection.upsert(
                ids=entry_ids[i : i + PAGE],
                metadatas=metas[i : i + PAGE],
                documents=ids[i : i + PAGE],
                # The collection is only read by metadata; Chroma insists on a vector.
                embeddings=[[0.0]] * len(ids[i : i + PAGE]),
            )

    def since(self, ts: int) -> list[Change]:
        """Every write or delete entry stamped at or after ``ts``, oldest first."""
        where = {"$and": [{"ts": {"$gte": int(ts)}}, {"op": {"$ne": HORIZON}}]}
        out: list[Change] = []
        offset = 0
        while True:
            got = self.collection.get(where=where, include=["metadatas"], limit=PAGE, offset=offset)
            if not got["ids"]:
                break
            out += [
                Change(cid, meta["article_id"], int(meta["ts"]), meta["op"])
                for cid, meta in zip(got["ids"], got["metadatas"], strict=True)
            ]
            if len(got["ids"]) < PAGE:
                break
            offset += len(got["ids"])
        out.sort(key=lambda c: (c.ts, c.id))
        return out

    def horizon(self) -> int:
        """The time before which entries may have been compacted away (0: none were)."""
        got = self.collection.get(where={"op": HORIZON}, include=["metadatas"])
        return max((int(m["ts"]) for m in got["metadatas"]), default=0)

    def compact(self, before: int) -> None:
        """Drop the entries stamped before ``before``, announcing it first (see the module
        docstring); older horizon entries go too, the new one is the latest."""
        self.collection.upsert(
            ids=[f"horizon-{before:017d}"],
            metadatas=[{"article_id": "", "ts": int(before), "op": HORIZON}],
            documents=[""],
            embeddings=[[0.0]],
        )
        self.collection.delete(where={"ts": {"$lt": int(before)}})

    def count(self) -> int:
        return int(self.collection.count())
