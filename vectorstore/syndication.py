"""Syndicated copies: the same story text published by several outlets, found at ingest.

Each article gets a MinHash signature (datasketch) of its word shingles. The signature's
bands are stored as plain strings in the article's record, so finding the copies of a new
article is one metadata query against the shared store (any replica, no in-memory index to
rebuild); the candidates' signatures then estimate the Jaccard similarity, and a copy close
enough joins the group of the copy it matches. The group's id is its first stored member.

Shingles are five-word windows of the lower-cased words: a wire story with another outlet's
boilerplate or a changed headline keeps most of its shingles, while two reports of the same
event in their own words share few. bench/syndication.py measures it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash

NUM_PERM = 64
# 32 bands of 2 rows: a pair with Jaccard 0.4 shares a band with probability ~0.996, one at
# 0.1 with ~0.27; the estimate on the full signature then decides.
BANDS = 32
ROWS = NUM_PERM // BANDS
SHINGLE_WORDS = 5
SEED = 7
# Estimated Jaccard of shingles from which two articles are one story's copies: the higher
# of the two folds' choices in bench/syndication.py (bench/results/syndication.json; the
# other fold chose 0.15). Pairs below it rarely share a band anyway.
MIN_JACCARD = 0.2
# Too short to tell a copy from a shared sentence or two.
MIN_SHINGLES = 20
BAND_FIELDS = tuple(f"lsh_{i}" for i in range(BANDS))
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Signature:
    values: np.ndarray  # NUM_PERM uint64 hash values

    def bands(self) -> dict[str, str]:
        """The record fields that find candidate copies: one string per band."""
        out = {}
        for i, name in enumerate(BAND_FIELDS):
            band = self.values[i * ROWS : (i + 1) * ROWS].astype("<u8").tobytes()
            out[name] = f"{i}:{band.hex()}"
        return out

    def encode(self) -> str:
        return base64.b64encode(self.values.astype("<u8").tobytes()).decode()

    @classmethod
    def decode(cls, text: str) -> Signature:
        return cls(np.frombuffer(base64.b64decode(text), dtype="<u8").copy())

    def jaccard(self, other: Signature) -> float:
        return float(np.mean(self.values == other.values))


def shingles(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def signature(text: str) -> Signature | None:
    """The article's signature, or None when it is too short to be compared."""
    grams = shingles(text)
    if len(grams) < MIN_SHINGLES:
        return None
    mh = MinHash(num_perm=NUM_PERM, seed=SEED)
    mh.update_batch([g.encode() for g in grams])
    return Signature(np.asarray(mh.hashvalues, dtype=np.uint64))


def candidate_filter(sig: Signature) -> dict:
    """A Chroma ``where`` matching records that share at least one band with ``sig``."""
    return {"$or": [{name: value} for name, value in sig.bands().items()]}


def best_match(
    sig: Signature, candidates: Sequence[tuple[str, str, str | None]], min_jaccard: float
) -> tuple[str, float] | None:
    """The group a new article joins, from (id, encoded signature, group) candidates."""
    scored = [
        (Signature.decode(enc).jaccard(sig), group or aid) for aid, enc, group in candidates if enc
    ]
    scored = [s for s in scored if s[0] >= min_jaccard]
    if not scored:
        return None
    score, group = max(scored)
    return group, score
