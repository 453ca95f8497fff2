"""Readable Markdown for answers, summaries and briefings (CLI, API, Slack fallback)."""

from __future__ import annotations

from service.models import Answer, Briefing, Citation, Point, Summary


def _cites(numbers: list[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def _point(p: Point) -> str:
    return f"- {p.text} {_cites(p.citations)}"


def sources_block(citations: list[Citation], max_quote: int = 300) -> list[str]:
    lines = ["", "Sources:"]
    for c in citations:
        quote = c.quote if len(c.quote) <= max_quote else c.quote[: max_quote - 1] + "…"
        meta = ", ".join(x for x in (c.source or "source unknown", c.published_at or "undated"))
        lines.append(
            f"[{c.n}] {c.title} ({meta}) — article {c.article_id}, chars {c.start}–{c.end}"
        )
        lines.append(f"    “{quote}”")
    return lines


def engine_line(engine: str, fallback_reason: str | None, verified: int, rejected: int) -> str:
    line = f"_engine: {engine} · citations verified {verified}, rejected {rejected}_"
    if fallback_reason:
        line += f"\n_the LLM was unavailable ({fallback_reason}); extractive engine answered_"
    return line


def answer_markdown(a: Answer) -> str:
    lines = [a.answer]
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
        lines.append(f"- **{d.topic}**")
        lines += [f"  {_point(s)}" for s in d.sides]
    return lines


def _balance(items: list) -> list[str]:
    lines = ["", "## Balance (share of citations per article)"]
    lines += [f"- {b.title} ({b.source or 'source unknown'}): {b.share:.0%}" for b in items]
    return lines


def summary_markdown(s: Summary) -> str:
    lines = [f"# Summary{': ' + s.topic if s.topic else ''}", ""]
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
    lines = [f"# {b.title}"]
    meta = [f"as of {b.as_of}" if b.as_of else None, f"for {b.audience}" if b.audience else None]
    if any(meta):
        lines.append("_" + ", ".join(m for m in meta if m) + "_")
    lines += ["", "## Bottom line"] + [_point(p) for p in b.bottom_line]
    lines += ["", "## Key developments"]
    for d in b.developments:
        lines.append(f"- **{d.date or 'undated'}** — {d.text} {_cites(d.citations)}")
    lines += ["", "## Perspectives"]
    for p in b.perspectives:
        lines.append(f"- **{p.actor}**")
        lines += [f"  {_point(x)}" for x in p.points]
    lines += _differences(b.differences)
    lines += ["", "## Open questions / what to watch"] + [_point(p) for p in b.open_questions]
    lines += ["", "## Sources read"]
    for s in b.sources:
        lines.append(
            f"- {s.title} ({s.source or 'source unknown'}, {s.published_at or 'undated'}) "
            f"— article {s.article_id}"
        )
    lines += sources_block(b.citations)
    lines += [
        "",
        engine_line(b.engine, b.fallback_reason, b.citations_verified, b.citations_rejected),
    ]
    return "\n".join(lines)
