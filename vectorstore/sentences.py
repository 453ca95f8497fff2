"""Sentence spans of a text, with no data download (sentencex is rule-based)."""

from __future__ import annotations

import sentencex


def sentence_spans(text: str, language: str = "en") -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence, trimmed of surrounding whitespace.

    Spans come from the splitter's own offsets and are checked against the text, so a
    splitter quirk can never shift a citation.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in sentencex.get_sentence_boundaries(language, text):
        start, end = piece["start_index"], piece["end_index"]
        if text[start:end] != piece["text"]:
            # Offsets disagree with the text: find the piece from where we are instead.
            found = text.find(piece["text"], cursor)
            if found < 0:
                continue
            start, end = found, found + len(piece["text"])
        cursor = end
        # Trim whitespace so a span never starts or ends on a blank.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            spans.append((start, end))
    if not spans and text.strip():
        start = len(text) - len(text.lstrip())
        spans.append((start, len(text.rstrip())))
    return spans
