"""What "neutral" means operationally: loaded words only inside quotes or attributions."""

from __future__ import annotations

import re

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
