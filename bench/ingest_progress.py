"""Ingest batching for progress: the old batching (store writes of 256 chunks, one
embedding call per write) against the new one (writes of 64 chunks, embedded 32 at a
time, each reported), with the real model: total speed, and when the first articles were
stored, which is when progress can first say any article is done. Runs interleaved.

    python -m bench.ingest_progress [--data FILE] [--articles 40] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SHARED_EVAL, require_files
from service.context import Newsdesk
from service.settings import Settings
from vectorstore.indexer import IngestProgress
from vectorstore.ingest import Article, make_article

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VARIANTS = {"old": (256, 10**9), "new": (64, 32)}  # (batch_chunks, embed_slice)


def articles(data: Path, n: int) -> list[Article]:
    """Multi-News source documents: real news articles of several chunks each."""
    out: list[Article] = []
    for line in data.read_text("utf-8").splitlines():
        for doc in json.loads(line)["documents"]:
            if doc.strip() and len(out) < n:
                out.append(make_article(doc))
    return out


def one_run(items: list[Article], variant: str, models: Path, embedder: Any) -> dict[str, Any]:
    batch_chunks, embed_slice = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            model_dir=models,
            llm_base_url=None,
            llm_api_key=None,
        )
        nd = Newsdesk(s, embedder=embedder)
        nd.indexer.batch_chunks, nd.indexer.embed_slice = batch_chunks, embed_slice
        ticks: list[tuple[float, int, int]] = []

        def on_progress(p: IngestProgress) -> None:
            ticks.append((time.perf_counter(), p.chunks_embedded, p.articles_done))

        started = time.perf_counter()
        report = nd.indexer.index(items, on_progress=on_progress)
        seconds = time.perf_counter() - started
        nd.store.close()
    first_done = next(t for t, _, done in ticks if done) - started
    # The longest time the embedded-chunk count stood still.
    moves = [started]
    for (t, embedded, _), (_, before, _) in zip(ticks[1:], ticks, strict=False):
        if embedded != before:
            moves.append(t)
    return {
        "variant": variant,
        "batch_chunks": batch_chunks,
        "embed_slice": embed_slice,
        "articles": len(items),
        "chunks": report.chunks,
        "seconds": round(seconds, 1),
        "chunks_per_second": round(report.chunks / seconds, 2),
        "first_articles_stored_after_s": round(first_done, 1),
        "longest_wait_between_chunk_counts_s": round(
            max(b - a for a, b in zip(moves, moves[1:], strict=False)), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    parser.add_argument("--articles", type=int, default=40)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    require_files(args.data)
    items = articles(args.data, args.articles)
    models = Path(tempfile.mkdtemp(prefix="newsdesk-models-"))
    embedder = Newsdesk(
        Settings(_env_file=None, data_dir=models, model_dir=models, llm_base_url=None)
    ).embedder()
    runs = [one_run(items, v, models, embedder) for _ in range(args.runs) for v in VARIANTS]
    keys = ("seconds", "chunks_per_second", "first_articles_stored_after_s")
    median = {
        v: {k: round(statistics.median(r[k] for r in runs if r["variant"] == v), 2) for k in keys}
        for v in VARIANTS
    }
    result = {"runs": runs, "median": median}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest_progress.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
