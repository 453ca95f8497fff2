"""Benchmark 2: multi-document summary quality on Multi-News (ROUGE-1/2/L F1).

Each cluster's articles are canonicalised as ingestion would, summarised by Newsdesk's
extractive engine at the reference summary's word count, and scored against the human
reference. Peers at the same budget: the lead baseline (first sentences of each article,
round-robin), LexRank and TextRank (sumy). Every system's text is cut to the budget
before scoring, so no system gains recall by running long. Sentences for every system
come from our own splitter (no NLTK data is needed or downloaded).

The summary's position and length priors are chosen by 2-fold cross-validation over
the clusters: each fold's priors are picked on the other fold, and ROUGE on the fold they
never saw is reported (pooled over both folds) next to the in-sample numbers and the
peers on the same clusters. Sentence vectors are cached under data/bench/multinews.

    python -m bench.summaries [--data FILE] [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, SHARED_EVAL, embedder, emit, quiet, rel, require_files, table

VECTOR_CACHE = ROOT / "data" / "bench" / "multinews"
FOLDS = 2
SEED = 15
# Priors tried by the cross-validation (scoring.SummaryPriors).
LEAD_GRID = [0.0, 0.08, 0.16, 0.24, 0.32, 0.48, 0.64]
DECAY_GRID = [0.05, 0.15, 0.5, 1.0]
LENGTH_GRID = [0.0, 0.03, 0.06, 0.1, 0.15, 0.2]

# Fabbri et al., ACL 2019, Table 4: Hi-MAP on the full Multi-News test set (5,622 clusters).
HI_MAP = {"rouge1": 43.47, "rouge2": 14.89, "source": "Hi-MAP (Fabbri et al., ACL 2019)"}
MAX_POINTS = 40
_WORD = re.compile(r"\w+(?:['’]\w+)?")


# ---- data ---------------------------------------------------------------------------


def load_clusters(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def cluster_articles(row: dict[str, Any]) -> list[Any]:
    """The cluster's documents as in-memory StoredArticles, canonicalised like ingestion."""
    from vectorstore.canonical import canonicalize, headline
    from vectorstore.ingest import content_hash
    from vectorstore.store import StoredArticle

    articles = []
    for i, raw in enumerate(row["documents"]):
        text = canonicalize(raw)
        if not text:
            continue
        articles.append(
            StoredArticle(
                id=f"{row['id'][:12]}-{i}",
                text=text,
                title=headline(text),
                content_hash=content_hash(text),
                source=None,
                url=None,
                author=None,
                published_at=None,
                origin=None,
                chunks=0,
            )
        )
    return articles


def truncate_words(text: str, budget: int) -> str:
    words = text.split()
    return " ".join(words[:budget])


def sentences_of(article: Any) -> list[str]:
    from vectorstore.sentences import sentence_spans

    return [article.text[s:e] for s, e in sentence_spans(article.text)]


# ---- systems ------------------------------------------------------------------------


def lead_baseline(articles: list[Any], budget: int) -> str:
    """First sentence of each article, then the second of each, ... up to the budget."""
    per_article = [sentences_of(a) for a in articles]
    out: list[str] = []
    words = 0
    depth = 0
    while words < budget and any(depth < len(s) for s in per_article):
        for sents in per_article:
            if depth < len(sents) and words < budget:
                out.append(sents[depth])
                words += len(sents[depth].split())
        depth += 1
    return truncate_words(" ".join(out), budget)


class _Tokenizer:
    """sumy's tokenizer interface on our sentence splitter and a word regex: no NLTK data."""

    language = "english"

    def to_sentences(self, text: str) -> tuple[str, ...]:
        from vectorstore.sentences import sentence_spans

        return tuple(text[s:e] for s, e in sentence_spans(text))

    def to_words(self, sentence: str) -> tuple[str, ...]:
        return tuple(_WORD.findall(sentence))


def _fit_budget(budget: int) -> Callable[[list[Any]], list[Any]]:
    """A sumy sentence 'count': best-rated sentences until they cover the word budget."""

    def count(infos: list[Any]) -> list[Any]:
        chosen, words = [], 0
        for info in infos:
            if words >= budget:
                break
            chosen.append(info)
            words += len(str(info.sentence).split())
        return chosen

    return count


class SumyPeer:
    def __init__(self, kind: str) -> None:
        from sumy.nlp.stemmers import Stemmer
        from sumy.summarizers.lex_rank import LexRankSummarizer
        from sumy.summarizers.text_rank import TextRankSummarizer
        from sumy.utils import get_stop_words

        cls = {"lexrank": LexRankSummarizer, "textrank": TextRankSummarizer}[kind]
        self.summarizer = cls(Stemmer("english"))
        self.summarizer.stop_words = get_stop_words("english")
        self.tokenizer = _Tokenizer()

    def __call__(self, articles: list[Any], budget: int) -> str:
        from sumy.models.dom import ObjectDocumentModel, Paragraph, Sentence

        doc = ObjectDocumentModel(
            [Paragraph([Sentence(s, self.tokenizer) for s in sentences_of(a)]) for a in articles]
        )
        picked = self.summarizer(doc, _fit_budget(budget))
        return truncate_words(" ".join(str(s) for s in picked), budget)


class Ours:
    """Newsdesk's extractive engine; the ROUGE text is its cited sentences, in point order."""

    def __init__(self, emb: Any) -> None:
        from service.engines.extractive.engine import ExtractiveEngine
        from service.engines.extractive.vectors import SentenceEmbedder

        # The engine alone: no store, so no data directory.
        self.engine = ExtractiveEngine(SentenceEmbedder(lambda: emb))
        self.last: dict[str, Any] = {}

    def __call__(self, articles: list[Any], budget: int) -> str:
        from service.engines.protocol import SummaryJob

        summary = self.engine.summarize(SummaryJob(articles, None, budget, MAX_POINTS))
        by_n = {c.n: c for c in summary.citations}
        texts = {a.id: a.text for a in articles}
        quotes: list[str] = []
        verified = 0
        cited: set[str] = set()
        for point in summary.points:
            cits = [by_n.get(n) for n in point.citations]
            ok = bool(cits) and all(
                c is not None and c.quote == texts.get(c.article_id, "")[c.start : c.end]
                for c in cits
            )
            verified += ok
            for c in cits:
                if c is not None:
                    quotes.append(c.quote)
                    cited.add(c.article_id)
        text = " ".join(quotes)
        self.last = {
            "points": len(summary.points),
            "verified_points": verified,
            "articles": len(articles),
            "articles_cited": len(cited),
            "words_returned": len(text.split()),
        }
        return truncate_words(text, budget)


# ---- cross-validated priors ------------------------------------------------------------


def cluster_sentences(row: dict[str, Any], emb: Any) -> tuple[list[Any], np.ndarray]:
    """A cluster's summary candidates (as the engine reads them) and their vectors,
    cached as .npy so reruns skip the model."""
    from service.engines.extractive.engine import prose_sentences

    sentences = prose_sentences(cluster_articles(row))
    path = VECTOR_CACHE / f"{row['id'][:24]}.npy"
    if path.is_file():
        vectors = np.load(path)
        if len(vectors) == len(sentences):
            return sentences, vectors
    vectors = emb.embed([x.text for x in sentences]) if sentences else np.zeros((0, 384))
    VECTOR_CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return sentences, vectors


def picked_text(sentences: list[Any], vectors: np.ndarray, budget: int, priors: Any) -> str:
    """What the engine's summary says under ``priors``: its quotes in point order."""
    from service.engines.extractive.engine import summary_picks
    from service.engines.extractive.scoring import lead_weighted_scores

    if not sentences:
        return ""
    scores = lead_weighted_scores(sentences, vectors, None, priors)
    chosen = summary_picks(sentences, scores, vectors, budget, MAX_POINTS)
    return truncate_words(" ".join(sentences[i].text for i in chosen), budget)


def cross_validate(
    clusters: list[dict[str, Any]], emb: Any, scorer: Any, peers: dict[str, list[dict]]
) -> dict[str, Any]:
    from service.engines.extractive.scoring import SummaryPriors

    prepared = [cluster_sentences(row, emb) for row in clusters]
    refs = [row["reference_summary"] for row in clusters]
    grid = [
        SummaryPriors(lead, decay, length)
        for lead, decay, length in itertools.product(LEAD_GRID, DECAY_GRID, LENGTH_GRID)
    ]
    # ROUGE of every cluster under every prior: the folds then only pick among them.
    table_: list[list[dict[str, float]]] = []
    for priors in grid:
        row_scores = []
        for (sentences, vectors), ref in zip(prepared, refs, strict=True):
            text = picked_text(sentences, vectors, len(ref.split()), priors)
            got = scorer.score(ref, text)
            row_scores.append({k: got[k].fmeasure * 100 for k in ("rouge1", "rouge2", "rougeL")})
        table_.append(row_scores)

    def mean(k: int, idx: list[int], key: str) -> float:
        return statistics.mean(table_[k][i][key] for i in idx) if idx else 0.0

    def best(idx: list[int]) -> int:
        # R-1 + R-2, the two the targets name; ties to the first (smallest priors).
        return max(
            range(len(grid)), key=lambda k: (mean(k, idx, "rouge1") + mean(k, idx, "rouge2"), -k)
        )

    order = list(range(len(clusters)))
    random.Random(SEED).shuffle(order)
    fold_of = {c: n % FOLDS for n, c in enumerate(order)}
    held: dict[str, list[float]] = {"rouge1": [], "rouge2": [], "rougeL": []}
    folds = []
    for f in range(FOLDS):
        train = [i for i in order if fold_of[i] != f]
        test = [i for i in order if fold_of[i] == f]
        k = best(train)
        for i in test:
            for key in held:
                held[key].append(table_[k][i][key])
        folds.append(
            {
                "fold": f,
                "clusters": len(test),
                "priors_chosen_on_other_fold": grid[k].__dict__,
                "held_out": {key: round(mean(k, test, key), 2) for key in held},
                "lead_on_this_fold": {
                    key: round(statistics.mean(peers["lead"][i][key] for i in test), 2)
                    for key in held
                },
            }
        )
    everything = list(range(len(clusters)))
    k_all = best(everything)
    shipped = grid.index(SummaryPriors()) if SummaryPriors() in grid else None
    peer_means = {
        name: {
            key: round(statistics.mean(s[i][key] for i in everything), 2)
            for key in ("rouge1", "rouge2", "rougeL")
        }
        for name, s in peers.items()
    }
    held_out = {key: round(statistics.mean(v), 2) for key, v in held.items()}
    return {
        "grid": {"lead": LEAD_GRID, "decay": DECAY_GRID, "length": LENGTH_GRID},
        "held_out_pooled": held_out,
        "in_sample": {
            "priors": grid[k_all].__dict__,
            **{key: round(mean(k_all, everything, key), 2) for key in held},
        },
        "shipped_priors": SummaryPriors().__dict__,
        "shipped_in_grid": shipped is not None,
        "folds": folds,
        "peers_same_clusters": peer_means,
        "held_out_minus_lead": {
            key: round(held_out[key] - peer_means["lead"][key], 2) for key in held_out
        },
    }


# ---- scoring ------------------------------------------------------------------------


def run(path: Path, limit: int | None = None, emb: Any | None = None) -> dict[str, Any]:
    from rouge_score import rouge_scorer

    emb = emb or embedder()
    clusters = load_clusters(path, limit)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    ours = Ours(emb)
    # Vectors cached by an earlier run (or made once here) serve the engine too.
    for row in clusters:
        sentences, vectors = cluster_sentences(row, emb)
        ours.engine.embedder.cache.put_many(
            [
                ((x.article.id, x.article.content_hash, x.start, x.end), v)
                for x, v in zip(sentences, vectors, strict=True)
            ]
        )
    ours(cluster_articles(clusters[0])[:1], 50)  # warm-up: first model call is slow
    systems: dict[str, Callable[[list[Any], int], str]] = {
        "newsdesk_extractive": ours,
        "lead": lead_baseline,
        "lexrank": SumyPeer("lexrank"),
        "textrank": SumyPeer("textrank"),
    }
    scores: dict[str, dict[str, list[float]]] = {
        name: {"rouge1": [], "rouge2": [], "rougeL": [], "seconds": [], "words": []}
        for name in systems
    }
    stats: list[dict[str, Any]] = []
    per_cluster: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    budgets = []
    for row in clusters:
        articles = cluster_articles(row)
        reference = row["reference_summary"]
        budget = len(reference.split())
        budgets.append(budget)
        for name, system in systems.items():
            t0 = time.perf_counter()
            text = system(articles, budget)
            scores[name]["seconds"].append(time.perf_counter() - t0)
            scores[name]["words"].append(len(text.split()))
            got = scorer.score(reference, text)
            for key in ("rouge1", "rouge2", "rougeL"):
                scores[name][key].append(got[key].fmeasure * 100)
            per_cluster[name].append(
                {k: got[k].fmeasure * 100 for k in ("rouge1", "rouge2", "rougeL")}
            )
        stats.append(ours.last)

    def summary_of(s: dict[str, list[float]]) -> dict[str, float]:
        return {
            "rouge1": round(statistics.mean(s["rouge1"]), 2),
            "rouge2": round(statistics.mean(s["rouge2"]), 2),
            "rougeL": round(statistics.mean(s["rougeL"]), 2),
            "mean_words": round(statistics.mean(s["words"]), 1),
            "median_seconds_per_cluster": round(statistics.median(s["seconds"]), 3),
        }

    results = {name: summary_of(s) for name, s in scores.items()}
    cv = cross_validate(
        clusters, emb, scorer, {n: v for n, v in per_cluster.items() if n != "newsdesk_extractive"}
    )
    ours_r = results["newsdesk_extractive"]
    peers = [n for n in results if n != "newsdesk_extractive"]
    points = sum(s["points"] for s in stats)
    spread = [s["articles_cited"] / s["articles"] for s in stats if s["articles"]]
    return {
        "benchmark": "summaries",
        "data": {
            "file": rel(path),
            "clusters": len(clusters),
            "articles": sum(len(r["documents"]) for r in clusters),
            "median_budget_words": statistics.median(budgets),
        },
        "setup": {
            "budget": "the reference summary's word count; every system's text is cut to it",
            "rouge": "rouge-score F1 x 100, use_stemmer=True, mean over clusters",
            "newsdesk": (
                "ExtractiveEngine.summarize(SummaryJob(articles, topic=None, "
                f"max_words=budget, max_points={MAX_POINTS})); text = cited sentences in "
                "point order, without the 'X reports:' attribution"
            ),
            "timing": (
                "newsdesk's sentence vectors come from the bench cache (data/bench/multinews), "
                "so its seconds exclude embedding"
            ),
            "lead": "first sentences of each article, round-robin",
            "lexrank/textrank": (
                "sumy, best-rated sentences until the budget is covered, in document order"
            ),
        },
        "systems": results,
        "anchor": HI_MAP | {"note": "full Multi-News test set, neural abstractive; reference only"},
        "cross_validation": cv,
        "newsdesk_citations": {
            "points": points,
            "share_with_verified_citation": round(
                sum(s["verified_points"] for s in stats) / max(1, points), 4
            ),
            "mean_share_of_cluster_articles_cited": round(statistics.mean(spread), 4),
            "min_share_of_cluster_articles_cited": round(min(spread), 4),
            "mean_words_before_cut": round(statistics.mean(s["words_returned"] for s in stats), 1),
        },
        "target": {
            "beats_every_peer_rouge1": all(ours_r["rouge1"] > results[p]["rouge1"] for p in peers),
            "beats_every_peer_rouge2": all(ours_r["rouge2"] > results[p]["rouge2"] for p in peers),
            "gap_to_hi_map_rouge1": round(ours_r["rouge1"] - HI_MAP["rouge1"], 2),
            "gap_to_hi_map_rouge2": round(ours_r["rouge2"] - HI_MAP["rouge2"], 2),
        },
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [n, m["rouge1"], m["rouge2"], m["rougeL"], m["mean_words"], m["median_seconds_per_cluster"]]
        for n, m in result["systems"].items()
    ]
    rows.append(
        [f"anchor: {HI_MAP['source']}, full test set", HI_MAP["rouge1"], HI_MAP["rouge2"]]
        + [None] * 3
    )
    c = result["newsdesk_citations"]
    t = result["target"]
    cv = result["cross_validation"]
    cv_rows = [
        ["newsdesk, priors chosen on the other fold (held-out, pooled)"]
        + [cv["held_out_pooled"][k] for k in ("rouge1", "rouge2", "rougeL")],
        [f"newsdesk, priors chosen on all dev {cv['in_sample']['priors']} (in-sample)"]
        + [cv["in_sample"][k] for k in ("rouge1", "rouge2", "rougeL")],
    ] + [
        [name] + [m[k] for k in ("rouge1", "rouge2", "rougeL")]
        for name, m in cv["peers_same_clusters"].items()
    ]
    return (
        f"Summaries, Multi-News dev ({result['data']['clusters']} clusters, "
        f"median budget {result['data']['median_budget_words']} words)\n"
        + table(["system", "R-1", "R-2", "R-L", "words", "s/cluster (median)"], rows)
        + f"\nnewsdesk: {c['share_with_verified_citation']:.1%} of points carry a verified "
        f"citation; {c['mean_share_of_cluster_articles_cited']:.1%} of a cluster's articles "
        f"cited on average (min {c['min_share_of_cluster_articles_cited']:.1%})"
        + f"\nbeats every peer: R-1 {t['beats_every_peer_rouge1']}, "
        f"R-2 {t['beats_every_peer_rouge2']}"
        + "\n\nCross-validated priors (2 folds over clusters)\n"
        + table(["system", "R-1", "R-2", "R-L"], cv_rows)
        + f"\nheld-out minus lead: {cv['held_out_minus_lead']}"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.summaries", description=__doc__)
    p.add_argument("--data", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    p.add_argument("--limit", type=int, default=None, help="score only the first N clusters")
    p.add_argument("--out-dir", type=Path, default=None, help="default: bench/results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, emb: Any | None = None) -> dict[str, Any]:
    quiet()
    args = parse(argv)
    require_files(args.data)
    result = run(args.data, args.limit, emb)
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    emit("summaries", result, render(result), **kwargs)
    return result


if __name__ == "__main__":
    main()
