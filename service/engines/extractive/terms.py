"""Words as the extractive engine compares them: lower-cased, stop words out, irregular
past forms mapped to their base, Snowball-stemmed."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[^\W_]+(?:[’'][^\W_]+)?", re.UNICODE)

# English function words, plus the verbs of reporting ("said", "according") and question
# filler ("tell", "happened") that every news sentence and question shares. Written as text:
# as a list literal the formatter would give each word its own line.
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours out over own same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours also there's it's many much
    tell happened happen according report reports reported say said says
    """.split()  # noqa: SIM905
)
# Words that ask rather than say what is asked about: left out of a question's terms.
QUESTION_WORDS = frozenset(["what", "who", "whom", "whose", "which", "when", "where", "why", "how"])
# Words of one letter carry no meaning worth matching ("s" of "it's", initials).
MIN_TERM_LETTERS = 2


@lru_cache(maxsize=1)
def stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


# The stemmer leaves irregular past forms alone ("fled" vs "fleeing"); news questions
# and news copy use both, so map the common ones to their base form first.
IRREGULAR = {
    "fled": "flee",
    "fought": "fight",
    "took": "take",
    "taken": "take",
    "won": "win",
    "lost": "lose",
    "struck": "strike",
    "stricken": "strike",
    "seen": "see",
    "saw": "see",
    "met": "meet",
    "led": "lead",
    "sent": "send",
    "held": "hold",
    "fell": "fall",
    "fallen": "fall",
    "rose": "rise",
    "risen": "rise",
    "began": "begin",
    "begun": "begin",
    "told": "tell",
    "left": "leave",
    "made": "make",
    "gave": "give",
    "given": "give",
    "went": "go",
    "gone": "go",
    "came": "come",
    "chose": "choose",
    "chosen": "choose",
    "spoke": "speak",
    "spoken": "speak",
    "killed": "kill",
    "shot": "shoot",
    "hit": "hit",
    "people": "people",
    "persons": "people",
    "individuals": "people",
    "civilians": "civilian",
}


def terms(text: str) -> list[str]:
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    words = [
        IRREGULAR.get(w, w) for w in words if w not in STOPWORDS and len(w) >= MIN_TERM_LETTERS
    ]
    return stemmer().stemWords(words)


def term_forms(text: str) -> list[tuple[str, str]]:
    """(stem, surface word) pairs, the surface lower-cased and irregular forms mapped: what
    ``strict_match`` needs to tell inflections from words that merely share a stem."""
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    words = [
        IRREGULAR.get(w, w) for w in words if w not in STOPWORDS and len(w) >= MIN_TERM_LETTERS
    ]
    return list(zip(stemmer().stemWords(words), words, strict=True))


# Inflectional endings: "flood"/"flooding", "capture"/"captured" are one word, while
# "capital"/"capitalized" or "unit"/"united" only share a stem.
_INFLECTIONS = ("ing", "ies", "es", "ed", "'s", "s", "d", "e", "y")


def _bare(word: str) -> str:
    for suffix in _INFLECTIONS:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def strict_match(a: str, b: str) -> bool:
    """Whether two surface words of one stem are the same word inflected."""
    return a == b or _bare(a) == _bare(b) or _bare(a) == b or a == _bare(b)
