"""Locate quoted text in an article's canonical text as an exact character span.

Quotes produced by an LLM (or an extractive engine) are often slightly off from
the source: curly vs straight quotes, different dashes, collapsed whitespace,
case, a dropped trailing period, a typo. ``locate_quote`` tries, in order, an
exact match, a match on normalised text mapped back to original offsets, and a
bounded fuzzy match. Every span it returns satisfies
``0 <= start < end <= len(text)``, so ``text[start:end]`` is always a real
substring of the article.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from rapidfuzz import fuzz

Method = Literal["exact", "normalized", "fuzzy"]

MIN_NONSPACE_CHARS = 8
MIN_FUZZY_CHARS = 20
# Above this many normalised chars a full fuzzy scan is too slow; search only
# around anchor n-grams instead.
FULL_FUZZY_SCAN_CHARS = 200_000
# Beyond this even the anchor search is not worth it.
MAX_FUZZY_TEXT_CHARS = 5_000_000
_ANCHOR_LEN = 8
_MAX_ANCHOR_GRAMS = 16
_MAX_ANCHORS_USED = 4
_MAX_HITS_PER_ANCHOR = 16
_MAX_WINDOWS = 16
_TRAILING_PUNCT = ".,;:"

_SINGLE_QUOTES = "\u2018\u2019\u201a\u201b\u2032"  # ‘ ’ ‚ ‛ ′
_DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f\u2033"  # “ ” „ ‟ ″
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"  # ‐ ‑ ‒ – — ― −
# Invisible format characters; dropped rather than turned into spaces because
# they usually sit inside words ("foo\u200bbar" should match "foobar").
_ZERO_WIDTH = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
# Every char for which str.isspace() is true lies below U+3001.
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
_QUOTE_MARKS = "\"'`" + _SINGLE_QUOTES + _DOUBLE_QUOTES + "\u00ab\u00bb\u2039\u203a"
_ELLIPSES = ("...", "\u2026")

# One-to-one folds, so offsets are unchanged. Applied with str.replace per
# char present: str.translate with a dict table is ~10x slower on non-ASCII text.
_FOLDS: tuple[tuple[str, str], ...] = (
    *((c, "'") for c in _SINGLE_QUOTES),
    *((c, '"') for c in _DOUBLE_QUOTES),
    *((c, "-") for c in _DASHES),
    *((c, " ") for c in _WHITESPACE if c != " "),
)
_ZW_CLASS = "".join(f"\\u{ord(c):04x}" for c in _ZERO_WIDTH)
# Separator runs that need rewriting: two or more spaces/dashes/zero-width
# chars, or a lone zero-width char. Plain single spaces and lone hyphens are
# left alone so the common case stays a cheap slice copy.
_ANOMALY = re.compile(f"[ \\-{_ZW_CLASS}]{{2,}}|[{_ZW_CLASS}]")
_CASEFOLD_CHUNK = 256


@dataclass(frozen=True)
class Located:
    start: int
    end: int
    method: Method
    score: float  # 1.0 for exact/normalized; fuzzy similarity 0..1 otherwise


def clean_quote(quote: str) -> str:
    """Strip surrounding whitespace, quote marks and ellipses from a quote."""
    q = quote
    while True:
        prev = q
        q = q.strip().strip(_QUOTE_MARKS)
        for ell in _ELLIPSES:
            if q.endswith(ell):
                q = q[: -len(ell)]
            if q.startswith(ell):
                q = q[len(ell) :]
        if q == prev:
            return q


def _casefold_with_map(t: str) -> tuple[str, list[int] | None]:
    """Casefold ``t``; the map is None when every char folds to exactly one char."""
    folded = t.casefold()
    # casefold is context-free and never yields an empty string per char, so
    # equal total length means the fold was one-to-one everywhere.
    if len(folded) == len(t):
        return folded, None
    parts: list[str] = []
    cmap: list[int] = []
    for a in range(0, len(t), _CASEFOLD_CHUNK):
        chunk = t[a : a + _CASEFOLD_CHUNK]
        f = chunk.casefold()
        if len(f) == len(chunk):
            parts.append(f)
            cmap.extend(range(a, a + len(chunk)))
            continue
        for k, ch in enumerate(chunk):
            fc = ch.casefold()
            parts.append(fc)
            cmap.extend([a + k] * len(fc))
    return "".join(parts), cmap


def normalize_with_map(s: str) -> tuple[str, list[int]]:
    """Normalised string and, for each of its characters, the index in s it came from."""
    t = s
    for src, dst in _FOLDS:
        if src in t:
            t = t.replace(src, dst)
    folded, cmap = _casefold_with_map(t)
    out: list[str] = []
    omap: list[int] = []
    pos = 0
    for m in _ANOMALY.finditer(folded):
        a, b = m.span()
        out.append(folded[pos:a])
        omap.extend(cmap[pos:a] if cmap is not None else range(pos, a))
        run = m.group()
        # A dash absorbs the spaces around it ("a - b" == "a—b"); otherwise the
        # run becomes one space, or nothing if it was only zero-width chars.
        k = run.find("-")
        if k < 0:
            k = run.find(" ")
        if k >= 0:
            out.append(run[k])
            omap.append(cmap[a + k] if cmap is not None else a + k)
        pos = b
    out.append(folded[pos:])
    omap.extend(cmap[pos:] if cmap is not None else range(pos, len(folded)))
    norm = "".join(out)
    # Runs are collapsed, so at most one space can sit at either end.
    if norm.endswith(" "):
        norm = norm[:-1]
        omap.pop()
    if norm.startswith(" "):
        norm = norm[1:]
        del omap[0]
    return norm, omap


@lru_cache(maxsize=8)
def _normalized_text(text: str) -> tuple[str, list[int]]:
    # Callers locate many quotes in the same article; don't re-normalise it each time.
    return normalize_with_map(text)


def _nonspace_count(s: str) -> int:
    return sum(1 for c in s if not c.isspace())


def _find_aligned(nt: str, nmap: list[int], nq: str) -> tuple[int, int] | None:
    """First match of ``nq`` in ``nt`` that does not cut a multi-char casefold expansion."""
    n = len(nq)
    p = nt.find(nq)
    while p != -1:
        e = p + n
        # Starting/ending inside e.g. "ß" -> "ss" would make the span's own
        # normalisation differ from the quote's.
        if (p == 0 or nmap[p - 1] != nmap[p]) and (e == len(nt) or nmap[e] != nmap[e - 1]):
            return nmap[p], nmap[e - 1] + 1
        p = nt.find(nq, p + 1)
    return None


def _anchor_windows(nq: str, nt: str) -> list[tuple[int, int]]:
    """Windows of ``nt`` around occurrences of the quote's rarest n-grams."""
    last = len(nq) - _ANCHOR_LEN
    step = max(1, last // (_MAX_ANCHOR_GRAMS - 1))
    offsets = sorted(set(range(0, last + 1, step)) | {last})
    grams: list[tuple[int, int, str]] = []
    for off in offsets:
        gram = nq[off : off + _ANCHOR_LEN]
        count = nt.count(gram)
        if count:
            grams.append((count, off, gram))
    # Rarest first: a typo kills only the grams it touches, and rare grams give
    # few, well-placed windows.
    grams.sort()
    slack = max(16, len(nq) // 10)
    windows: list[tuple[int, int]] = []
    for _, off, gram in grams[:_MAX_ANCHORS_USED]:
        i = nt.find(gram)
        hits = 0
        while i != -1 and hits < _MAX_HITS_PER_ANCHOR:
            lo = max(0, i - off - slack)
            hi = min(len(nt), i - off + len(nq) + slack)
            windows.append((lo, hi))
            hits += 1
            i = nt.find(gram, i + 1)
    windows.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in windows:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged[:_MAX_WINDOWS]


def _refine(nq: str, nt: str, s: int, e: int, radius: int = 4) -> tuple[int, int, float]:
    """Nudge window ends a few chars to best match the quote (partial_ratio keeps length fixed)."""
    best = (fuzz.ratio(nq, nt[s:e]), 0, s, e)
    for ds in range(-radius, radius + 1):
        for de in range(-radius, radius + 1):
            s2, e2 = s + ds, e + de
            if s2 < 0 or e2 > len(nt) or e2 - s2 < 1 or (ds == 0 and de == 0):
                continue
            score = fuzz.ratio(nq, nt[s2:e2])
            # Prefer the smallest adjustment among equal scores.
            cand = (score, -(abs(ds) + abs(de)), s2, e2)
            if cand[:2] > best[:2]:
                best = cand
    return best[2], best[3], best[0]


def _fuzzy(nq: str, nt: str, nmap: list[int], text: str, min_score: float) -> Located | None:
    if len(nq) > len(nt) or len(nt) > MAX_FUZZY_TEXT_CHARS:
        return None
    cutoff = min_score * 100
    small = len(nt) <= FULL_FUZZY_SCAN_CHARS
    windows = [(0, len(nt))] if small else _anchor_windows(nq, nt)
    best: tuple[float, int, int] | None = None
    scanned = 0
    for lo, hi in windows:
        # Repetitive long texts can yield many windows; cap the total work at
        # about one full scan of a normal-sized article.
        if scanned > FULL_FUZZY_SCAN_CHARS:
            break
        scanned += hi - lo
        if hi - lo < len(nq):
            # partial_ratio swaps its arguments when the haystack is shorter.
            hi = min(len(nt), lo + len(nq))
            lo = max(0, hi - len(nq))
        res = fuzz.partial_ratio_alignment(nq, nt[lo:hi], score_cutoff=cutoff)
        if res is not None and (best is None or res.score > best[0]):
            best = (res.score, lo + res.dest_start, lo + res.dest_end)
    if best is None:
        return None
    s, e, score = _refine(nq, nt, best[1], best[2])
    score = max(score, best[0])
    while s < e and nt[s] == " ":
        s += 1
    while e > s and nt[e - 1] == " ":
        e -= 1
    if s >= e:
        return None
    start, end = nmap[s], nmap[e - 1] + 1
    # The normalised window never starts on a space, but the original may still
    # have whitespace or invisible chars at the mapped edges.
    while start < end and (text[start].isspace() or text[start] in _ZERO_WIDTH):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _ZERO_WIDTH):
        end -= 1
    if start >= end:
        return None
    return Located(start, end, "fuzzy", min(1.0, score / 100))


def locate_quote(
    quote: str, text: str, *, min_fuzzy_score: float = 0.9, max_quote_chars: int = 2000
) -> Located | None:
    """Find ``quote`` in ``text``; return its span, or None if it isn't there."""
    q = clean_quote(quote)
    if not q or len(q) > max_quote_chars or _nonspace_count(q) < MIN_NONSPACE_CHARS:
        return None

    i = text.find(q)
    if i >= 0:
        return Located(i, i + len(q), "exact", 1.0)

    nq, _ = normalize_with_map(q)
    if not nq:
        return None
    nt, nmap = _normalized_text(text)
    span = _find_aligned(nt, nmap, nq)
    if span is None and nq[-1] in _TRAILING_PUNCT:
        # LLMs often end a quote with "." where the source continues with "," etc.
        trimmed = nq[:-1].rstrip(" ")
        if _nonspace_count(trimmed) >= MIN_NONSPACE_CHARS:
            span = _find_aligned(nt, nmap, trimmed)
    if span is not None:
        return Located(span[0], span[1], "normalized", 1.0)

    if len(nq) >= MIN_FUZZY_CHARS:
        return _fuzzy(nq, nt, nmap, text, min_fuzzy_score)
    return None


def span_with_context(text: str, start: int, end: int, context: int = 200) -> tuple[int, int]:
    """Widen [start, end) by about `context` chars each side, snapped to whitespace.

    The result is clamped to the text.
    """
    n = len(text)
    start = min(max(start, 0), n)
    end = min(max(end, 0), n)
    if start > end:
        raise ValueError(f"start {start} > end {end}")
    context = max(context, 0)

    lo = max(0, start - context)
    if lo > 0:
        # Begin just after the first whitespace in the margin so we don't cut a word.
        for k in range(lo, start):
            if text[k].isspace():
                lo = k + 1
                break
    hi = min(n, end + context)
    if hi < n:
        for k in range(hi - 1, end - 1, -1):
            if text[k].isspace():
                hi = k
                break
    return lo, hi
