"""Claim support on two labelled sets: share of faithful claims kept and of lies caught.

    python -m bench.claims [--corpus F] [--multinews F] [--labels F]  -> bench/results/claims.json

- ``synthetic``: 300 pairs from the MultiHop corpus, claims rewritten from their quotes by
  rule (bench/claims_dataset.py);
- ``human``: Multi-News summary sentences people wrote, each with the source sentence that
  says it, labelled by a reader as supported or saying more, plus lies made from the
  supported ones (bench/claims_human.py, labels in bench/claims_human_labels.json).

The thresholds (content-word overlap; embedding similarity, or none) are chosen on four
folds and scored on the fifth, five times; human pairs are split by story so no story is in
both. Every rate reported is on pairs the thresholds were not chosen on. The embedding
model is loaded once (about a minute with the vectors it computes, cached under data/).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import claims_dataset, claims_human
from bench.common import ROOT, SHARED_EVAL, embedder, rel, require_files, write_result
from service.claim_check import check_claim, overlap

OVERLAP_GRID = (0.2, 0.3, 0.4, 0.5)
# None: similarity not used. Cosines of all-MiniLM-L6-v2 vectors.
SIMILARITY_GRID = (None, 0.3, 0.4, 0.5, 0.6)
FOLDS = 5
LABELS = claims_human.LABELS_PATH
CACHE = ROOT / "data" / "bench-cache"


def cosines(pairs: list[dict[str, Any]], embed: Callable[[list[str]], np.ndarray]) -> None:
    """Claim/quote cosine of every pair, stored on the pair (vectors cached on disk)."""
    texts = [p["claim"] for p in pairs] + [" ".join(p["quotes"]) for p in pairs]
    vecs = claims_human._vectors(texts, embed, CACHE)
    n = len(pairs)
    for i, p in enumerate(pairs):
        p["cosine"] = float(vecs[i] @ vecs[n + i])


def precheck(pairs: list[dict[str, Any]]) -> None:
    """Run every signal but the thresholds once per pair: the grid search then only
    compares numbers (number-parser makes a full check take milliseconds)."""
    for p in pairs:
        p["base_ok"] = check_claim(
            p["claim"],
            p["quotes"],
            p.get("context", ""),
            articles=p.get("article", ""),
            min_overlap=0.0,
        ).ok
        p["overlap"] = overlap(p["claim"], " ".join(q.strip() for q in p["quotes"]))
        # A claim identical to a quote passes before any threshold is looked at.
        p["verbatim"] = p["claim"].strip() in p["quotes"]


def passes(p: dict[str, Any], min_overlap: float, min_similarity: float | None) -> bool:
    if p["verbatim"]:
        return True
    return (
        p["base_ok"]
        and p["overlap"] >= min_overlap
        and (min_similarity is None or p["cosine"] >= min_similarity)
    )


def rates(pairs: list[dict[str, Any]], t: tuple[float, float | None]) -> dict[str, float]:
    by: dict[str, list[bool]] = {}
    for p in pairs:
        ok = passes(p, *t)
        by.setdefault(p["label"], []).append(ok if p["label"] == "faithful" else not ok)
    return {k: sum(v) / len(v) for k, v in by.items()}


def score(r: dict[str, float]) -> float:
    # Balanced: keeping faithful claims weighs as much as catching lies.
    lies = [v for k, v in r.items() if k != "faithful"]
    return r.get("faithful", 0) + sum(lies) / max(1, len(lies))


def folds_of(pairs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Five folds; pairs of one story (human set) or one quote (synthetic) stay together."""
    groups = sorted({p["group"] for p in pairs})
    random.Random(claims_dataset.SEED).shuffle(groups)
    fold_of = {g: i % FOLDS for i, g in enumerate(groups)}
    return [[p for p in pairs if fold_of[p["group"]] == i] for i in range(FOLDS)]


def pooled(held: list[dict[str, Any]], key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    labels = {k for h in held for k in h[key]}
    for k in sorted(labels):
        n = sum(h["n"][key][k] for h in held if k in h[key])
        out[k] = round(sum(h[key][k] * h["n"][key][k] for h in held if k in h[key]) / n, 4)
    return out


def counts(pairs: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pairs:
        out[p["label"]] = out.get(p["label"], 0) + 1
    return dict(sorted(out.items()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    ap.add_argument("--multinews", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    ap.add_argument("--labels", type=Path, default=LABELS)
    args = ap.parse_args(argv)
    require_files(args.corpus, args.multinews, args.labels)
    embed = embedder().embed

    synthetic = claims_dataset.build(args.corpus)
    for p in synthetic:
        p["quotes"] = [p["quote"]]
        p["group"] = f"s:{p['quote']}"
        p["set"] = "synthetic"
    aligned = claims_human.align(args.multinews, embed, cache=CACHE)
    human = claims_human.build(aligned, claims_human.read_labels(args.labels))
    for p in human:
        p["group"] = f"h:{p['cluster']}"
        p["set"] = "human"
    pairs = synthetic + human
    cosines(pairs, embed)
    precheck(pairs)

    grid = [(o, s) for o in OVERLAP_GRID for s in SIMILARITY_GRID]
    splits = [folds_of(synthetic), folds_of(human)]
    held: list[dict[str, Any]] = []
    for i in range(FOLDS):
        test = {name: split[i] for name, split in zip(("synthetic", "human"), splits, strict=True)}
        train = [p for split in splits for j, f in enumerate(split) if j != i for p in f]
        best = max(grid, key=lambda t: score(rates(train, t)))
        held.append(
            {
                "fold": i,
                "min_overlap": best[0],
                "min_similarity": best[1],
                **{name: rates(t, best) for name, t in test.items()},
                "n": {name: counts(t) for name, t in test.items()},
            }
        )
    chosen = [(h["min_overlap"], h["min_similarity"]) for h in held]
    result = {
        "data": {
            "synthetic": {"pairs": len(synthetic), "per_class": counts(synthetic)},
            "human": {
                "pairs": len(human),
                "per_class": counts(human),
                "aligned_summary_sentences": len(aligned.pairs),
                "labels": rel(args.labels),
            },
        },
        "held_out_rates": {name: pooled(held, name) for name in ("synthetic", "human")},
        "meaning": "faithful: share kept; every other class: share of lies caught",
        "chosen_per_fold": [{"min_overlap": o, "min_similarity": s} for o, s in chosen],
        "folds": held,
        "targets": {
            "number": 1.0,
            "negation": 1.0,
            "entity": 0.95,
            "unrelated": 0.95,
            "faithful": 0.9,
        },
    }
    path = write_result("claims", result)
    for name in ("synthetic", "human"):
        rates_ = result["held_out_rates"][name]
        print(name, "  ".join(f"{k} {v:.3f}" for k, v in rates_.items()))
    print("chosen per fold:", chosen)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
