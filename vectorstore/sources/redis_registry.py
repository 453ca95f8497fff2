"""The sources registry in Redis, for ``watch`` processes on several machines.

SQLite's lease (one ``UPDATE ... WHERE lease_until < now``) is only as good as the file
locks under it, and a data dir shared between machines over NFS or SMB rarely has working
ones. Redis gives every machine one view of the sources and the standard lease:
``SET lease:ID OWNER NX PX ms`` succeeds for exactly one caller, and Redis expires it on
its own clock, so a poller that dies frees its sources ``lease_seconds`` later whatever
the machines' clocks say. Renewing and releasing compare the owner inside a Lua script
(atomic on the server), so a poller whose lease ran out and was taken can neither extend
nor release its successor's lease, nor overwrite the state it writes.

Keys, under a prefix (``{collection_prefix}:sources:`` from the settings):

- ``source:ID``: a hash of the ``Source`` fields (absent field = NULL), with
  ``lease_owner`` kept until release, as the SQLite registry does;
- ``lease:ID``: the lease, owner as value, expiring on its own;
- ``due``: a sorted set of source ids scored by ``next_poll_at`` (``claim_due`` and
  ``next_due`` read its head);
- ``added``: source ids scored by ``added_at``, the order ``sources()`` lists them in;
- ``items:ID``: a hash of item URL to its conditional-GET state (ETag, Last-Modified,
  content hash) as JSON, so a poller on another machine still sends If-None-Match.

The scripts touch keys of several sources at once (``due``), so this needs one Redis
(a primary, optionally with replicas or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any, ParamSpec, TypeVar

import redis

from vectorstore.sources.identity import canonical_url
from vectorstore.sources.registry import ItemState, PollRecord, Source, outcome_fields, source_id
from vectorstore.store import StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")

_INTS = {
    "failures",
    "items_seen",
    "items_new",
    "items_updated",
    "items_unchanged",
    "items_failed",
    "polls",
}
_FLOATS = {"every_seconds", "added_at", "last_polled_at", "last_success_at", "last_error_at"}
# Not hash fields: next_poll_at is the source's score in ``due``, lease_until the lease
# key's remaining time.
_DERIVED = {"next_poll_at", "lease_until"}
_ITEM_FIELDS = ("article_id", "etag", "last_modified", "content_hash")

_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] == '1' then
  local due = redis.call('ZSCORE', KEYS[3], ARGV[4])
  if not due or tonumber(due) > tonumber(ARGV[5]) then return 0 end
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'lease_owner', ARGV[1])
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# The outcome is written only by the lease's owner: the live lease's, or, once it has
# expired untaken, the one still named in the record (as the SQLite registry allows).
_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder then
  if holder ~= ARGV[1] then return 0 end
elseif redis.call('HGET', KEYS[1], 'lease_owner') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], 'lease_owner')
local sets = cjson.decode(ARGV[4])
for i = 1, #sets, 2 do redis.call('HSET', KEYS[1], sets[i], sets[i + 1]) end
for _, name in ipairs(cjson.decode(ARGV[5])) do redis.call('HDEL', KEYS[1], name) end
redis.call('HINCRBY', KEYS[1], 'polls', 1)
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[1], 'failures', 1) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local f = cjson.decode(ARGV[3])
for i = 1, #f, 2 do redis.call('HSET', KEYS[1], f[i], f[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# A poll that outlives its source's removal must not bring its items back.
_SAVE_ITEMS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local f = cjson.decode(ARGV[1])
for i = 1, #f, 2 do redis.call('HSET', KEYS[2], f[i], f[i + 1]) end
return 1
"""


class RegistryUnavailable(StoreUnavailable):
    """The Redis server holding the sources cannot be reached."""


def _reachable(method: Callable[P, R]) -> Callable[P, R]:
    """Redis errors as ``RegistryUnavailable``: the API and CLI report a ``StoreError``
    as one readable line (503), where a raw ``ConnectionError`` would be a 500."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise RegistryUnavailable(f"sources registry (Redis) unavailable: {exc}") from exc

    return wrapper


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisRegistry:
    """The same interface and results as ``Registry``, kept in Redis."""

    # What ``Poller.watch`` treats as a passing outage (it waits and tries again).
    errors: tuple[type[Exception], ...] = (StoreUnavailable,)

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        # Timeouts: a Redis that stops answering must fail a call, not hang a poller.
        self.redis: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=5.0,
            socket_timeout=10.0,
            health_check_interval=30,
        )
        self._claim = self.redis.register_script(_CLAIM)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._add = self.redis.register_script(_ADD)
        self._save_items = self.redis.register_script(_SAVE_ITEMS)

    def close(self) -> None:
        self.redis.close()

    def _key(self, kind: str, sid: str = "") -> str:
        return f"{self.prefix}{kind}:{sid}" if sid else f"{self.prefix}{kind}"

    # ---- sources ------------------------------------------------------------------

    @_reachable
    def add(
        self, url: str, name: str | None, every_seconds: float, now: float | None = None
    ) -> Source:
        """A new source, due at once. Raises ``KeyError`` with the existing id when the
        URL (canonically) is already followed."""
        now = time.time() if now is None else now
        url = canonical_url(url)
        sid = source_id(url)
        record: dict[str, Any] = {
            "id": sid,
            "url": url,
            "every_seconds": every_seconds,
            "added_at": now,
            "item_errors": "[]",
        } | dict.fromkeys(_INTS, 0)
        if name is not None:
            record["name"] = name
        flat = [x for k, v in record.items() for x in (k, _text(v))]
        keys = [self._key("source", sid), self._key("due"), self._key("added")]
        if not self._add(keys=keys, args=[sid, _text(now), json.dumps(flat)]):
            raise KeyError(sid)
        source = self.get(sid)
        assert source is not None
        return source

    @_reachable
    def get(self, sid: str) -> Source | None:
        found = self._load([sid])
        return found[0] if found else None

    @_reachable
    def sources(self) -> list[Source]:
        # ZRANGE orders equal scores by member, i.e. ORDER BY added_at, id.
        return self._load(self.redis.zrange(self._key("added"), 0, -1))

    def _load(self, ids: list[str]) -> list[Source]:
        pipe = self.redis.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self._key("source", sid))
            pipe.zscore(self._key("due"), sid)
            pipe.pttl(self._key("lease", sid))
        replies = pipe.execute()
        now = time.time()
        out = []
        for i in range(0, len(replies), 3):
            record, due, ttl_ms = replies[i : i + 3]
            if record:
                out.append(_source(record, due, _lease_until(now, ttl_ms)))
        return out

    @_reachable
    def remove(self, sid: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._key("source", sid))
        pipe.delete(self._key("items", sid), self._key("lease", sid))
        pipe.zrem(self._key("due"), sid)
        pipe.zrem(self._key("added"), sid)
        return pipe.execute()[0] == 1

    # ---- leases -------------------------------------------------------------------

    @_reachable
    def claim(self, sid: str, owner: str, lease_seconds: float, *, due_only: bool = False) -> bool:
        """Take the source's lease if no one holds it; True if this caller now does."""
        keys = [self._key("source", sid), self._key("lease", sid), self._key("due")]
        args = [owner, _ms(lease_seconds), "1" if due_only else "0", sid, _text(time.time())]
        return bool(self._claim(keys=keys, args=args))

    @_reachable
    def claim_due(self, owner: str, lease_seconds: float, limit: int) -> list[Source]:
        """Sources that are due and unleased, each now leased to ``owner``; most overdue
        first."""
        claimed: list[Source] = []
        page, offset = max(4 * limit, 16), 0
        now = time.time()
        while len(claimed) < limit:
            ids = self.redis.zrangebyscore(self._key("due"), "-inf", now, start=offset, num=page)
            if not ids:
                break
            offset += page
            # Sources leased elsewhere stay in ``due`` until released: skip them without a
            # script call each.
            pipe = self.redis.pipeline(transaction=False)
            for sid in ids:
                pipe.exists(self._key("lease", sid))
            leased = pipe.execute()
            for sid, held in zip(ids, leased, strict=True):
                if len(claimed) >= limit:
                    break
                if not held and self.claim(sid, owner, lease_seconds, due_only=True):
                    source = self.get(sid)
                    if source is not None:
                        claimed.append(source)
        return claimed

    @_reachable
    def renew(self, sid: str, owner: str, lease_seconds: float) -> bool:
        """Extend a lease we hold; False if it ran out and another poller took it."""
        return bool(self._renew(keys=[self._key("lease", sid)], args=[owner, _ms(lease_seconds)]))

    @_reachable
    def next_due(self) -> float | None:
        """When the next source can be claimed: the earliest of each source's next poll,
        or its lease's end if later."""
        best: float | None = None
        offset, page = 0, 64
        while True:
            last = offset + page - 1
            entries = self.redis.zrange(self._key("due"), offset, last, withscores=True)
            if not entries:
                return best
            pipe = self.redis.pipeline(transaction=False)
            for sid, _ in entries:
                pipe.pttl(self._key("lease", sid))
            now = time.time()
            for (_, due), ttl_ms in zip(entries, pipe.execute(), strict=True):
                if best is not None and due >= best:
                    return best
                t = max(due, _lease_until(now, ttl_ms))
                best = t if best is None else min(best, t)
            offset += page

    @_reachable
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
        sets = [x for k, v in changes.items() if v is not None for x in (k, _text(v))]
        clears = [k for k, v in changes.items() if v is None]
        keys = [self._key("source", sid), self._key("lease", sid), self._key("due")]
        args = [
            owner,
            sid,
            _text(next_poll_at),
            json.dumps(sets),
            json.dumps(clears),
            "0" if record.ok else "1",
        ]
        self._release(keys=keys, args=args)

    @_reachable
    def schedule_now(self, sid: str) -> None:
        self.redis.zadd(self._key("due"), {sid: time.time()}, xx=True)

    # ---- items --------------------------------------------------------------------

    @_reachable
    def items(self, sid: str) -> dict[str, ItemState]:
        out = {}
        for url, raw in self.redis.hgetall(self._key("items", sid)).items():
            state = json.loads(raw)
            out[url] = ItemState(url=url, **{k: state.get(k) for k in _ITEM_FIELDS})
        return out

    @_reachable
    def save_items(self, sid: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        now = time.time()
        flat = [x for r in rows for x in (r["url"], json.dumps({"fetched_at": now} | r))]
        keys = [self._key("source", sid), self._key("items", sid)]
        self._save_items(keys=keys, args=[json.dumps(flat)])


def _lease_until(now: float, ttl_ms: int) -> float:
    # PTTL answers 0 for a lease with under a millisecond left: it is still held, and
    # reading it as free let a caller claim into a SET NX that then failed.
    return now + max(ttl_ms, 1) / 1000 if ttl_ms >= 0 else 0.0


def _source(record: dict[str, str], due: float | None, lease_until: float) -> Source:
    values: dict[str, Any] = {}
    for f in fields(Source):
        if f.name in _DERIVED:
            continue
        raw = record.get(f.name)
        if f.name in _INTS:
            values[f.name] = int(raw or 0)
        elif f.name in _FLOATS:
            values[f.name] = float(raw) if raw is not None else None
        else:
            values[f.name] = raw
    values["item_errors"] = values["item_errors"] or "[]"
    return Source(**values, next_poll_at=due or 0.0, lease_until=lease_until)
