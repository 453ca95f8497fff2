"""Block Kit for answers, summaries and briefings, safe for Slack and within its limits.

Everything that comes from articles, the LLM or users goes through ``escape``: ``&``,
``<`` and ``>`` become entities, so no text can ping ``@channel``/``@here``/users or
smuggle in a ``<url|label>`` link, and every mrkdwn text object is ``verbatim`` so Slack
does not auto-link or auto-mention anything either. Our own markup (bold, the span links,
the quote marker) is added after escaping. Long text is split on line, sentence or word
boundaries into sections of at most 3,000 characters, never inside an entity, and block
lists are split into messages of at most 50 blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from service.models import (
    Answer,
    Briefing,
    Citation,
    Difference,
    Point,
    SourceShare,
    StoryList,
    Summary,
)

Block = dict[str, Any]

SECTION_CHARS = 3000  # Slack: section text
CONTEXT_CHARS = 3000  # Slack: one context element's text
MAX_BLOCKS = 50  # Slack: blocks per message
MESSAGE_CHARS = 12_000  # stay well under Slack's total size for one message's blocks
FALLBACK_CHARS = 3000  # the notification / history ``text`` of a message
QUOTE_CHARS = 240
# Summary and briefing points already quote their sentence: their sources list is shorter.
SHORT_QUOTE_CHARS = 120
TITLE_CHARS = 120

WORKING = ":hourglass_flowing_sand: Working on it…"
REFUSAL = (
    ":no_entry_sign: The sources don't cover this: none of the ingested articles "
    "answers it, so I won't guess."
)
TRIMMED = "_… the rest did not fit in Slack; ask the HTTP API for the full text._"

# "@here" and friends written out as plain words are not mentions in API messages, but a
# word joiner after the "@" keeps them inert even if a client ever parses them.
_SPECIAL_MENTION = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)


def escape(text: str) -> str:
    """Text from outside (articles, the LLM, users) made inert for Slack mrkdwn."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL_MENTION.sub("@\u2060", text)


def shorten(text: str, limit: int) -> str:
    """Raw text on one line, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"


def _safe_cut(text: str, limit: int) -> int:
    """An index <= limit to cut escaped text at without splitting an ``&…;`` entity."""
    amp = text.rfind("&", max(0, limit - 5), limit)
    if amp > 0 and ";" not in text[amp:limit]:
        return amp
    return limit


# The end of a sentence, with the citation markers that follow it ("… fled. [1][2]").
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)]*(?:\s?(?:\[\d+\])+)?(?=\s)")


def _break_at(window: str, limit: int) -> int:
    """Where to end a piece of at most ``limit`` characters: a paragraph or line break in
    the second half, else the last sentence end there, else the last space; 0: none."""
    half = limit // 2
    for sep in ("\n\n", "\n"):
        pos = window.rfind(sep, half, limit + 1)
        if pos > 0:
            return pos
    ends = [m.end() for m in _SENTENCE_END.finditer(window, half) if m.end() <= limit]
    if ends:
        return ends[-1]
    return max(window.rfind(" ", 0, limit + 1), 0)


def split_text(text: str, limit: int = SECTION_CHARS) -> list[str]:
    """Escaped text in pieces of at most ``limit`` characters, split at the best boundary
    available: paragraph, line, sentence (with its [n] markers), word; only a single
    over-long word is cut, never inside an ``&…;`` entity."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        cut = _break_at(text[: limit + 1], limit)
        if cut <= 0:
            cut = _safe_cut(text, limit)
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts


def clip(text: str, limit: int) -> str:
    """Escaped text trimmed to ``limit`` characters at a boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    return split_text(text, limit - 1)[0] + "…"


def pack(lines: Iterable[str], limit: int = SECTION_CHARS) -> list[str]:
    """Lines joined into as few texts of at most ``limit`` characters as possible."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        for piece in split_text(line, limit) if len(line) > limit else [line]:
            if current and len(current) + 1 + len(piece) > limit:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


# ---- blocks ------------------------------------------------------------------------


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def section(text: str) -> Block:
    """One section; ``text`` must already be safe (escaped) and within the limit."""
    return {"type": "section", "text": mrkdwn(text)}


def sections(lines: Iterable[str]) -> list[Block]:
    return [section(chunk) for chunk in pack(lines)]


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(clip(text, CONTEXT_CHARS))]}


def text_blocks(text: str) -> list[Block]:
    """Our own short messages (help, errors, progress): already safe."""
    return [section(t) for t in split_text(text)]


def fallback_text(text: str) -> str:
    """The message's top-level ``text``: notifications, and the history of a thread."""
    return clip(escape(" ".join(text.split())), FALLBACK_CHARS)


# ---- citations -----------------------------------------------------------------------


def _cites(numbers: Sequence[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def span_url(c: Citation) -> str | None:
    """The citation's signed reader link (``c.url``: the bot signs one when
    NEWSDESK_PUBLIC_URL is set), fit for Slack's ``<url|label>``; else None."""
    if not c.url or any(ch in c.url for ch in "<>| \n"):
        return None
    # "&" is written as an entity, as Slack itself writes links; Slack decodes it.
    return c.url.replace("&", "&amp;")


def citation_line(c: Citation, quote_chars: int = QUOTE_CHARS) -> str:
    title = escape(shorten(c.title or c.article_id, TITLE_CHARS))
    url = span_url(c)
    head = f"<{url}|{title}>" if url else f"*{title}*"
    date = (c.published_at or "")[:10] or "undated"
    meta = f"{escape(shorten(c.source or 'source unknown', 60))} · {escape(date)}"
    quote = escape(shorten(c.quote, quote_chars))
    return f"*[{c.n}]* {head} — {meta}\n>“{quote}”"


def sources_blocks(citations: Sequence[Citation], quote_chars: int = QUOTE_CHARS) -> list[Block]:
    if not citations:
        return []
    return sections(["*Sources*", *(citation_line(c, quote_chars) for c in citations)])


def engine_text(
    engine: str,
    fallback_reason: str | None = None,
    verified: int = 0,
    llm_model: str | None = None,
) -> str:
    if engine == "llm":
        text = ":robot_face: Answered by the LLM engine"
        if llm_model:
            text += f" ({escape(shorten(llm_model, 60))})"
    elif fallback_reason:
        # The reason itself (endpoints, status codes) stays in the logs.
        text = (
            ":mag: Answered by the extractive engine: the LLM was unavailable, "
            "so sentences were quoted from the articles"
        )
    else:
        text = ":mag: Answered by the extractive engine: sentences quoted from the articles"
    plural = "" if verified == 1 else "s"
    return f"{text} · {verified} citation{plural} checked against the source text"


# ---- answers, summaries, briefings ---------------------------------------------------


def answer_blocks(answer: Answer, *, llm_model: str | None = None) -> list[Block]:
    blocks: list[Block] = []
    if answer.refused or not answer.answer.strip():
        blocks.append(section(REFUSAL))
    else:
        blocks += [section(t) for t in split_text(escape(answer.answer))]
        blocks += sources_blocks(answer.citations)
    blocks.append(
        context(
            engine_text(answer.engine, answer.fallback_reason, answer.citations_verified, llm_model)
        )
    )
    return blocks


def answer_text(answer: Answer) -> str:
    if answer.refused or not answer.answer.strip():
        return "The sources don't cover this."
    return fallback_text(answer.answer)


def _bullet(p: Point, indent: str = "") -> str:
    return f"{indent}• {escape(p.text)} {_cites(p.citations)}".rstrip()


def _difference_lines(differences: Sequence[Difference]) -> list[str]:
    if not differences:
        return []
    lines = ["*Where sources differ*"]
    for d in differences:
        lines.append(f"• *{escape(shorten(d.topic, 200))}*")
        lines += [_bullet(side, "      ") for side in d.sides]
    return lines


def _balance_text(balance: Sequence[SourceShare]) -> str:
    shares = [
        f"{escape(shorten(b.source or b.title, 40))} {b.share:.0%}"
        for b in sorted(balance, key=lambda b: -b.share)
    ]
    return ":scales: Share of citations: " + " · ".join(shares)


def _multi_source_footer(result: Summary | Briefing, llm_model: str | None) -> list[Block]:
    """Share of citations per source, the sources with short quotes, and the engine."""
    blocks: list[Block] = []
    if result.balance:
        blocks.append(context(_balance_text(result.balance)))
    blocks += sources_blocks(result.citations, SHORT_QUOTE_CHARS)
    verified = result.citations_verified
    blocks.append(context(engine_text(result.engine, result.fallback_reason, verified, llm_model)))
    return blocks


def summary_blocks(summary: Summary, *, llm_model: str | None = None) -> list[Block]:
    title = (
        f"*Summary: {escape(shorten(summary.topic, 200))}*"
        if summary.topic
        else "*Summary of the latest articles*"
    )
    lines = [title]
    if summary.refused or not summary.points:
        lines.append("The sources don't say enough to summarise this.")
    lines += [_bullet(p) for p in summary.points]
    blocks = sections(lines)
    blocks += sections(_difference_lines(summary.differences))
    return blocks + _multi_source_footer(summary, llm_model)


def summary_text(summary: Summary) -> str:
    return fallback_text(f"Summary: {summary.topic}" if summary.topic else "Summary")


def briefing_blocks(briefing: Briefing, *, llm_model: str | None = None) -> list[Block]:
    head = [f"*{escape(shorten(briefing.title, 200))}*"]
    meta = [
        f"as of {escape(briefing.as_of)}" if briefing.as_of else None,
        f"for {escape(briefing.audience)}" if briefing.audience else None,
    ]
    if any(meta):
        head.append("_" + ", ".join(m for m in meta if m) + "_")
    if briefing.refused:
        head.append("The sources don't say enough for a briefing on this.")
    groups: list[list[str]] = [head]
    if briefing.bottom_line:
        groups.append(["*Bottom line*", *(_bullet(p) for p in briefing.bottom_line)])
    if briefing.developments:
        groups.append(
            ["*Key developments*"]
            + [
                f"• *{escape(d.date or 'undated')}* — {escape(d.text)} {_cites(d.citations)}"
                for d in briefing.developments
            ]
        )
    if briefing.perspectives:
        lines = ["*Perspectives*"]
        for p in briefing.perspectives:
            lines.append(f"• *{escape(shorten(p.actor, 100))}*")
            lines += [_bullet(x, "      ") for x in p.points]
        groups.append(lines)
    groups.append(_difference_lines(briefing.differences))
    if briefing.open_questions:
        groups.append(
            ["*Open questions / what to watch*", *(_bullet(p) for p in briefing.open_questions)]
        )
    blocks = [b for lines in groups for b in sections(lines)]
    return blocks + _multi_source_footer(briefing, llm_model)


def briefing_text(briefing: Briefing) -> str:
    return fallback_text(briefing.title)


# ---- messages --------------------------------------------------------------------------


def _size(block: Block) -> int:
    if block.get("type") == "section":
        return len(block["text"]["text"])
    if block.get("type") == "context":
        return sum(len(e.get("text", "")) for e in block["elements"])
    return 0


def split_messages(
    blocks: Sequence[Block],
    *,
    max_blocks: int = MAX_BLOCKS,
    max_chars: int = MESSAGE_CHARS,
    max_messages: int | None = None,
) -> list[list[Block]]:
    """Blocks in messages of at most ``max_blocks`` blocks and ``max_chars`` characters.

    With ``max_messages``, what does not fit is dropped and the last message ends with a
    note saying so (its last block gives way to the note when the message is full).
    """
    messages: list[list[Block]] = []
    current: list[Block] = []
    size = 0
    for block in blocks:
        n = _size(block)
        if current and (len(current) >= max_blocks or size + n > max_chars):
            messages.append(current)
            current, size = [], 0
        current.append(block)
        size += n
    if current or not messages:
        messages.append(current)
    if max_messages is not None and len(messages) > max_messages:
        messages = messages[:max_messages]
        last = messages[-1]
        if len(last) >= max_blocks or sum(map(_size, last)) + len(TRIMMED) > max_chars:
            last.pop()
        last.append(context(TRIMMED))
    return messages


# ---- stories ----------------------------------------------------------------------------

NO_STORIES = ":card_index_dividers: No stories match."


def stories_blocks(stories: StoryList) -> list[Block]:
    """Recent stories, one line each: title, how many outlets (and which), articles, when
    last seen, and the id that `/brief` takes."""
    if not stories.stories:
        return text_blocks(NO_STORIES)
    lines = ["*Recent stories*"]
    for s in stories.stories:
        outlets = escape(shorten(", ".join(s.outlets), 200)) if s.outlets else "none named"
        lines.append(
            f"• *{escape(shorten(s.title, TITLE_CHARS))}* — {s.outlets_count} "
            f"outlet{'' if s.outlets_count == 1 else 's'} ({outlets}), {s.articles} "
            f"article{'' if s.articles == 1 else 's'}, last seen "
            f"{escape(s.last_seen or 'undated')} · `{escape(s.id)}`"
        )
    return [*sections(lines), context("`/brief <story id>` gives a story's briefing.")]


def stories_text(stories: StoryList) -> str:
    n = len(stories.stories)
    return fallback_text(f"{n} recent stor{'y' if n == 1 else 'ies'}")
