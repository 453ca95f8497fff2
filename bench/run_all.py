"""Run every benchmark in sequence (``make bench``) and write the README table.

Benchmarks share one loaded embedding model; ingestion's pipeline runs still use their
own subprocesses so their peak RSS is theirs alone. Data files can be overridden as in
the single benchmarks. The soak (bench/soak.py, `make soak`) is separate: it runs for minutes.

    python -m bench.run_all [--corpus F] [--queries F] [--multinews F] [--seeds DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench import ingestion, retrieval, service_overhead, summaries
from bench.common import (
    RESULTS,
    ROOT,
    SHARED_EVAL,
    embedder,
    quiet,
    rel,
    require_files,
    table,
)


def production_backend(ing: dict[str, Any]) -> str:
    names = ing.get("embedding_variants", {}).get("variants", {})
    production = next((n for n in names if n.endswith("(production)")), "torch")
    return production.split(",")[0]


def readme_table(ret: dict[str, Any], summ: dict[str, Any], ing: dict[str, Any]) -> str:
    s = ret["systems"]
    lines = [
        f"### Retrieval: MultiHop-RAG dev ({ret['data']['queries_scored']} queries with evidence)",
        "",
        table(
            ["system", "Hits@4", "Hits@10", "MRR@10"],
            [
                ["Newsdesk hybrid (dense + BM25 + outlet names)"]
                + [s["newsdesk_hybrid"][k] for k in ("hits@4", "hits@10", "mrr@10")],
                ["Newsdesk hybrid, outlet names not used"]
                + [s["newsdesk_hybrid_no_metadata"][k] for k in ("hits@4", "hits@10", "mrr@10")],
                ["Newsdesk dense only"]
                + [s["newsdesk_dense"][k] for k in ("hits@4", "hits@10", "mrr@10")],
                ["Newsdesk BM25 only"]
                + [s["newsdesk_bm25"][k] for k in ("hits@4", "hits@10", "mrr@10")],
                ["LangChain tutorial (RecursiveCharacterTextSplitter 1000/200 + Chroma)"]
                + [s["langchain_tutorial"][k] for k in ("hits@4", "hits@10", "mrr@10")],
            ],
        ),
        "",
    ]
    m = summ["systems"]
    c = summ["newsdesk_citations"]
    names = {
        "newsdesk_extractive": "Newsdesk extractive engine",
        "lead": "Lead baseline (first sentences, round-robin)",
        "lexrank": "LexRank (sumy)",
        "textrank": "TextRank (sumy)",
    }
    lines += [
        f"### Summaries: Multi-News dev ({summ['data']['clusters']} clusters, "
        "ROUGE F1 at the reference's length)",
        "",
        table(
            ["system", "ROUGE-1", "ROUGE-2", "ROUGE-L"],
            [[names.get(n, n), v["rouge1"], v["rouge2"], v["rougeL"]] for n, v in m.items()]
            + [
                [
                    "Hi-MAP, neural, full test set (Fabbri et al., 2019), for reference",
                    summ["anchor"]["rouge1"],
                    summ["anchor"]["rouge2"],
                    "",
                ]
            ],
        ),
        "",
        f"Newsdesk summaries: {c['share_with_verified_citation']:.1%} of points carry a "
        f"verified citation; on average {c['mean_share_of_cluster_articles_cited']:.1%} of a "
        "cluster's articles are cited.",
        "",
    ]
    rows = []
    for name, p in ing["pipeline"].items():
        rows.append(
            [
                "Seeds" if name == "seeds" else "Multi-News documents",
                p["articles"],
                p["chunks"],
                p["articles_per_s"],
                p["chunks_per_s"],
                f"{p['embed_share']:.0%}",
                p["peak_rss_mib"],
            ]
        )
    lines += [
        f"### Ingestion (this 2-core machine, {production_backend(ing)} on one thread)",
        "",
        table(
            [
                "data",
                "articles",
                "chunks",
                "articles/s",
                "chunks/s",
                "time embedding",
                "peak RSS MiB",
            ],
            rows,
        ),
    ]
    ev = ing.get("embedding_variants")
    if ev:
        vrows = []
        for name, v in ev["variants"].items():
            vrows.append(
                [
                    name,
                    v["chunks_per_s_median"],
                    f"{v['ratio_to_production']:.2f}x",
                    f"{v['cpu_ratio_to_production']:.2f}x",
                    v["ms_per_question_median"],
                    v["min_cosine_vs_production"],
                    v.get(
                        "retrieval_hybrid_hits@4",
                        "same vectors"
                        if v["max_abs_diff_vs_production"] <= 1e-5
                        else "not checked (not faster)",
                    ),
                ]
            )
        lines += [
            "",
            f"Embedding variants ({ev['sample_chunks']} production chunks, median "
            f"{ev['sample_word_pieces_median']:.0f} word pieces, and "
            f"{ev.get('sample_questions', 0)} single questions; medians of "
            f"{ev['repeats']} interleaved runs):",
            "",
            table(
                [
                    "variant",
                    "chunks/s",
                    "vs production (wall)",
                    "vs production (CPU time)",
                    "ms per question",
                    "min cosine",
                    "hybrid Hits@4",
                ],
                vrows,
            ),
        ]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    p.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    p.add_argument("--queries", type=Path, default=SHARED_EVAL / "multihop_dev.jsonl")
    p.add_argument("--multinews", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    p.add_argument("--seeds", type=Path, default=ROOT / "seeds")
    p.add_argument("--sample", type=int, default=64, help="ingestion: chunks per variant timing")
    p.add_argument("--repeats", type=int, default=3, help="ingestion: timing repeats")
    p.add_argument(
        "--overhead-sizes",
        type=int,
        nargs="+",
        default=[1000, 10000, 50000],
        help="service overhead: store sizes in chunks",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    quiet()
    args = parse(argv)
    require_files(args.corpus, args.queries, args.multinews)
    started = time.perf_counter()
    emb = embedder()
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    ret = retrieval.main(["--corpus", str(args.corpus), "--queries", str(args.queries)], emb)
    seconds["retrieval"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    summ = summaries.main(["--data", str(args.multinews)], emb)
    seconds["summaries"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ing = ingestion.main(
        [
            "--seeds",
            str(args.seeds),
            "--multinews",
            str(args.multinews),
            "--corpus",
            str(args.corpus),
            "--queries",
            str(args.queries),
            "--sample",
            str(args.sample),
            "--repeats",
            str(args.repeats),
        ],
        emb,
        production_quality={
            "retrieval_hybrid_hits@4": ret["systems"]["newsdesk_hybrid"]["hits@4"],
            "retrieval_dense_hits@4": ret["systems"]["newsdesk_dense"]["hits@4"],
        },
    )
    seconds["ingestion"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    overhead = service_overhead.run(args.corpus, args.overhead_sizes, service_overhead.REQUESTS)
    service_overhead.write(overhead, RESULTS / "service_overhead.json")
    seconds["service_overhead"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - started

    text = readme_table(ret, summ, ing) + "\n" + service_overhead.section(overhead)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "README_table.md").write_text(text, "utf-8")
    timing = {k: round(v, 1) for k, v in seconds.items()}
    (RESULTS / "run_all.json").write_text(json.dumps({"seconds": timing}, indent=2) + "\n")
    print("\n" + "=" * 72 + "\n")
    print(text)
    print(f"wrote {rel(RESULTS / 'README_table.md')}; seconds: {timing}")


if __name__ == "__main__":
    main()
