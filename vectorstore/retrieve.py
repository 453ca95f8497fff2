"""Hybrid retrieval: dense (Chroma) and BM25, fused by reciprocal rank, then diversified."""

from __future__ import annotations

import datetime
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vectorstore.config import RetrievalConfig
from vectorstore.embed import Embedder
from vectorstore.keyword import KeywordIndex
from vectorstore.store import ArticleFilter, ChromaStore, StoredChunk
from vectorstore.timing import stage

Mode = Literal["hybrid", "dense", "keyword"]


@dataclass
class Hit:
    chunk: StoredChunk
    score: float
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def article_id(self) -> str:
        return self.chunk.article_id


def reciprocal_rank_fusion(
    rankings: dict[str, list[StoredChunk]], *, k: int, weights: dict[str, float] | None = None
) -> list[Hit]:
    """Fuse ranked lists: each list adds weight/(k + rank) to a chunk's score."""
    scores: dict[str, float] = defaultdict(float)
    chunks: dict[str, StoredChunk] = {}
    ranks: dict[str, dict[str, int]] = defaultdict(dict)
    for name, ranked in rankings.items():
        weight = (weights or {}).get(name, 1.0)
        for rank, chunk in enumerate(ranked, start=1):
            scores[chunk.id] += weight / (k + rank)
            chunks[chunk.id] = chunk
            ranks[chunk.id][name] = rank
    ordered = sorted(scores, key=lambda cid: (-scores[cid], cid))
    return [Hit(chunks[cid], scores[cid], ranks[cid]) for cid in ordered]


def diversify(hits: list[Hit], top_k: int, per_article: int) -> list[Hit]:
    """Keep rank order but let no article take more than per_article of the first top_k.

    Overflow hits are only used when other articles can't fill the list.
    """
    chosen: list[Hit] = []
    overflow: list[Hit] = []
    taken: dict[str, int] = defaultdict(int)
    for hit in hits:
        if len(chosen) >= top_k:
            break
        if taken[hit.article_id] < per_article:
            chosen.append(hit)
            taken[hit.article_id] += 1
        else:
            overflow.append(hit)
    for hit in overflow:
        if len(chosen) >= top_k:
            break
        chosen.append(hit)
    return chosen


def mentioned_sources(query: str, sources: set[str]) -> list[str]:
    """Outlets the question names ("Did TechCrunch report ... before The Verge?")."""
    found = []
    lowered = query.lower()
    for source in sources:
        name = source.lower()
        bare = name[4:] if name.startswith("the ") else name
        if len(bare) < 3:
            continue
        if re.search(rf"(?<!\w){re.escape(bare)}(?!\w)", lowered):
            found.append(source)
    return sorted(found)


def outlet_key(name: str) -> str:
    """How outlet names compare: "reuters", "Reuters" and " REUTERS " are one outlet."""
    return " ".join(name.split()).casefold()


def match_sources(
    requested: Iterable[str], known: Iterable[str]
) -> tuple[tuple[str, ...], list[str]]:
    """The stored outlet names each requested name stands for, compared case-insensitively
    (every stored spelling of it, since articles from several feeds may differ only in case),
    and the requested names no stored article carries."""
    by_key: dict[str, list[str]] = defaultdict(list)
    for name in sorted(known):
        by_key[outlet_key(name)].append(name)
    matched: list[str] = []
    unknown: list[str] = []
    for name in requested:
        stored = by_key.get(outlet_key(name))
        if stored:
            matched.extend(s for s in stored if s not in matched)
        else:
            unknown.append(name)
    return tuple(matched), unknown


class Retriever:
    def __init__(
        self,
        store: ChromaStore,
        embedder: Callable[[], Embedder],
        keyword: KeywordIndex,
        config: RetrievalConfig,
    ) -> None:
        self.store = store
        self._embedder = embedder
        self.keyword = keyword
        self.config = config
        self._vectors: dict[str, np.ndarray] = {}

    def known_sources(self) -> set[str]:
        return self.keyword.sources()

    def _current(self, ranked: list[tuple[StoredChunk, float]]) -> list[StoredChunk]:
        # Chunks of an old or half-written version are invisible (see store.py).
        versions = self.keyword.versions()
        return [c for c, _ in ranked if versions.get(c.article_id) == c.version]

    def query_vector(self, query: str) -> np.ndarray:
        # Repeated questions (evaluation modes, per-source searches, retries) are common
        # and the model call dominates search time.
        vector = self._vectors.get(query)
        if vector is None:
            with stage("embed"):
                vector = self._embedder().embed([query])[0]
            if len(self._vectors) >= 512:
                self._vectors.pop(next(iter(self._vectors)))
            self._vectors[query] = vector
        return vector

    def dense(self, query: str, n: int, filters: ArticleFilter | None) -> list[StoredChunk]:
        vector = self.query_vector(query)
        where = filters.chroma_where() if filters else None
        with stage("dense"):
            ranked = self.store.query_chunks(vector, n, where)
        return self._current(ranked)

    def search(
        self,
        query: str,
        *,
        top_k: int,
        filters: ArticleFilter | None = None,
        mode: Mode = "hybrid",
        use_metadata: bool = True,
        diversity: bool = True,
    ) -> list[Hit]:
        query = query.strip()
        if not query:
            return []
        n = max(self.config.candidates, top_k * 3)
        rankings: dict[str, list[StoredChunk]] = {}
        if mode in ("hybrid", "dense"):
            rankings["dense"] = self.dense(query, n, filters)
        if mode in ("hybrid", "keyword"):
            with stage("keyword"):
                ranked = self.keyword.search(query, n, filters)
            rankings["keyword"] = self._current(ranked)
        if mode == "hybrid" and use_metadata:
            # A question that names outlets needs passages from each of them, which a
            # single global ranking often crowds out.
            for source in mentioned_sources(query, self.known_sources()):
                scoped = ArticleFilter(
                    article_ids=filters.article_ids if filters else None,
                    sources=(source,),
                    published_after=filters.published_after if filters else None,
                    published_before=filters.published_before if filters else None,
                )
                if filters and filters.sources and source not in filters.sources:
                    continue
                rankings[f"source:{source}"] = self.dense(query, top_k, scoped)
        fused = reciprocal_rank_fusion(
            rankings, k=self.config.rrf_k, weights={"dense": self.config.dense_weight}
        )
        if diversity:
            return diversify(fused, top_k, self.config.per_article)
        return fused[:top_k]


# ---- dates a question names (for date-scoped evidence; see service/answer.py) ----------

_MONTH_NUMBERS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}
_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_WRITTEN_DAY = re.compile(
    rf"\b({'|'.join(_MONTH_NUMBERS)})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b",
    re.IGNORECASE,
)


def mentioned_days(query: str) -> list[str]:
    """Calendar days a question names ("on September 26, 2023", "on 2023-11-24") as ISO
    dates, in order of mention; impossible dates are skipped."""
    found: list[tuple[int, str]] = []
    for m in _ISO_DAY.finditer(query):
        found.append((m.start(), f"{m.group(1)}-{m.group(2)}-{m.group(3)}"))
    for m in _WRITTEN_DAY.finditer(query):
        month = _MONTH_NUMBERS[m.group(1).lower()]
        found.append((m.start(), f"{m.group(3)}-{month:02d}-{int(m.group(2)):02d}"))
    out: list[str] = []
    for _, day in sorted(found):
        try:
            datetime.date.fromisoformat(day)
        except ValueError:
            continue
        if day not in out:
            out.append(day)
    return out
