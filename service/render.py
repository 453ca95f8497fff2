"""Readable Markdown for answers, summaries and briefings (CLI, API, Slack fallback).

Every string that comes from outside (article titles, quotes, outlets, dates, LLM claims,
the user's topic) goes through ``md_escape`` before it is placed, so a chat UI or a
Markdown viewer shows it as text: it cannot add HTML (``<img onerror=…>``), links
(``[x](javascript:…)``), tracking images (``![](http://…)``), headings or lists. Only the
rendered Markdown is escaped; the JSON shapes (answers, citation quotes with their
offsets) keep the exact text.
"""

from __future__ import annotations

import re

from service.models import Answer, Briefing, Citation, Point, Summary

# Any run of whitespace holding a line break: Markdown structure (headings, lists, block
# quotes, tables, fences, setext underlines) only starts at a line start, so untrusted
# text is kept on the line it was placed on.
_WHITESPACE = re.compile(r"\s+")
_LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# Inline syntax, backslash-escaped (CommonMark shows the character itself): code, emphasis,
# strikethrough, link and image brackets, and the "(" of "](" so that not even a lax
# renderer sees a link destination there.
_INLINE = re.compile(r"[\\`*_\[\]~]|(?<=\])\(")
# A block marker at the start: heading, list item, setext underline, ordered item.
_BLOCK_START = re.compile(r"[#+\-=]|\d{1,9}(?=[.)])")
# Our own citation markers in an answer's text: " [1][2]" after each claim.
_MARKERS = re.compile(r" ((?:\[\d+\])+)(?= |$)")


def md_escape(text: str) -> str:
    """Untrusted text made inert for Markdown and HTML, every character still shown.

    ``&``, ``<`` and ``>`` become entities (a backslash is not enough for renderers that
    pass raw HTML through); other Markdown punctuation gets a backslash; line breaks
    become a space and the ends are trimmed (leading spaces would start a code block).
    """
    text = _WHITESPACE.sub(lambda m: " " if _LINE_BREAKS & set(m.group(0)) else m.group(0), text)
    text = text.strip()
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(lambda m: "\\" + m.group(0), text)
    start = _BLOCK_START.match(text)
    if start is None:
        return text
    # "1." / "1)": the punctuation after the number is what makes it a list item.
    cut = start.end() if text[0].isdigit() else 0
    return text[:cut] + "\\" + text[cut:]


def answer_text_markdown(text: str) -> str:
    """An answer's text, escaped except for the ``[n]`` citation markers Newsdesk added."""
    out = []
    # split() with one group alternates: text, marker, text, marker, …, text.
    for i, part in enumerate(_MARKERS.split(text)):
        if i % 2:
            out.append(f" {part}")
        elif escaped := md_escape(part):
            out.append(f" {escaped}" if i else escaped)
    return "".join(out)


def _cites(numbers: list[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def _point(p: Point) -> str:
    return f"- {md_escape(p.text)} {_cites(p.citations)}"


def sources_block(citations: list[Citation], max_quote: int = 300) -> list[str]:
    lines = ["", "Sources:"]
    for c in citations:
        # Cut before escaping, so the cut never splits an entity or leaves a lone "\".
        quote = c.quote if len(c.quote) <= max_quote else c.quote[: max_quote - 1] + "…"
        meta = ", ".join(
            md_escape(x) for x in (c.source or "source unknown", c.published_at or "undated")
        )
        # A revised article says so: the quote is from its current text, not the first.
        revised = (
            f" (revision {c.revision}, updated {md_escape(c.updated_at or 'since')})"
            if c.revision > 1
            else ""
        )
        lines.append(
            f"[{c.n}] {md_escape(c.title)} ({meta}) — article {md_escape(c.article_id)}"
            f"{revised}, chars {c.start}–{c.end}"
        )
        lines.append(f"    “{md_escape(quote)}”")
    return lines


def engine_line(engine: str, fallback_reason: str | None, verified: int, rejected: int) -> str:
    line = f"_engine: {engine} · citations verified {verified}, rejected {rejected}_"
    if fallback_reason:
        # The reason can quote the LLM endpoint's own error text.
        line += (
            f"\n_the LLM was unavailable ({md_escape(fallback_reason)}); "
            "extractive engine answered_"
        )
    return line


def answer_markdown(a: Answer) -> str:
    lines = [answer_text_markdown(a.answer)]
    if a.citations:
        lines += sources_block(a.citations)
    lines += [
        "",
        engine_line(a.engine, a.fallback_reason, a.citations_verified, a.citations_rejected),
    ]
    return "\n".join(lines)


def _differences(diffs: list) -> list[str]:
    lines = ["", "## Where sources differ"]
    if not diffs:
        lines.append("- No disagreement between the sources was detected.")
    for d in diffs:
        lines.append(f"- **{md_escape(d.topic)}**")
        lines += [f"  {_point(s)}" for s in d.sides]
    return lines


def _also(outlets: list[str]) -> str:
    return f"; also published by {md_escape(', '.join(outlets))}" if outlets else ""


def _balance(items: list) -> list[str]:
    lines = ["", "## Balance (share of citations per article)"]
    lines += [
        f"- {md_escape(b.title)} ({md_escape(b.source or 'source unknown')}"
        f"{_also(b.also_published_by)}): {b.share:.0%}"
        for b in items
    ]
    return lines


def summary_markdown(s: Summary) -> str:
    lines = [f"# Summary{': ' + md_escape(s.topic) if s.topic else ''}", ""]
    if s.refused or not s.points:
        lines.append("The sources don't say enough to summarise.")
    lines += [_point(p) for p in s.points]
    lines += _differences(s.differences)
    lines += _balance(s.balance)
    lines += sources_block(s.citations)
    lines += [
        "",
        engine_line(s.engine, s.fallback_reason, s.citations_verified, s.citations_rejected),
    ]
    return "\n".join(lines)


def briefing_markdown(b: Briefing) -> str:
    lines = [f"# {md_escape(b.title)}"]
    meta = [
        f"as of {md_escape(b.as_of)}" if b.as_of else None,
        f"for {md_escape(b.audience)}" if b.audience else None,
    ]
    if any(meta):
        lines.append("_" + ", ".join(m for m in meta if m) + "_")
    lines += ["", "## Bottom line"] + [_point(p) for p in b.bottom_line]
    lines += ["", "## Key developments"]
    for d in b.developments:
        lines.append(
            f"- **{md_escape(d.date or 'undated')}** — {md_escape(d.text)} {_cites(d.citations)}"
        )
    lines += ["", "## Perspectives"]
    for p in b.perspectives:
        lines.append(f"- **{md_escape(p.actor)}**")
        lines += [f"  {_point(x)}" for x in p.points]
    lines += _differences(b.differences)
    lines += ["", "## Open questions / what to watch"] + [_point(p) for p in b.open_questions]
    lines += ["", "## Sources read"]
    for s in b.sources:
        updated = f", updated {md_escape(s.updated_at)}" if s.updated_at else ""
        lines.append(
            f"- {md_escape(s.title)} ({md_escape(s.source or 'source unknown')}, "
            f"{md_escape(s.published_at or 'undated')}{updated}{_also(s.also_published_by)})"
            f" — article {md_escape(s.article_id)}"
        )
    lines += sources_block(b.citations)
    lines += [
        "",
        engine_line(b.engine, b.fallback_reason, b.citations_verified, b.citations_rejected),
    ]
    return "\n".join(lines)
