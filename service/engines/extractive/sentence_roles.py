"""What a sentence can stand for in a briefing: an actor's view, a development, an open
question. Word lists, not models: they only need to be right more often than not, since
every pick is still a quoted source sentence."""

from __future__ import annotations

import re

_DIGIT = re.compile(r"\d")
# A capitalised word after a space: a name somewhere past the sentence's first word.
_NAMED = re.compile(r"\s[A-Z][a-z]+")

_SPEECH = (
    r"(?:said|says|stated|told|warned|claimed|argued|insisted|emphasi[sz]ed|noted|"
    r"declared|announced|urged|called|described|characteri[sz]ed|accused|vowed|"
    r"suggest(?:ed|ing)|indicated|expressed|acknowledged|outlined|highlighted|explained)"
)
_NAME = r"(?:[A-Z][\w’'\-]+(?:\s+(?:of\s+)?[A-Z][\w’'\-]+){0,4})"
_ACTOR_BEFORE = re.compile(rf"({_NAME})(?:,[^,]{{1,60}},)?\s+(?:has\s+|had\s+)?{_SPEECH}\b")
_ACTOR_AFTER = re.compile(rf"\b(?:according to|{_SPEECH} by)\s+(?:the\s+)?({_NAME})")
_TITLES = re.compile(
    r"^(?:President|Prime Minister|Former|Minister|General|Genera|Commander|Governor|"
    r"Chancellor|Secretary|Mr|Mrs|Ms|Dr|Russian|Ukrainian|U\.S\.|US|The)\s+"
)
_NOT_ACTORS = frozenset(
    {
        "The",
        "This",
        "These",
        "It",
        "He",
        "She",
        "They",
        "His",
        "Her",
        "As",
        "While",
        "But",
        "And",
        "However",
        "Moreover",
        "In",
        "On",
        "At",
    }
)


def actor_of(text: str) -> str | None:
    """Who a sentence attributes its claim to, if anyone ("Putin", "Zelensky")."""
    for pattern in (_ACTOR_BEFORE, _ACTOR_AFTER):
        m = pattern.search(text)
        if not m:
            continue
        name = m.group(1).strip()
        while True:
            stripped = _TITLES.sub("", name)
            if stripped == name:
                break
            name = stripped
        words = name.split()
        if not words or words[0] in _NOT_ACTORS:
            continue
        # "Vladimir Putin" and "Putin" are one actor: key on the last name.
        return words[-1] if len(words) <= 3 else name
    return None


_OPEN = re.compile(
    r"\b(remains? (?:to be seen|unclear|uncertain)|unclear|uncertain|whether|could|may|might|"
    r"will|would|expected|looking ahead|questions?|next|future|prospects?|risk)\b",
    re.IGNORECASE,
)
_EVENT = re.compile(
    r"\b(\w+ed|began|took|made|met|seized|fled|won|lost|struck|hit|fell|rose|led|sent|"
    r"launched|announced|visited|captured|killed|evacuated)\b"
)


def is_open_question(text: str) -> bool:
    """Speculation or uncertainty: what the sources leave open."""
    return bool(_OPEN.search(text))


def is_development(text: str) -> bool:
    """An event with something concrete in it: a figure or a named party."""
    return bool(_EVENT.search(text)) and (bool(_DIGIT.search(text)) or bool(_NAMED.search(text)))
