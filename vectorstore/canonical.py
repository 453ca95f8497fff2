"""The one canonical text of an article: every offset in Newsdesk refers to it."""

from __future__ import annotations

import re
import unicodedata

# Lines that sharing widgets and CMS templates leave in scraped articles.
_BOILERPLATE_LINE = re.compile(
    r"^(share (this|this post|this article|on \w+)|share|tweet|print( this)?( article)?|"
    r"advertisement|click to share.*|follow us on .*|subscribe( now)?|sign up for .*newsletter.*)$",
    re.IGNORECASE,
)
# A heading after which everything is a list of links to other stories.
_TRAILING_SECTION = re.compile(
    r"^(related (posts|articles|stories|news|content)|you may also like|read more|"
    r"more from .*|recommended( for you)?|trending( now)?)$",
    re.IGNORECASE,
)
_SPACE_RUN = re.compile(r"[^\S\n]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def canonicalize(raw: str) -> str:
    """Normalise line endings and whitespace and drop site boilerplate.

    NFC keeps visually identical strings byte-identical, so a quote typed or generated
    elsewhere matches. Paragraph breaks survive as one blank line because sentence and
    chunk boundaries lean on them.
    """
    text = unicodedata.normalize("NFC", raw)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    lines = [_SPACE_RUN.sub(" ", line).strip() for line in text.split("\n")]

    kept: list[str] = []
    for line in lines:
        if _TRAILING_SECTION.match(line) and kept:
            break
        if _BOILERPLATE_LINE.match(line):
            continue
        kept.append(line)

    text = "\n".join(kept)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def headline(text: str, max_chars: int = 120) -> str:
    """A title for an article that came without one.

    A short first line with no closing punctuation is a headline; otherwise the first
    sentence, cut at a word boundary.
    """
    first_line = text.split("\n", 1)[0].strip()
    if first_line and len(first_line) <= 150 and not first_line.endswith((".", "!", "?", ":")):
        return first_line
    sentence = re.split(r"(?<=[.!?])\s", first_line, maxsplit=1)[0]
    if len(sentence) <= max_chars:
        return sentence
    cut = sentence[:max_chars].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"
