"""Claim/quote pairs whose claims people wrote: Multi-News summary sentences and their sources.

The synthetic set (bench/claims_dataset.py) rewrites a quote by rule, so its faithful claims
stay close to their quotes. Here the claims are sentences of Multi-News' human-written
reference summaries: real paraphrases, shorter or longer than the source, with their own
wording and order. Each is paired with the source sentence that says it, found by the
embedding model (cosine of all-MiniLM-L6-v2 vectors, over the five source sentences that
share the most content words with it). The alignment does not use any signal of the claim
check, so the faithful class is not pre-filtered to what the check accepts.

Labels are as good as the alignment: a summary sentence can merge facts from two places,
and then its best source sentence supports only part of it. A claim check *should* drop such
a claim (its quote does not say all of it), so the faithful rate here is a lower bound;
bench/claims.py lists the dropped faithful pairs for reading.

Lies are made from the human claims, not from the quotes, so each is a paraphrase with one
falsehood in it: a number of the claim changed, a named entity swapped for another of the
same shape from a different story, a negation added or removed, or (``unrelated``) another
summary sentence of the same story citing this quote, one the embedding model finds unlike
it: the wrong sentence of the right article, the likeliest real mistake.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.claims_dataset import Entities, entity_swap, negation, number_swap
from bench.common import ROOT
from service.claim_check import numbers
from service.engines.extractive.terms import terms
from vectorstore.sentences import sentence_spans

SEED = 13
# The reader's labels of the aligned pairs, by pair id (see the file's "how" field).
LABELS_PATH = ROOT / "bench" / "claims_human_labels.json"
# A summary sentence is paired with a source sentence at least this close (cosine): read on
# a sample, pairs from 0.7 up say the same thing in other words; below, they share a topic.
MIN_ALIGNMENT = 0.7
# "Unrelated": another summary sentence of the same story at most this close to the quote.
MAX_UNRELATED = 0.35
CANDIDATES = 5
CONTEXT_CHARS = 300
# Newser's summaries name the outlet they summarise ("..., the AP reports", "According to
# CNN, ..."). Multi-News keeps no outlet with its documents, so such a name can't be
# checked here; in the service the cited article's outlet, author and title are part of the
# context a name may be found in. The attribution is cut from the claim, nothing else.
_OUTLET = r"(?:the )?[A-Z][\w.&'’-]*(?: (?:of |the )?[A-Z][\w.&'’-]*){0,5}"
_ATTRIBUTIONS = (
    re.compile(rf"^(?:According to|Per|As) {_OUTLET}(?: reports)?, "),
    re.compile(rf"^{_OUTLET} (?:reports|says|notes) (?:that )?(?=[a-z\"“]|the |[A-Z])"),
    re.compile(
        rf",? (?:according to|per|reports|writes|notes|tells|via) {_OUTLET}(?= ?[.!?]?[\"”]?$)"
    ),
    re.compile(
        rf",? (?:[A-Z][\w.'’-]* ){{0,3}}(?:writes|says|notes|adds|reports|explains)"
        rf"(?: [\w .'’-]{{0,40}})?(?: at| in| for) {_OUTLET}"
        r"(?= ?[.!?]?[\"”]?$)"
    ),
    re.compile(
        rf",? {_OUTLET}(?:'s [\w ]{{1,30}})? (?:reports|notes|says|writes|adds|explains)(?=[.!?]?$)"
    ),
)


@dataclass(frozen=True)
class Sentence:
    cluster: int
    doc: str
    text: str
    start: int
    end: int


def without_attribution(claim: str) -> str:
    for pattern in _ATTRIBUTIONS:
        cut = pattern.sub("", claim).strip()
        if cut != claim and len(cut.split()) >= 5:
            claim = cut[:1].upper() + cut[1:]
            if claim[-1] not in '.!?"”':
                claim += "."
    return claim


def _sentences(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in sentence_spans(text) if lo <= len(text[s:e].split()) <= hi]


def read_clusters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _vectors(texts: list[str], embed: Any, cache: Path | None) -> np.ndarray:
    """Embeddings of ``texts``, cached on disk by content (embedding thousands of sentences
    takes minutes on two cores)."""
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = cache / f"claims_human_{key}.npy" if cache else None
    if path and path.is_file():
        return np.load(path)
    vecs = np.asarray(embed(texts), dtype=np.float32)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vecs)
    return vecs


@dataclass
class Aligned:
    """Human summary sentences, each with the source sentence that says it."""

    pairs: list[dict[str, Any]]
    claims: list[tuple[int, str]]
    claim_vecs: np.ndarray
    docs: dict[str, str]


def pair_id(claim: str, quote: str) -> str:
    return hashlib.sha256(f"{claim}\x00{quote}".encode()).hexdigest()[:12]


def align(path: Path, embed: Any, cache: Path | None = None) -> Aligned:
    """Every summary sentence whose closest source sentence is at least MIN_ALIGNMENT close,
    in a seeded random order."""
    clusters = read_clusters(path)
    docs: dict[str, str] = {}
    sources: list[Sentence] = []
    claims: list[tuple[int, str]] = []
    for c, cl in enumerate(clusters):
        for d, text in enumerate(cl["documents"]):
            doc = f"{c}-{d}"
            docs[doc] = text
            sources += [Sentence(c, doc, text[s:e], s, e) for s, e in _sentences(text, 6, 80)]
        summary = cl["reference_summary"].lstrip("– -")
        claims += [
            (c, without_attribution(summary[s:e].strip())) for s, e in _sentences(summary, 8, 60)
        ]

    by_cluster: dict[int, list[int]] = {}
    for i, s in enumerate(sources):
        by_cluster.setdefault(s.cluster, []).append(i)
    source_terms = [set(terms(s.text)) for s in sources]
    candidates: list[list[int]] = []
    for c, claim in claims:
        want = set(terms(claim))
        pool = by_cluster.get(c, [])
        pool = sorted(pool, key=lambda i: -len(want & source_terms[i]))[:CANDIDATES]
        candidates.append(pool)
    needed = sorted({i for pool in candidates for i in pool})
    texts = [claim for _, claim in claims] + [sources[i].text for i in needed]
    vecs = _vectors(texts, embed, cache)
    claim_vecs = vecs[: len(claims)]
    source_vec = dict(zip(needed, vecs[len(claims) :], strict=True))

    pairs: list[dict[str, Any]] = []
    for k, ((c, claim), pool) in enumerate(zip(claims, candidates, strict=True)):
        if not pool:
            continue
        best_sim, best = max((float(claim_vecs[k] @ source_vec[i]), i) for i in pool)
        if best_sim < MIN_ALIGNMENT:
            continue
        src = sources[best]
        text = docs[src.doc]
        pairs.append(
            {
                "id": pair_id(claim, src.text),
                "cluster": c,
                "doc": src.doc,
                "claim": claim,
                "quotes": [src.text],
                "context": text[max(0, src.start - CONTEXT_CHARS) : src.end + CONTEXT_CHARS],
                "alignment": round(best_sim, 3),
                "quote_vector": source_vec[best],
            }
        )
    random.Random(SEED).shuffle(pairs)
    return Aligned(pairs, claims, claim_vecs, docs)


def read_labels(path: Path) -> dict[str, str]:
    """Reader labels by pair id: "supported" or "says more"."""
    data = json.loads(path.read_text("utf-8"))
    return {row["id"]: row["label"] for row in data["pairs"]}


def build(aligned: Aligned, labels: dict[str, str], per_class: int = 60) -> list[dict[str, Any]]:
    """Labelled pairs: {"label", "claim", "quotes", "context", "article", ...}.

    ``faithful`` and ``says more`` are the human claims as a reader labelled them; the lies
    are made from the claims labelled supported, so each lie's one falsehood is the one
    made. All labelled pairs are used: no class is sampled down."""
    rng = random.Random(SEED)
    ents = Entities.from_corpus([{"id": d, "text": t} for d, t in aligned.docs.items()])
    made: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("faithful", "says more", "number", "entity", "negation", "unrelated")
    }

    def unrelated(pair: dict[str, Any]) -> str | None:
        others = [
            (claim, k)
            for k, (c, claim) in enumerate(aligned.claims)
            if c == pair["cluster"] and claim != pair["claim"]
        ]
        rng.shuffle(others)
        for claim, k in others:
            if float(aligned.claim_vecs[k] @ pair["quote_vector"]) <= MAX_UNRELATED:
                return claim
        return None

    def make(kind: str, pair: dict[str, Any]) -> str | None:
        claim = pair["claim"]
        if kind == "faithful":
            return claim
        if kind == "number":
            # A number swap is a lie only of a number the quote states.
            quoted = numbers(" ".join(pair["quotes"]))
            return number_swap(claim, rng) if numbers(claim) and numbers(claim) <= quoted else None
        if kind == "entity":
            return entity_swap(claim, pair["doc"], ents, rng)
        if kind == "negation":
            return negation(claim)
        return unrelated(pair)

    for pair in aligned.pairs:
        label = labels.get(pair["id"])
        if label is None:
            continue
        row = {k: v for k, v in pair.items() if k != "quote_vector"}
        row["article"] = aligned.docs[pair["doc"]]
        if label == "says more":
            made["says more"].append(row | {"label": "says more"})
            continue
        # Every supported claim is kept as it is and, where each can be made, as each lie.
        for kind in (k for k in made if k != "says more"):
            claim = make(kind, pair)
            if claim and (kind == "faithful" or claim != pair["claim"]):
                human = pair["claim"]
                made[kind].append(row | {"label": kind, "claim": claim, "human_claim": human})
    return [p for rows in made.values() for p in rows]
