"""The coverage and framing table of a story, measured from the articles' text.

Per outlet: its articles, when it first covered the story, how its characters divide
between quotation marks, attributed sentences and its own voice, and which loaded words
(service/neutrality.py) it used in each. Nothing here is a judgement the text does not
bear out: the shares are character counts of service.neutrality's own reading of a text
(the one summaries are checked with), and the terms are words that occur.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from service.models import Coverage, OutletCoverage
from service.neutrality import Voice, loaded_words, voice_spans
from service.render import md_escape
from vectorstore.ingest import published_timestamp
from vectorstore.store import StoredArticle

# Shares are rounded to this many decimals: character counts are not more precise than
# the sentence splitter and quote matcher behind them.
SHARE_DIGITS = 4
UNKNOWN_OUTLET = "source unknown"


def voice_characters(text: str) -> tuple[Counter[Voice], dict[Voice, Counter[str]]]:
    """Non-space characters of ``text`` per voice, and the loaded words said in each."""
    chars: Counter[Voice] = Counter()
    terms: dict[Voice, Counter[str]] = defaultdict(Counter)
    for start, end, voice in voice_spans(text):
        span = text[start:end]
        chars[voice] += len(span) - sum(c.isspace() for c in span)
        terms[voice].update(loaded_words(span))
    return chars, terms


def _sort_key(article: StoredArticle) -> tuple[int, float, str]:
    ts = published_timestamp(article.published_at)
    return (ts is None, ts or 0.0, article.id)


def _copy_of_other_outlet(article: StoredArticle, by_id: dict[str, StoredArticle]) -> bool:
    """Whether ``article`` ran text first stored under another outlet's name."""
    group = article.syndication_group
    if not group or group == article.id:
        return False
    first = by_id.get(group)
    # The group's first copy may be outside the story (deleted, or split away); then
    # whose text it is is unknown here and the article counts as the outlet's own.
    return first is not None and first.source != article.source


def _share(part: int, whole: int) -> float:
    return round(part / whole, SHARE_DIGITS) if whole else 0.0


def _counts(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def coverage_table(articles: Sequence[StoredArticle]) -> Coverage:
    """One row per outlet of ``articles``; the first to cover the story first, undated
    outlets last, ties by name."""
    by_id = {a.id: a for a in articles}
    by_outlet: dict[str | None, list[StoredArticle]] = defaultdict(list)
    for article in sorted(articles, key=_sort_key):
        by_outlet[article.source].append(article)
    rows: list[OutletCoverage] = []
    for outlet, members in by_outlet.items():
        chars: Counter[Voice] = Counter()
        terms: dict[Voice, Counter[str]] = defaultdict(Counter)
        for article in members:
            c, t = voice_characters(article.text)
            chars.update(c)
            for voice, words in t.items():
                terms[voice].update(words)
        total = sum(chars.values())
        dated = [a.published_at for a in members if a.published_at]
        rows.append(
            OutletCoverage(
                outlet=outlet,
                articles=[a.id for a in members],
                copies=sum(_copy_of_other_outlet(a, by_id) for a in members),
                first_covered=dated[0] if dated else None,
                characters=total,
                quoted_share=_share(chars["quoted"], total),
                attributed_share=_share(chars["attributed"], total),
                own_voice_share=_share(chars["own"], total),
                loaded_terms_own_voice=_counts(terms["own"]),
                loaded_terms_quoted=_counts(terms["quoted"]),
                loaded_terms_attributed=_counts(terms["attributed"]),
            )
        )
    rows.sort(
        key=lambda r: (
            r.first_covered is None,
            published_timestamp(r.first_covered) or 0.0,
            r.outlet is None,
            (r.outlet or "").casefold(),
        )
    )
    return Coverage(outlets=rows)


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _terms(counts: dict[str, int]) -> str:
    if not counts:
        return "–"
    return ", ".join(t + (f" ×{n}" if n > 1 else "") for t, n in counts.items())


def _cell(text: str) -> str:
    # A pipe would end the cell early; escaped Markdown keeps article text inert.
    return md_escape(text).replace("|", "\\|")


def coverage_markdown(coverage: Coverage) -> str:
    """The table as Markdown, one row per outlet, in the JSON's order."""
    lines = [
        "| Outlet | Articles | First covered | Quoted | Attributed | Own voice "
        "| Loaded terms, own voice | Loaded terms, quoted or attributed |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    for row in coverage.outlets:
        quoted = Counter(row.loaded_terms_quoted) + Counter(row.loaded_terms_attributed)
        articles = str(len(row.articles)) + (f" ({row.copies} syndicated)" if row.copies else "")
        lines.append(
            f"| {_cell(row.outlet or UNKNOWN_OUTLET)} | {articles} "
            f"| {_cell(row.first_covered or 'undated')} "
            f"| {_percent(row.quoted_share)} | {_percent(row.attributed_share)} "
            f"| {_percent(row.own_voice_share)} "
            f"| {_cell(_terms(row.loaded_terms_own_voice))} "
            f"| {_cell(_terms(_counts(quoted)))} |"
        )
    return "\n".join(lines)
