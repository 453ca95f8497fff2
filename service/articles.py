"""Which stored articles a summary or briefing covers: the ones named, or those retrieval
finds for the topic, or (neither given) every article the filters admit."""

from __future__ import annotations

from service.context import Newsdesk
from service.engines.protocol import NothingToSummarize
from vectorstore.store import ArticleFilter, StoredArticle

# Articles a summary or briefing reads at most, as the first version set it; with an LLM
# each gets an equal share of the window (see opening_passages).
MAX_ARTICLES = 12
# Retrieval returns chunks, often several of one article: ask for this many per article
# wanted, so enough distinct articles come back.
HITS_PER_ARTICLE = 2


def select_articles(
    newsdesk: Newsdesk,
    topic: str | None,
    article_ids: list[str] | None,
    filters: ArticleFilter | None,
    limit: int = MAX_ARTICLES,
) -> list[StoredArticle]:
    """The articles a summary must cover: named ones, or those retrieval finds."""
    if article_ids:
        found = newsdesk.store.get_articles(article_ids)
        missing = [a for a in article_ids if a not in found]
        if missing:
            raise NothingToSummarize(f"unknown article id(s): {', '.join(missing)}")
        return [found[a] for a in article_ids]
    if topic:
        hits = newsdesk.retriever.search(topic, top_k=limit * HITS_PER_ARTICLE, filters=filters)
        order: list[str] = []
        for h in hits:
            if h.article_id not in order:
                order.append(h.article_id)
        found = newsdesk.store.get_articles(order[:limit])
        return [found[a] for a in order[:limit] if a in found]
    ids = [
        aid
        for aid, meta in newsdesk.store.iter_article_meta()
        if filters is None or filters.matches({"article_id": aid, **meta})
    ]
    found = newsdesk.store.get_articles(ids[:limit])
    return [found[a] for a in ids[:limit] if a in found]
