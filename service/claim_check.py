"""Does a claim say what its quotes say? The check every engine's claims pass before shown.

A located quote proves only that the quote is real; the claim beside it is the model's own
words. ``check_claim`` compares the two on what a lie usually changes: numbers, names,
polarity, and whether the claim is about the quote at all. Each signal is cheap and
explainable; bench/claims.py measures them on a labelled set (bench/results/claims.json).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from os.path import commonprefix

from number_parser import parse as words_to_digits

from service.engines.extractive.terms import STOPWORDS, terms

# A quote shorter than this (non-space characters) cannot carry a claim that says more than
# the quote: "8 characters that occur somewhere in the article" is the attack it stops.
MIN_QUOTE_CHARS = 20
# Share of the claim's content words (stemmed) that the quotes must contain: what every
# training split chose in bench/claims.py's 5-fold cross-validation (held-out results are
# the ones bench/results/claims.json reports for it).
MIN_OVERLAP = 0.3
# Cosine similarity of claim and quotes (all-MiniLM-L6-v2) below which a claim is dropped,
# when an embedder is wired in: one more signal. NOT yet calibrated and not wired in
# production (CitationLedger.similarity defaults to None).
MIN_SIMILARITY = 0.35

_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?!\w)")
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_SCALED = re.compile(r"(\d+(?:\.\d+)?)\s+(thousand|million|billion|trillion)\b")
# Words that flip a statement: "did not", "no", "never", "didn't".
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot)\b|n['’]t\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"\b[A-Z][\w’'.-]*")
# Capitalised for grammar, not because they name someone: sentence starts, titles, months
# are checked as words by the overlap instead.
_NOT_NAME_WORDS = (
    "i mr mrs ms dr the a an in on at this that these those it he she they we but and or if "
    "after before when while as for with by from however meanwhile still yet also"
)
_NOT_NAMES = STOPWORDS | frozenset(_NOT_NAME_WORDS.split())

Similarity = Callable[[str, str], float]


@dataclass(frozen=True)
class Support:
    ok: bool
    reason: str | None = None  # why it failed: "number", "name", "negation", ...


SUPPORTED = Support(True)


def numbers(text: str) -> set[str]:
    """The quantities in a text as canonical strings: "1,000" = "1000" = "one thousand",
    "1.5 million" = "1500000". Number words are read by number-parser."""
    digits = words_to_digits(text) if any(c.isalpha() for c in text) else text
    # number-parser writes "1.5 million" as "1.5 1000000": fold the scale back in.
    digits = re.sub(r"(\d+(?:\.\d+)?) 1(000|000000|000000000|000000000000)\b", r"\1e\2", digits)
    digits = _SCALED.sub(lambda m: f"{m.group(1)}x{m.group(2)}", digits)
    found: set[str] = set()
    for m in re.finditer(r"(\d+(?:,\d{3})*(?:\.\d+)?)(?:(e)(\d+)|x(\w+))?", digits):
        value = float(m.group(1).replace(",", ""))
        if m.group(2):
            value *= 10 ** len(m.group(3))
        elif m.group(4):
            value *= _SCALES[m.group(4)]
        found.add(f"{value:g}" if value < 1e15 else str(value))
    return found


def polarity(text: str) -> int:
    """0 when the text affirms, 1 when it negates (an even number of negations affirms)."""
    return len(_NEGATION.findall(text)) % 2


def names(text: str) -> set[str]:
    """Capitalised words that look like names (people, places, organisations), lower-cased.

    A heuristic rather than an NER model: no offline-installable NER model ships on PyPI
    under a maintained name, and a claim's names only need to be *found* in the quote.
    """
    out: set[str] = set()
    for m in _CAPITALISED.finditer(text):
        word = m.group().rstrip(".-’'").removesuffix("’s").removesuffix("'s").lower()
        if word in _NOT_NAMES:
            continue
        # "U.S." and "Jean-Luc" are matched part by part, as the quote's words are split.
        out.update(w for w in re.findall(r"\w+", word) if len(w) > 1 and not w.isdigit())
    return out


@lru_cache(maxsize=4096)
def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[\w]+", text.lower().replace("’", "'")))


# What may follow a shared stem of at least 4 letters in a name's other form: plurals,
# possessives and demonyms ("Russia"/"Russian", "Ukraine"/"Ukrainians", "China"/"Chinese",
# "Israel"/"Israeli"). Anything longer is another name: "Blacks" is not "Blackburn".
_NAME_ENDINGS = frozenset(["", "s", "es", "n", "ns", "an", "ans", "ian", "ians", "ese", "i", "is"])


def _named(name: str, known: frozenset[str]) -> bool:
    """A name is found as a word, or as the same stem with a plural or demonym ending: a
    demonym says the same place, a swap changes the stem."""
    if name in known:
        return True
    for w in known:
        stem = len(commonprefix((w, name)))
        if stem < 4:
            continue
        short, long = sorted((w[stem:], name[stem:]), key=len)
        if len(short) <= 1 and long in _NAME_ENDINGS:
            return True
    return False


def overlap(claim: str, quotes: str) -> float:
    """Share of the claim's content words (stemmed, stop words out) found in the quotes."""
    # Numbers are the number check's business; spelled out they'd count as unmatched words.
    wanted = [t for t in terms(words_to_digits(claim)) if not t.isdigit()]
    if not wanted:
        return 1.0
    have = set(terms(quotes))
    return sum(1 for t in wanted if t in have) / len(wanted)


def check_claim(
    claim: str,
    quotes: Sequence[str],
    context: str | Callable[[], str] = "",
    *,
    similarity: Similarity | None = None,
    min_overlap: float = MIN_OVERLAP,
    min_similarity: float = MIN_SIMILARITY,
    ignore_polarity: bool = False,
) -> Support:
    """Whether ``claim`` says what ``quotes`` say. ``context`` is the text around the cited
    sentences in their articles: a name there may stand behind a pronoun of the quote."""
    quoted = " ".join(q.strip() for q in quotes)
    text = claim.strip()
    if not text or not quoted:
        return Support(False, "empty")
    # The extractive engine's claims are the quotes themselves: nothing to compare.
    if text == quoted or text in quotes:
        return SUPPORTED
    if sum(1 for c in quoted if not c.isspace()) < MIN_QUOTE_CHARS:
        return Support(False, "short quote")
    if not numbers(text) <= numbers(quoted):
        return Support(False, "number")
    wanted = names(text)
    known = _words(quoted)
    if not all(_named(n, known) for n in wanted):
        known |= _words(context() if callable(context) else context)
        if not all(_named(n, known) for n in wanted):
            return Support(False, "name")
    if not ignore_polarity and polarity(text) != polarity(quoted):
        return Support(False, "negation")
    if overlap(text, quoted) < min_overlap:
        return Support(False, "overlap")
    if similarity is not None and similarity(text, quoted) < min_similarity:
        return Support(False, "similarity")
    return SUPPORTED
