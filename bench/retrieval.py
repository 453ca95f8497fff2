"""Benchmark 1: retrieval quality on MultiHop-RAG (Hits@4, Hits@10, MRR@10).

Newsdesk's modes (hybrid, hybrid without the outlet names of the query, dense only,
BM25 only) come from ``service.evaluation``; the peer is the LangChain RAG tutorial's
pipeline: RecursiveCharacterTextSplitter(1000, 200) + Chroma similarity_search(k=10),
with the same embedding model. Every system is scored by the same ``score_ranking``: a
gold fact counts as found when a retrieved chunk contains it, whitespace ignored.

The fusion constants (RRF k, dense weight) are chosen by 2-fold cross-validation over
the queries, grouped so that queries sharing a gold article fall in one fold: each fold's
constants are picked on the other fold, and Hits@4 on the fold they never saw is reported
(pooled) next to the in-sample number.

    python -m bench.retrieval [--corpus FILE] [--queries FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from langchain_core.embeddings import Embeddings

from bench.common import SHARED_EVAL, embedder, emit, quiet, rel, require_files, table

TARGET_HITS4 = 0.80
# Fusion constants tried by the cross-validation (RetrievalConfig.rrf_k / dense_weight).
RRF_K_GRID = [5, 10, 20, 40, 60]
DENSE_WEIGHT_GRID = [0.75, 1.0, 1.25, 1.5, 2.0, 3.0]


class LangChainEmbeddings(Embeddings):
    """Our LocalEmbedder behind LangChain's Embeddings interface (no second model load)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed([text])[0].tolist()


def langchain_tutorial(corpus: Path, queries: list[Any], emb: Any) -> dict[str, Any]:
    """The pipeline a user following the LangChain RAG tutorial would build."""
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from service.evaluation import score_queries

    docs = []
    for line in corpus.read_text("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            meta = {k: row[k] for k in ("id", "title", "source") if row.get(k)}
            docs.append(Document(page_content=row["text"], metadata=meta))
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=1000, chunk_overlap=200, add_start_index=True
    )
    t0 = time.perf_counter()
    splits = splitter.split_documents(docs)
    with tempfile.TemporaryDirectory(prefix="bench-langchain-") as tmp:
        store = Chroma(
            collection_name="tutorial",
            embedding_function=LangChainEmbeddings(emb),
            persist_directory=tmp,
            client_settings=chromadb.config.Settings(anonymized_telemetry=False),
        )
        store.add_documents(splits)
        index_seconds = time.perf_counter() - t0

        def search(text: str, store: Any = store) -> list[Any]:
            found = store.similarity_search(text, k=10)
            return [SimpleNamespace(chunk=SimpleNamespace(text=d.page_content)) for d in found]

        scores = score_queries(queries, search)
        del store
    return {
        **scores,
        "chunks": len(splits),
        "index_seconds": round(index_seconds, 2),
    }


def newsdesk_modes(
    corpus: Path, queries_path: Path, emb: Any, modes: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Ingest the corpus into a throwaway store and score Newsdesk's retrieval modes."""
    from service.context import Newsdesk
    from service.evaluation import RETRIEVAL_MODES, evaluate, load_queries
    from service.settings import Settings
    from vectorstore.ingest import read_paths

    queries = load_queries(queries_path)
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        settings = Settings(data_dir=Path(tmp), chroma_host=None)
        nd = Newsdesk(settings, embedder=emb)
        t0 = time.perf_counter()
        report = nd.indexer.index(read_paths([corpus]))
        index_seconds = time.perf_counter() - t0
        results: dict[str, Any] = evaluate(nd, queries, modes or RETRIEVAL_MODES)
        if modes is None:
            results["cross_validation"] = cross_validate_fusion(nd, corpus, queries_path)
    results["data"] = {
        "articles": report.added,
        "chunks": report.chunks,
        "chunk_tokens": settings.chunk_tokens,
        "index_seconds": round(index_seconds, 2),
    }
    return results


def cross_validate_fusion(nd: Any, corpus: Path, queries_path: Path) -> dict[str, Any]:
    """Hits@4 of hybrid retrieval under every (k, dense weight), then 2-fold CV over query
    groups (bench.answers' grouping: queries sharing a gold article stay together)."""
    import dataclasses
    import statistics

    from bench.answers import FOLDS, Row, groups_of
    from service.evaluation import load_queries, score_ranking

    queries = load_queries(queries_path)
    corpus_rows = [json.loads(x) for x in corpus.read_text("utf-8").splitlines() if x.strip()]
    rows = [Row(q.id, "", "", q.evidence) for q in queries]
    groups_of(rows, corpus_rows)
    base = nd.retriever.config
    grid = [(k, w) for k in RRF_K_GRID for w in DENSE_WEIGHT_GRID]
    hits4: list[list[float]] = []
    try:
        for k, w in grid:
            nd.retriever.config = dataclasses.replace(base, rrf_k=k, dense_weight=w)
            per_query = []
            for q in queries:
                _, found4, _ = score_ranking(nd.retriever.search(q.text, top_k=10), q.evidence)
                per_query.append(found4 / len(q.evidence))
            hits4.append(per_query)
    finally:
        nd.retriever.config = base

    def mean(c: int, idx: list[int]) -> float:
        return statistics.mean(hits4[c][i] for i in idx)

    def best(idx: list[int]) -> int:
        return max(range(len(grid)), key=lambda c: (round(mean(c, idx), 6), -c))

    held: list[float] = []
    folds = []
    for f in range(FOLDS):
        train = [i for i, r in enumerate(rows) if r.group != f]
        test = [i for i, r in enumerate(rows) if r.group == f]
        c = best(train)
        held += [hits4[c][i] for i in test]
        folds.append(
            {
                "fold": f,
                "queries": len(test),
                "chosen_on_other_fold": {"rrf_k": grid[c][0], "dense_weight": grid[c][1]},
                "held_out_hits@4": round(mean(c, test), 4),
                "in_sample_hits@4": round(mean(best(test), test), 4),
            }
        )
    everything = list(range(len(rows)))
    c_all = best(everything)
    shipped = (
        grid.index((base.rrf_k, base.dense_weight))
        if (
            base.rrf_k,
            base.dense_weight,
        )
        in grid
        else None
    )
    held_out = round(statistics.mean(held), 4)
    in_sample = round(mean(c_all, everything), 4)
    return {
        "grid": {"rrf_k": RRF_K_GRID, "dense_weight": DENSE_WEIGHT_GRID},
        "in_sample": {
            "rrf_k": grid[c_all][0],
            "dense_weight": grid[c_all][1],
            "hits@4": in_sample,
        },
        "shipped": {
            "rrf_k": base.rrf_k,
            "dense_weight": base.dense_weight,
            "hits@4": round(mean(shipped, everything), 4) if shipped is not None else None,
        },
        "held_out_pooled_hits@4": held_out,
        "held_out_minus_in_sample": round(held_out - in_sample, 4),
        "folds": folds,
    }


def run(corpus: Path, queries_path: Path, emb: Any | None = None) -> dict[str, Any]:
    from service.evaluation import load_queries

    emb = emb or embedder()
    queries = load_queries(queries_path)
    total = sum(1 for line in queries_path.read_text("utf-8").splitlines() if line.strip())
    ours = newsdesk_modes(corpus, queries_path, emb)
    data = ours.pop("data")
    cv = ours.pop("cross_validation")
    peer = langchain_tutorial(corpus, queries, emb)
    systems = {f"newsdesk_{k}": v for k, v in ours.items()}
    systems["langchain_tutorial"] = {k: peer[k] for k in ("hits@4", "hits@10", "mrr@10")} | {
        "any@4": peer["any@4"],
        "any@10": peer["any@10"],
    }
    hybrid = systems["newsdesk_hybrid"]["hits@4"]
    return {
        "benchmark": "retrieval",
        "data": {
            "corpus": rel(corpus),
            "queries": rel(queries_path),
            "queries_total": total,
            "queries_scored": len(queries),
            "queries_skipped": "null queries (no gold evidence)",
        },
        "metrics": {
            "hits@k": "share of a query's gold facts found in the top k, averaged over queries",
            "any@k": "share of queries with at least one gold fact in the top k",
            "mrr@10": "mean reciprocal rank of the first chunk holding a gold fact",
        },
        "systems": systems,
        "setup": {
            "embedding_model": emb.model_id,
            "newsdesk": data
            | {"notes": "sentence-aligned exact-span chunks; hybrid = dense + BM25 RRF"},
            "langchain_tutorial": {
                "splitter": "RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)",
                "search": "Chroma.similarity_search(k=10)",
                "chunks": peer["chunks"],
                "index_seconds": peer["index_seconds"],
            },
        },
        "cross_validation": cv,
        "target": {
            "newsdesk_hybrid_hits@4_min": TARGET_HITS4,
            "met": hybrid >= TARGET_HITS4,
            "metadata_gain_hits@4": round(
                hybrid - systems["newsdesk_hybrid_no_metadata"]["hits@4"], 4
            ),
        },
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [name, m["hits@4"], m["hits@10"], m["mrr@10"], m["any@4"]]
        for name, m in result["systems"].items()
    ]
    t = result["target"]
    return (
        f"Retrieval, MultiHop-RAG dev ({result['data']['queries_scored']} queries with evidence)\n"
        + table(["system", "hits@4", "hits@10", "mrr@10", "any@4"], rows)
        + f"\ntarget hybrid hits@4 >= {t['newsdesk_hybrid_hits@4_min']}: "
        + ("met" if t["met"] else "NOT met")
        + f"; gain from outlet names in the query: {t['metadata_gain_hits@4']:+.4f} hits@4"
        + "\nfusion constants by 2-fold CV: held-out hits@4 "
        + f"{result['cross_validation']['held_out_pooled_hits@4']}, in-sample "
        + f"{result['cross_validation']['in_sample']} "
        + f"(held-out minus in-sample {result['cross_validation']['held_out_minus_in_sample']:+})"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.retrieval", description=__doc__)
    p.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    p.add_argument("--queries", type=Path, default=SHARED_EVAL / "multihop_dev.jsonl")
    p.add_argument("--out-dir", type=Path, default=None, help="default: bench/results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, emb: Any | None = None) -> dict[str, Any]:
    quiet()
    args = parse(argv)
    require_files(args.corpus, args.queries)
    result = run(args.corpus, args.queries, emb)
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    emit("retrieval", result, render(result), **kwargs)
    return result


if __name__ == "__main__":
    main()
