"""Near-duplicate detection: precision and recall of syndicated-copy grouping.

    python -m bench.syndication   -> bench/results/syndication.json

Positives: Multi-News source articles (full-length news pages) re-run as another outlet
would run a wire story: that outlet's header and footer furniture, a few words changed,
sometimes the last paragraph cut or a sentence added (seeded, synthetic edits of real
articles); plus the pairs of one Multi-News cluster whose texts are identical (outlets that
ran the same copy). Hard negatives: the other pairs of one cluster (several outlets' own
reports of the same event) and articles of the same MultiHop category (short excerpts).

A pair is called a copy when the two share an LSH band and their estimated Jaccard is at
least the threshold, as the store decides it. The threshold is chosen on one half of the
pairs and scored on the other, both ways round (2-fold): the reported numbers are held-out.
The negatives the production threshold calls copies are listed for reading
(``negatives_called_copies``): some are real partial copies (one outlet quoting another's
paragraphs at length).
"""

from __future__ import annotations

import argparse
import json
import random
from itertools import combinations
from pathlib import Path
from typing import Any

from bench.common import SHARED_EVAL, require_files, write_result
from vectorstore import syndication

SEED = 11
GRID = (0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
IDENTICAL = 0.95
HEADERS = (
    "{o} | Breaking news, weather and sport. Sign up for our free morning newsletter.",
    "Advertisement. {o} — Subscribe for unlimited access. Share on Facebook Share on X",
    "Home > World > {o} wire. Listen to this article (4 min).",
    "",
)
FOOTERS = (
    "Copyright {o}. All rights reserved. This material may not be published or redistributed.",
    "Related stories from {o}: Read more. Follow us on social media. Comments are closed.",
    "Reporting by staff; editing by the {o} desk. Our standards: The Trust Principles.",
    "",
)
OUTLETS = ("Herald", "Gazette", "Tribune", "Courier", "Daily Post", "Chronicle")


def copy_of(text: str, rng: random.Random) -> str:
    """A wire story as another outlet runs it."""
    outlet = rng.choice(OUTLETS)
    paragraphs = [p for p in text.split("\n") if p.strip()]
    if len(paragraphs) > 3 and rng.random() < 0.4:
        paragraphs = paragraphs[:-1]  # trimmed for length
    words = " \n".join(paragraphs).split(" ")
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(words))
        words[i] = rng.choice(["said", "told", "the", "on", "reported", words[i].lower()])
    body = " ".join(words)
    if rng.random() < 0.3:
        body += f" {outlet} has contacted the company for comment."
    head = rng.choice(HEADERS).format(o=outlet)
    foot = rng.choice(FOOTERS).format(o=outlet)
    return "\n".join(p for p in (head, body, foot) if p)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def is_copy(a: syndication.Signature, b: syndication.Signature, threshold: float) -> bool:
    shares_band = bool(set(a.bands().values()) & set(b.bands().values()))
    return shares_band and a.jaccard(b) >= threshold


def scores(pairs: list[dict[str, Any]], threshold: float) -> dict[str, float]:
    tp = sum(1 for p in pairs if p["copy"] and is_copy(p["a"], p["b"], threshold))
    fp = sum(1 for p in pairs if not p["copy"] and is_copy(p["a"], p["b"], threshold))
    pos = sum(1 for p in pairs if p["copy"])
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / pos if pos else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "pos": pos}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    ap.add_argument("--multinews", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    args = ap.parse_args(argv)
    require_files(args.corpus, args.multinews)
    rng = random.Random(SEED)
    corpus = [a for a in read_jsonl(args.corpus) if syndication.signature(a["text"])]
    clusters = read_jsonl(args.multinews)
    pairs: list[dict[str, Any]] = []
    for c, cluster in enumerate(clusters):
        for d, doc in enumerate(cluster["documents"]):
            sig, copy = syndication.signature(doc), syndication.signature(copy_of(doc, rng))
            if sig and copy:
                pairs.append(
                    {
                        "a": sig,
                        "b": copy,
                        "copy": True,
                        "kind": "wire copy",
                        "ids": f"multinews {c}:{d}",
                    }
                )
    by_category: dict[str, list[dict[str, Any]]] = {}
    for art in corpus:
        by_category.setdefault(art.get("category") or "", []).append(art)
    for arts in by_category.values():
        all_pairs = list(combinations(arts, 2))
        for a, b in rng.sample(all_pairs, min(150, len(all_pairs))):
            sa, sb = syndication.signature(a["text"]), syndication.signature(b["text"])
            if sa and sb:
                pairs.append(
                    {
                        "a": sa,
                        "b": sb,
                        "copy": False,
                        "kind": "same category",
                        "ids": f"{a['id']}|{b['id']}",
                    }
                )
    for c, cluster in enumerate(clusters):
        docs = cluster["documents"]
        for i, j in combinations(range(len(docs)), 2):
            sa, sb = syndication.signature(docs[i]), syndication.signature(docs[j])
            if not (sa and sb):
                continue
            # Outlets of one cluster sometimes ran the same text: identical shingles are a
            # copy by definition, whatever the threshold.
            x, y = syndication.shingles(docs[i]), syndication.shingles(docs[j])
            same = len(x & y) / len(x | y) >= IDENTICAL
            pairs.append(
                {
                    "a": sa,
                    "b": sb,
                    "copy": same,
                    "kind": "identical text" if same else "same event",
                    "ids": f"multinews {c}: {i}|{j}",
                }
            )
    rng.shuffle(pairs)
    halves = [pairs[0::2], pairs[1::2]]
    folds = []
    for i in (0, 1):
        train, test = halves[i], halves[1 - i]
        best = max(GRID, key=lambda t: scores(train, t)["f1"])
        folds.append({"threshold": best, "held_out": scores(test, best)})
    held = {k: round(sum(f["held_out"][k] for f in folds) / 2, 4) for k in ("precision", "recall")}
    production = scores(pairs, syndication.MIN_JACCARD)
    called = [
        {"kind": p["kind"], "pair": p["ids"], "jaccard": round(p["a"].jaccard(p["b"]), 3)}
        for p in pairs
        if not p["copy"] and is_copy(p["a"], p["b"], syndication.MIN_JACCARD)
    ]
    kinds: dict[str, int] = {}
    for p in pairs:
        kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
    result = {
        "pairs": kinds,
        "held_out": held,
        "folds": folds,
        "at_production_threshold": {"threshold": syndication.MIN_JACCARD, **production},
        "negatives_called_copies": called,
    }
    path = write_result("syndication", result)
    print(f"pairs {kinds}")
    print(
        f"held-out precision {held['precision']:.3f} recall {held['recall']:.3f}; folds chose",
        [f["threshold"] for f in folds],
    )
    print(f"at {syndication.MIN_JACCARD}: {production}; negatives called copies: {len(called)}")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
