"""Numbered passages: what the engines read, and what the prompt shows the LLM."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from vectorstore.chunk import count_tokens
from vectorstore.retrieve import Hit
from vectorstore.sentences import sentence_spans
from vectorstore.store import StoredArticle

# What a passage's marker and header lines cost, beyond its text.
MARKER_TOKENS = 20
# Every article's opening gets at least this many tokens however many articles share the
# budget, so none is cut to nothing (fit_to_window then drops whole passages if needed).
MIN_OPENING_TOKENS = 120
# What joining two sentences costs: the space or newline between them.
SENTENCE_JOIN_TOKENS = 1


@dataclass(frozen=True)
class Passage:
    n: int
    article: StoredArticle
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.article.text[self.start : self.end]


def passages_from_hits(
    hits: list[Hit], articles: dict[str, StoredArticle], budget_tokens: int | None
) -> list[Passage]:
    """Hits in rank order, as many as fit the token budget (all of them for None); the
    most relevant win.

    Overlapping chunks of one article are merged so the model never reads a sentence
    twice.
    """
    # A token is at least one UTF-8 byte, so when the hits' bytes fit, every budget check
    # below would pass and exact counting (~3 ms a request) can be skipped.
    upper_bound = sum(len(h.chunk.text.encode("utf-8")) + MARKER_TOKENS for h in hits)
    if budget_tokens is None:
        budget_tokens = upper_bound
    count = (lambda _text: 0) if upper_bound <= budget_tokens else count_tokens
    spans: list[tuple[str, int, int]] = []
    used = 0
    # Syndicated copies are one source: the best-ranked copy of a story stands for it.
    story_article: dict[str, str] = {}
    for hit in hits:
        article = articles.get(hit.article_id)
        if article is None:
            continue
        story = article.syndication_group or article.id
        if story_article.setdefault(story, article.id) != article.id:
            continue
        start, end = hit.chunk.start, hit.chunk.end
        merged = False
        for i, (aid, s, e) in enumerate(spans):
            if aid == hit.article_id and start <= e and end >= s:
                new = (aid, min(s, start), max(e, end))
                extra = count(article.text[new[1] : new[2]]) - count(article.text[s:e])
                if used + extra > budget_tokens:
                    merged = True
                    break
                spans[i] = new
                used += extra
                merged = True
                break
        if merged:
            continue
        cost = count(hit.chunk.text) + MARKER_TOKENS
        if used + cost > budget_tokens:
            continue
        spans.append((hit.article_id, start, end))
        used += cost
    return [Passage(i, articles[aid], s, e) for i, (aid, s, e) in enumerate(spans, start=1)]


def opening_passages(articles: list[StoredArticle], budget_tokens: int) -> list[Passage]:
    """The opening of every article, each cut to an equal share of the budget at a sentence
    end, so no article is left out because another one is long."""
    share = max(MIN_OPENING_TOKENS, budget_tokens // max(1, len(articles)))
    passages: list[Passage] = []
    for article in articles:
        end = 0
        used = 0
        for start, stop in sentence_spans(article.text):
            cost = count_tokens(article.text[start:stop]) + SENTENCE_JOIN_TOKENS
            if used + cost > share:
                break
            end, used = stop, used + cost
        if end == 0:
            continue
        passages.append(Passage(len(passages) + 1, article, 0, end))
    return passages


def new_nonce() -> str:
    # Unpredictable per request, so an article can't forge a closing marker.
    return secrets.token_hex(4)


def render_passages(passages: list[Passage], nonce: str) -> str:
    blocks = []
    for p in passages:
        a = p.article
        header = (
            f"<<<PASSAGE {p.n} {nonce}>>>\n"
            f"title: {a.title}\nsource: {a.source or 'unknown'}\n"
            f"published: {a.published_at or 'undated'}\n"
        )
        blocks.append(f"{header}\n{p.text}\n<<<END {nonce}>>>")
    return "\n\n".join(blocks)


# Per-message framing tokens the chat format adds around each message.
MESSAGE_OVERHEAD = 8


def fit_to_window(
    render: Callable[[list[Passage]], tuple[str, str]], passages: list[Passage], limit: int
) -> tuple[list[Passage], str, str]:
    """Render the prompt, dropping the least relevant passages until it fits ``limit``.

    Measured on the final text, so headers, markers and the question all count.
    """
    kept = list(passages)
    while True:
        system, user = render(kept)
        # Bytes bound tokens from above (see passages_from_hits): count only when needed.
        size = len(system.encode("utf-8")) + len(user.encode("utf-8")) + 2 * MESSAGE_OVERHEAD
        if size <= limit:
            return kept, system, user
        used = count_tokens(system) + count_tokens(user) + 2 * MESSAGE_OVERHEAD
        if used <= limit or not kept:
            return kept, system, user
        kept = kept[:-1]
