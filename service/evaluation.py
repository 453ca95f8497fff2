"""Retrieval evaluation on MultiHop-RAG-style data: Hits@4, Hits@10, MRR@10.

A gold fact counts as found when a retrieved chunk contains it, whitespace ignored
(facts are sentences of the corpus; chunks are spans of it). Queries without evidence
(the benchmark's null queries) are skipped.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.context import Newsdesk
from service.settings import Settings
from vectorstore.embed import Embedder
from vectorstore.ingest import read_paths
from vectorstore.retrieve import Hit

_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub("", text)


@dataclass
class Query:
    id: str
    text: str
    evidence: list[str]


def load_queries(path: Path) -> list[Query]:
    queries = []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        evidence = [e for e in row.get("evidence") or [] if e and e.strip()]
        if evidence:
            queries.append(Query(str(row.get("id")), row["query"], evidence))
    return queries


def score_ranking(hits: list[Hit], evidence: list[str]) -> tuple[int | None, int, int]:
    """Rank (1-based) of the first hit holding a gold fact, and facts found in top 4/10."""
    gold = [squash(e) for e in evidence]
    first: int | None = None
    found4: set[int] = set()
    found10: set[int] = set()
    for rank, hit in enumerate(hits[:10], start=1):
        text = squash(hit.chunk.text)
        matched = {i for i, g in enumerate(gold) if g and g in text}
        if matched and first is None:
            first = rank
        found10 |= matched
        if rank <= 4:
            found4 |= matched
    return first, len(found4), len(found10)


def score_queries(
    queries: list[Query],
    search: Callable[[str], list[Any]],
    on_query: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Score one retriever (anything returning hits with ``.chunk.text``, best first).

    hits@k is the share of a query's gold facts found in the top k, averaged over
    queries (multi-hop questions need every fact, not just one); any@k is the share of
    queries with at least one fact in the top k; mrr@10 uses the first such chunk.
    """
    h4 = h10 = rr = 0.0
    a4 = a10 = 0
    for q in queries:
        first, f4, f10 = score_ranking(search(q.text), q.evidence)
        h4 += f4 / len(q.evidence)
        h10 += f10 / len(q.evidence)
        if first is not None:
            rr += 1.0 / first
            a10 += 1
            a4 += first <= 4
        if on_query:
            on_query()
    n = max(1, len(queries))
    return {
        "hits@4": round(h4 / n, 4),
        "hits@10": round(h10 / n, 4),
        "mrr@10": round(rr / n, 4),
        "any@4": round(a4 / n, 4),
        "any@10": round(a10 / n, 4),
    }


def evaluate(
    newsdesk: Newsdesk,
    queries: list[Query],
    modes: dict[str, dict[str, Any]],
    on_query: Callable[[], None] | None = None,
) -> dict[str, dict[str, float]]:
    """``score_queries`` for each retrieval mode of a Newsdesk."""
    return {
        name: score_queries(
            queries,
            lambda text, options=options: newsdesk.retriever.search(text, top_k=10, **options),
            on_query,
        )
        for name, options in modes.items()
    }


RETRIEVAL_MODES: dict[str, dict[str, Any]] = {
    "hybrid": {"mode": "hybrid"},
    "hybrid_no_metadata": {"mode": "hybrid", "use_metadata": False},
    "dense": {"mode": "dense", "diversity": False},
    "bm25": {"mode": "keyword", "diversity": False},
}


def run_retrieval_eval(
    corpus: Path,
    queries_path: Path,
    base: Settings,
    *,
    embedder: Embedder | None = None,
    on_article: Callable[[str], None] | None = None,
    on_query: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Ingest the corpus into a throwaway store and score every retrieval mode."""
    queries = load_queries(queries_path)
    with tempfile.TemporaryDirectory(prefix="newsdesk-eval-") as tmp:
        settings = base.model_copy(update={"data_dir": Path(tmp), "chroma_host": None})
        newsdesk = Newsdesk(settings, embedder=embedder)
        report = newsdesk.indexer.index(read_paths([corpus]), on_item=on_article)
        results = evaluate(newsdesk, queries, RETRIEVAL_MODES, on_query=on_query)
    results["data"] = {
        "corpus": str(corpus),
        "queries": str(queries_path),
        "queries_scored": len(queries),
        "articles": report.added,
        "chunks": report.chunks,
        "chunk_tokens": base.chunk_tokens,
    }
    return results
