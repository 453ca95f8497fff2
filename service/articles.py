"""Which stored articles a request draws on: the ones named, or those retrieval finds for
the topic, or (neither given) every article the filters admit. Ids the store doesn't hold
are the caller's mistake (UnknownArticle), never silently an empty result."""

from __future__ import annotations

from collections.abc import Container, Sequence

from service.context import Newsdesk
from service.errors import NothingIngested, UnknownArticle
from service.requests import Filters
from vectorstore.store import ArticleFilter, StoredArticle

# Articles a summary or briefing reads at most, as the first version set it; with an LLM
# each gets an equal share of the window (see opening_passages).
MAX_ARTICLES = 12
# Retrieval returns chunks, often several of one article: ask for this many per article
# wanted, so enough distinct articles come back.
HITS_PER_ARTICLE = 2


def _check_known(requested: Sequence[str], found: Container[str]) -> None:
    missing = [a for a in requested if a not in found]
    if missing:
        raise UnknownArticle(missing)


def resolve_filters(newsdesk: Newsdesk, filters: Filters | None) -> ArticleFilter | None:
    """The store's filter for a request's ``filters``, its article ids checked first."""
    if filters is None:
        return None
    if filters.article_ids:
        _check_known(filters.article_ids, newsdesk.store.article_meta(filters.article_ids))
    return filters.to_article_filter()


def require_articles(newsdesk: Newsdesk) -> None:
    """NothingIngested while the store is empty, for a surface that says so up front."""
    if newsdesk.store.count_articles() == 0:
        raise NothingIngested("no article has been ingested")


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
        _check_known(article_ids, found)
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
