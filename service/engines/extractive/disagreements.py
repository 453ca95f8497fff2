"""Where sources differ: sentence pairs from different articles about the same matter that
give different figures for the same thing, date it to different days, or describe it from
opposite sides."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.engines.extractive.sentences import Sentence
from service.engines.extractive.terms import stemmer, terms

# Cosine similarity above which two sentences are taken to be about the same matter; set
# by hand with the engine's first version, no calibration recorded.
MIN_SIMILARITY = 0.45
# Opposite framings are weaker evidence of a disagreement than different figures, so a
# framing pair ranks as if it were this much less similar.
FRAMING_PENALTY = 0.1
# Two similar sentences dated to different days may tell of two events, so a date pair
# ranks between a figure pair and a framing pair.
DATE_PENALTY = 0.05
DATE_TOPIC = "when it happened"
# Share of the shorter sentence's terms (dates aside) the other must have for two dates
# to be two accounts of one event; set by hand on the constructed tests' pairs.
SAME_EVENT_OVERLAP = 0.5
# A summary's "where sources differ" stays short: the strongest few pairs.
MAX_DISAGREEMENTS = 3

_FIGURE = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(%|percent\b|per cent\b)?"
    r"(?:\s+(?:of\s+)?(?:the\s+)?)?([a-z]+(?:\s+[a-z]+)?)?",
    re.IGNORECASE,
)
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# A calendar day ("March 3", "3 March", "2024-03-03") or a weekday ("on Monday").
_CALENDAR_DAY = re.compile(
    rf"\b(?:({_MONTHS})\s+(\d{{1,2}})(?:st|nd|rd|th)?|(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?"
    rf"({_MONTHS}))\b(?:,?\s+\d{{4}})?|\b\d{{4}}-(\d{{2}})-(\d{{2}})\b",
    re.IGNORECASE,
)
_WEEKDAY = re.compile(rf"\bon\s+({_WEEKDAYS})\b", re.IGNORECASE)
_UNIT_SKIP = frozenset({"and", "or", "to", "in", "on", "at", "the", "a", "of", "by", "for"})
_YEAR = re.compile(r"(19|20)\d\d")

# Pairs of framings that describe the same thing from opposite sides.
FRAMINGS: tuple[tuple[str, str, str], ...] = (
    ("liberat", "occup", "how control of territory is described"),
    ("liberat", "invasion", "how the military advance is described"),
    ("terroris", "fighters", "how the armed groups are described"),
    ("provocation", "response", "how the attack is characterised"),
    ("incursion", "invasion", "how the cross-border operation is described"),
    ("recaptur", "seized control", "who holds the territory"),
)


def days(text: str) -> dict[str, set[str]]:
    """The days a sentence dates things to, by kind: calendar days as "month-day" and
    weekdays ("on Monday")."""
    out: dict[str, set[str]] = defaultdict(set)
    months = _MONTHS.split("|")
    for m in _CALENDAR_DAY.finditer(text):
        if m.group(1):
            out["date"].add(f"{months.index(m.group(1).lower()) + 1}-{int(m.group(2))}")
        elif m.group(4):
            out["date"].add(f"{months.index(m.group(4).lower()) + 1}-{int(m.group(3))}")
        else:
            out["date"].add(f"{int(m.group(5))}-{int(m.group(6))}")
    for m in _WEEKDAY.finditer(text):
        out["weekday"].add(m.group(1).lower())
    return out


def figures(text: str) -> dict[str, set[str]]:
    """Numbers keyed by the word they count ("people" -> {"121,000"}); the numbers of
    dates ("March 3") are days, not figures."""
    out: dict[str, set[str]] = defaultdict(set)
    text = _CALENDAR_DAY.sub(" ", text)
    for m in _FIGURE.finditer(text):
        number, pct, unit = m.group(1), m.group(2), m.group(3)
        if pct:
            key = "percent"
        elif unit:
            first = unit.split()[0].lower()
            if first in _UNIT_SKIP or first.isdigit():
                continue
            key = stemmer().stemWord(first)
        else:
            continue
        if _YEAR.fullmatch(number):
            continue  # a year, not a figure
        out[key].add(number.replace(",", ""))
    return out


def same_event(a: str, b: str) -> bool:
    """Whether two sentences tell of one event in mostly the same words: two dates in
    sentences that merely share a subject ("evacuated on Monday", "receded on Friday")
    are two events, not a disagreement."""
    ta, tb = set(terms(_CALENDAR_DAY.sub(" ", a))), set(terms(_CALENDAR_DAY.sub(" ", b)))
    if not ta or not tb:
        return False
    return len(ta & tb) / min(len(ta), len(tb)) >= SAME_EVENT_OVERLAP


def unit_word(text: str, stem: str) -> str:
    """The word of ``text`` that a figure's stem came from ("peopl" -> "people"), so the
    topic reads as the source wrote it."""
    for word in re.findall(r"[a-z]+", text.lower()):
        if stemmer().stemWord(word) == stem:
            return word
    return stem


@dataclass
class Disagreement:
    topic: str
    a: Sentence
    b: Sentence


def _opposite_framing(a: str, b: str) -> str | None:
    """The topic of a framing pair that ``a`` and ``b`` (lower-cased) take opposite sides
    of, each using only its own side's word."""
    for x, y, topic in FRAMINGS:
        if (x in a and y in b and x not in b) or (y in a and x in b and y not in b):
            return topic
    return None


def find_disagreements(sentences: Sequence[Sentence], vectors: np.ndarray) -> list[Disagreement]:
    """Sentence pairs from different articles on the same matter with different figures
    or opposite framings, most similar first, each sentence in one pair at most."""
    found: list[tuple[float, Disagreement]] = []
    figs = [figures(s.text) for s in sentences]
    dated = [days(s.text) for s in sentences]
    lowered = [s.text.lower() for s in sentences]
    sims = vectors @ vectors.T if len(sentences) else np.zeros((0, 0))
    for i in range(len(sentences)):
        for j in range(i + 1, len(sentences)):
            if sentences[i].article.id == sentences[j].article.id:
                continue
            sim = float(sims[i, j])
            if sim < MIN_SIMILARITY:
                continue
            unit = next(
                (u for u in set(figs[i]) & set(figs[j]) if figs[i][u].isdisjoint(figs[j][u])),
                None,
            )
            if unit is not None:
                found.append(
                    (
                        sim,
                        Disagreement(
                            f"figures for “{unit_word(sentences[i].text, unit)}”",
                            sentences[i],
                            sentences[j],
                        ),
                    )
                )
                continue
            kind = next(
                (k for k in set(dated[i]) & set(dated[j]) if dated[i][k].isdisjoint(dated[j][k])),
                None,
            )
            if kind is not None and same_event(sentences[i].text, sentences[j].text):
                found.append(
                    (sim - DATE_PENALTY, Disagreement(DATE_TOPIC, sentences[i], sentences[j]))
                )
                continue
            topic = _opposite_framing(lowered[i], lowered[j])
            if topic is not None:
                found.append(
                    (sim - FRAMING_PENALTY, Disagreement(topic, sentences[i], sentences[j]))
                )
    found.sort(key=lambda x: -x[0])
    out: list[Disagreement] = []
    used: set[tuple[str, int]] = set()
    for _, d in found:
        if d.a.key in used or d.b.key in used:
            continue
        out.append(d)
        used |= {d.a.key, d.b.key}
        if len(out) >= MAX_DISAGREEMENTS:
            break
    return out
