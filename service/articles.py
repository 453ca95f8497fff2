"""Which stored articles a request draws on: the ones named, or those retrieval finds for
the topic, or (neither given) every article the filters admit. Ids the store doesn't hold
are the caller's mistake (UnknownArticle), and so are outlets no article carries
(InvalidRequest): never silently an empty result."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Container, Sequence

from service.context import Newsdesk
from service.errors import InvalidRequest, NothingIngested, UnknownArticle
from service.requests import Filters
from service.syndicated import one_per_copy_group
from vectorstore.retrieve import match_sources, outlet_key
from vectorstore.store import ArticleFilter, StoredArticle

# Articles a summary or briefing reads at most, as the first version set it; with an LLM
# each gets an equal share of the window (see opening_passages).
MAX_ARTICLES = 12
# Retrieval returns chunks, often several of one article: ask for this many per article
# wanted, so enough distinct articles come back.
HITS_PER_ARTICLE = 2
# Articles read per one wanted, so that dropping syndicated copies still leaves enough.
COPIES_READ = 2


def _check_known(requested: Sequence[str], found: Container[str]) -> None:
    missing = [a for a in requested if a not in found]
    if missing:
        raise UnknownArticle(missing)


# Outlets an unknown-source error lists at most; a store of hundreds would drown the line.
MAX_SOURCES_LISTED = 30


def _unknown_sources(unknown: Sequence[str], known: Collection[str]) -> InvalidRequest:
    names = ", ".join(repr(n) for n in unknown)
    listed = sorted(known, key=outlet_key)
    if not listed:
        hint = "no stored article names its source"
    else:
        hint = "known sources: " + ", ".join(listed[:MAX_SOURCES_LISTED])
        if len(listed) > MAX_SOURCES_LISTED:
            hint += f" (and {len(listed) - MAX_SOURCES_LISTED} more)"
    return InvalidRequest(
        f"unknown source(s): {names}; {hint}", field="filters.sources", value=list(unknown)
    )


def resolve_filters(newsdesk: Newsdesk, filters: Filters | None) -> ArticleFilter | None:
    """The store's filter for a request's ``filters``: its article ids checked first, its
    sources matched to the stored outlet names case-insensitively. A named source no
    article carries is an InvalidRequest listing the known ones: filtering on it would
    silently find nothing."""
    if filters is None:
        return None
    if filters.article_ids:
        _check_known(filters.article_ids, newsdesk.store.article_meta(filters.article_ids))
    flt = filters.to_article_filter()
    if filters.sources:
        known = newsdesk.retriever.known_sources()
        stored, unknown = match_sources(filters.sources, known)
        if unknown:
            raise _unknown_sources(unknown, known)
        flt = dataclasses.replace(flt, sources=stored)
    return flt


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
        # Named by id: summarised as asked, copies or not.
        return [found[a] for a in article_ids]
    if topic:
        hits = newsdesk.retriever.search(topic, top_k=limit * HITS_PER_ARTICLE, filters=filters)
        order: list[str] = []
        for h in hits:
            if h.article_id not in order:
                order.append(h.article_id)
    else:
        order = [
            aid
            for aid, meta in newsdesk.store.iter_article_meta()
            if filters is None or filters.matches({"article_id": aid, **meta})
        ]
    # Syndicated copies of one story are one source: the first found stands for them all,
    # so the limit buys distinct stories.
    found = newsdesk.store.get_articles(order[: limit * COPIES_READ])
    return one_per_copy_group(found[a] for a in order[: limit * COPIES_READ] if a in found)[:limit]
