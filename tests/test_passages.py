"""Passages fit the token budget exactly: the most relevant win, nothing over the limit."""

from __future__ import annotations

from service.passages import MARKER_TOKENS, Passage, fit_to_window, passages_from_hits
from vectorstore.chunk import count_tokens
from vectorstore.retrieve import Hit
from vectorstore.store import StoredArticle, StoredChunk

SENTENCES = [
    "Officials said 121,000 people had left the border district by Sunday.",
    "Всего эвакуировано более ста тысяч человек, сообщили власти.",  # multi-byte text
    "The ministry published the figures late on Monday evening.",
    "Analysts doubted the numbers; 北京 declined to comment.",
]


def article(aid: str, text: str) -> StoredArticle:
    return StoredArticle(
        id=aid,
        text=text,
        title=aid,
        content_hash="0" * 64,
        source=None,
        url=None,
        author=None,
        published_at=None,
        origin=None,
        chunks=1,
    )


def hit(a: StoredArticle, start: int, end: int) -> Hit:
    chunk = StoredChunk(
        id=f"{a.id}:{start}",
        article_id=a.id,
        version="0",
        index=0,
        start=start,
        end=end,
        text=a.text[start:end],
        title=a.title,
        source=None,
        published_at=None,
    )
    return Hit(chunk=chunk, score=1.0)


def one_article_each() -> tuple[list[Hit], dict[str, StoredArticle]]:
    arts = {f"a{i}": article(f"a{i}", s) for i, s in enumerate(SENTENCES)}
    return [hit(a, 0, len(a.text)) for a in arts.values()], arts


def exact_cost(hits: list[Hit]) -> int:
    return sum(count_tokens(h.chunk.text) + MARKER_TOKENS for h in hits)


def test_a_budget_that_holds_every_hit_keeps_them_all_in_rank_order() -> None:
    hits, arts = one_article_each()
    for budget in (exact_cost(hits), 100_000):
        got = passages_from_hits(hits, arts, budget)
        assert [p.article.id for p in got] == ["a0", "a1", "a2", "a3"]
        assert [p.n for p in got] == [1, 2, 3, 4]


def test_one_token_short_drops_a_passage_that_no_longer_fits() -> None:
    hits, arts = one_article_each()
    got = passages_from_hits(hits, arts, exact_cost(hits) - 1)
    kept = [p.article.id for p in got]
    assert len(kept) == 3
    assert exact_cost([h for h in hits if h.article_id in kept]) <= exact_cost(hits) - 1


def test_every_budget_is_respected_with_exact_token_counts() -> None:
    hits, arts = one_article_each()
    for budget in range(0, exact_cost(hits) + 60, 7):
        got = passages_from_hits(hits, arts, budget)
        assert sum(count_tokens(p.text) + MARKER_TOKENS for p in got) <= budget


def test_overlapping_chunks_of_one_article_merge_into_one_passage() -> None:
    text = " ".join(SENTENCES)
    a = article("a", text)
    cut = len(SENTENCES[0]) + 1 + len(SENTENCES[1])
    hits = [hit(a, 0, cut), hit(a, len(SENTENCES[0]) + 1, len(text))]
    got = passages_from_hits(hits, {"a": a}, 100_000)
    assert [(p.start, p.end) for p in got] == [(0, len(text))]


def render_all(passages: list[Passage]) -> tuple[str, str]:
    return "system", "\n\n".join(p.text for p in passages)


def test_the_window_is_filled_to_the_exact_token() -> None:
    hits, arts = one_article_each()
    passages = passages_from_hits(hits, arts, 100_000)
    system, user = render_all(passages)
    needed = count_tokens(system) + count_tokens(user) + 16
    kept, _, _ = fit_to_window(render_all, passages, needed)
    assert len(kept) == 4
    kept, _, user = fit_to_window(render_all, passages, needed - 1)
    assert len(kept) == 3 and count_tokens("system") + count_tokens(user) + 16 <= needed - 1
