"""What the templates show, computed in plain functions: highlighted spans, text with
clickable ``[n]`` markers, safe links and visible bidi controls.

Templates auto-escape every value; the one filter that returns markup (``visible``)
escapes the text itself before adding its own tags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from service.links import FRAGMENT
from service.models import Citation

# Characters that reorder the text around them (LRE/RLE/PDF/LRO/RLO, the isolates, the
# marks): an article could use them to show "exe.txt" for "txt.exe". They are shown as
# their code points instead, so what the reader sees is the order the text really has.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MARKER = re.compile(r"\[(\d+)\]")


def visible(text: str | None) -> Markup:
    """``text`` escaped, with each bidi control replaced by a visible code point."""
    escaped = str(escape(text or ""))
    return Markup(
        _BIDI_CONTROLS.sub(
            lambda m: f'<span class="ctl" title="direction control">U+{ord(m.group(0)):04X}</span>',
            escaped,
        )
    )


def visible_text(text: str | None) -> str:
    """``text`` with each bidi control written out as its code point, as plain text (for
    SVG labels, where markup can't style it); the template escapes the result."""
    return _BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group(0)):04X}]", text or "")


def safe_href(url: str | None) -> str | None:
    """An article's own URL as a link only when it is http(s): never ``javascript:``,
    ``data:`` or anything else a browser would run or open."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


@dataclass(frozen=True)
class Segment:
    """A run of article text; ``mark`` is the index of the span it belongs to (0: the
    span the link was for), None for unmarked text; ``anchor`` the element id."""

    text: str
    mark: int | None = None
    anchor: str | None = None


def highlight(text: str, spans: Sequence[tuple[int, int]]) -> list[Segment]:
    """``text`` cut into segments at the spans' edges. Where spans overlap, the earlier
    span in the list wins, so the first span is always one unbroken mark whose text is
    exactly ``text[start:end]``. Spans outside the text are dropped."""
    valid = [(s, e) for s, e in spans if 0 <= s < e <= len(text)]
    edges = sorted({0, len(text), *(p for span in valid for p in span)})
    pieces: list[tuple[str, int | None]] = []
    for a, b in zip(edges, edges[1:], strict=False):
        owner = next((i for i, (s, e) in enumerate(valid) if s <= a and b <= e), None)
        if pieces and pieces[-1][1] == owner and owner is not None:
            pieces[-1] = (pieces[-1][0] + text[a:b], owner)
        else:
            pieces.append((text[a:b], owner))
    segments: list[Segment] = []
    anchored: set[int] = set()
    for piece, owner in pieces:
        anchor = None
        if owner is not None and owner not in anchored:
            anchored.add(owner)
            anchor = FRAGMENT if owner == 0 else f"span-{owner + 1}"
        segments.append(Segment(piece, owner, anchor))
    return segments


@dataclass(frozen=True)
class Piece:
    """Text, or a citation marker ``[n]`` with the link to its source (None: unknown n)."""

    text: str
    n: int | None = None
    url: str | None = None


def cited_pieces(text: str, citations: Mapping[int, Citation]) -> list[Piece]:
    """``text`` with each ``[n]`` turned into a link to citation n's reader page."""
    pieces: list[Piece] = []
    pos = 0
    for m in _MARKER.finditer(text):
        if m.start() > pos:
            pieces.append(Piece(text[pos : m.start()]))
        n = int(m.group(1))
        cited = citations.get(n)
        pieces.append(Piece(m.group(0), n, cited.url if cited else None))
        pos = m.end()
    if pos < len(text):
        pieces.append(Piece(text[pos:]))
    return pieces


def marker_pieces(numbers: Sequence[int], citations: Mapping[int, Citation]) -> list[Piece]:
    """``[1][3]`` for a point's citation numbers, each linked."""
    return [Piece(f"[{n}]", n, citations[n].url if n in citations else None) for n in numbers]
