"""What "neutral" means operationally: loaded words only inside quotes or attributions."""

from __future__ import annotations

import re
from typing import Literal

# Words that take a side in the conflicts our seeds cover; a summary may carry them only
# as someone's words.
LOADED_TERMS = (
    "liberat",  # liberate, liberated, liberation
    "terroris",  # terrorist, terrorism
    "provocation",
    "occupation",
    "occupier",
    "occupied",
    "aggression",
    "aggressor",
    "regime",
    "invader",
    "nazi",
    "genocide",
    "martyr",
    "heroic",
    "puppet",
)

ATTRIBUTION_CUES = re.compile(
    r"\b(said|says|say|claimed|claims|stated|states|told|called|calls|described|describes|"
    r"characteri[sz]ed|characteri[sz]es|according to|reported|reports|argued|argues|"
    r"insisted|warned|alleged|accused|framed|frames|labell?ed|asserted|declared|"
    r"announced|noted|emphasi[sz]ed)\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"|‘[^’]*’(?!\w)|(?<!\w)'[^']*'(?!\w)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def own_voice(text: str) -> str:
    """The part of a text said in the writer's own voice: quotes and attributed
    sentences removed."""
    unquoted = _QUOTED.sub(" ", text)
    kept = [s for s in _SENTENCE.split(unquoted) if not ATTRIBUTION_CUES.search(s)]
    return " ".join(kept)


def loaded_terms_in_own_voice(text: str) -> list[str]:
    voice = own_voice(text).lower()
    return [term for term in LOADED_TERMS if term in voice]


def contains_loaded_term(text: str) -> bool:
    lowered = text.lower()
    return any(term in lowered for term in LOADED_TERMS)


def source_label(title: str, source: str | None) -> str:
    """How a point names its source; an unknown outlet is never guessed."""
    if source:
        return source
    if len(title) > 50:
        title = title[:48].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return f"The article “{title}”"


def attributed_quote(title: str, source: str | None, quote: str) -> str:
    # The words stay the source's, in quotes, so loaded language in them is never the
    # summary's own voice.
    return f"{source_label(title, source)} reports: “{quote}”"


# ---- voices with offsets (the coverage table, service/coverage.py) -------------------

Voice = Literal["quoted", "attributed", "own"]
_VOICE_CODE: dict[Voice, int] = {"own": 0, "quoted": 1, "attributed": 2}
_CODE_VOICE: dict[int, Voice] = {v: k for k, v in _VOICE_CODE.items()}
# Own voice becomes attributed; what is quoted stays quoted.
_ATTRIBUTE = bytes([2, 1, 2]) + bytes(range(3, 256))
_RUNS = re.compile(rb"\x00+|\x01+|\x02+")
_SENTENCE_OR_LINE = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")


def voice_spans(text: str) -> list[tuple[int, int, Voice]]:
    """``text`` cut into maximal spans by who is speaking: inside quotation marks
    ("quoted"), in a sentence that attributes what it says ("attributed"), or in the
    writer's own voice ("own"). ``own_voice``'s reading (the same quote marks and cues),
    on a whole article: a line break also ends a sentence, since a headline or a
    dateline has no full stop and would otherwise run into the sentence after it."""
    labels = bytearray(len(text))
    # Quotes are blanked out with as many spaces as they had characters, so sentences are
    # cut where own_voice cuts them and offsets still index ``text``.
    masked = list(text)
    for m in _QUOTED.finditer(text):
        labels[m.start() : m.end()] = bytes([_VOICE_CODE["quoted"]]) * (m.end() - m.start())
        masked[m.start() : m.end()] = " " * (m.end() - m.start())
    unquoted = "".join(masked)
    start = 0
    for cut in [*_SENTENCE_OR_LINE.finditer(unquoted), None]:
        end = cut.start() if cut else len(unquoted)
        if ATTRIBUTION_CUES.search(unquoted[start:end]):
            labels[start:end] = labels[start:end].translate(_ATTRIBUTE)
        start = cut.end() if cut else end
    return [(m.start(), m.end(), _CODE_VOICE[m.group()[0]]) for m in _RUNS.finditer(labels)]


_WORD = re.compile(r"\w+")
# Words that begin with a loaded term and take no side.
NOT_LOADED = ("regimen", "regiment", "occupational")


def loaded_words(text: str) -> list[str]:
    """The words of ``text`` that begin with a loaded term, lower-cased, in order
    ("liberation", "occupied"). Whole words from their start, so "preoccupied" and
    "regimen" are not counted although their letters contain a term."""
    out: list[str] = []
    for m in _WORD.finditer(text):
        word = m.group().lower()
        if word.startswith(LOADED_TERMS) and not word.startswith(NOT_LOADED):
            out.append(word)
    return out
