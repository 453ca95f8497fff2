"""Claim support on a labelled set: share of faithful paraphrases kept and of lies caught.

    python -m bench.claims [--corpus F]   -> bench/results/claims.json

MIN_OVERLAP is chosen on four folds and scored on the fifth, five times: every number
reported is on pairs the threshold was not chosen on. Seconds, no model (the embedding
similarity signal is not part of this run).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from bench.claims_dataset import SEED, build
from bench.common import SHARED_EVAL, require_files, write_result
from service.claim_check import check_claim

GRID = (0.3, 0.4, 0.5, 0.6, 0.7)
FOLDS = 5


def rates(pairs: list[dict[str, str]], min_overlap: float) -> dict[str, float]:
    by: dict[str, list[bool]] = {}
    for p in pairs:
        ok = check_claim(p["claim"], [p["quote"]], min_overlap=min_overlap).ok
        by.setdefault(p["label"], []).append(ok if p["label"] == "faithful" else not ok)
    return {k: sum(v) / len(v) for k, v in by.items()}


def score(r: dict[str, float]) -> float:
    # Balanced: keeping paraphrases weighs as much as catching lies.
    lies = [v for k, v in r.items() if k != "faithful"]
    return r.get("faithful", 0) + sum(lies) / max(1, len(lies))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    args = ap.parse_args(argv)
    require_files(args.corpus)
    pairs = build(args.corpus)
    random.Random(SEED).shuffle(pairs)
    folds = [pairs[i::FOLDS] for i in range(FOLDS)]
    held: list[dict[str, Any]] = []
    for i, test in enumerate(folds):
        train = [p for j, f in enumerate(folds) if j != i for p in f]
        best = max(GRID, key=lambda t: score(rates(train, t)))
        held.append({"fold": i, "min_overlap": best, "held_out": rates(test, best), "n": len(test)})
    labels = sorted({p["label"] for p in pairs})
    pooled = {
        k: round(sum(h["held_out"][k] * h["n"] for h in held) / len(pairs), 4) for k in labels
    }
    result = {
        "data": {
            "pairs": len(pairs),
            "per_class": {k: sum(p["label"] == k for p in pairs) for k in labels},
        },
        "held_out_rates": pooled,
        "meaning": "faithful: share kept; others: share of lies caught",
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
    for k in labels:
        print(f"{k:10s} {pooled[k]:.3f}")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
