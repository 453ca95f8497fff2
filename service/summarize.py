"""Neutral multi-source summaries: every relevant article represented, every point cited.

select articles -> engine (which verifies and balances) -> respond.
"""

from __future__ import annotations

from service.articles import resolve_filters, select_articles
from service.context import Newsdesk
from service.engines.protocol import SummaryJob
from service.errors import NothingFound
from service.models import Summary
from service.requests import SummaryBody

# Points a summary makes at most, as the first version set it.
MAX_POINTS = 10


class SummaryService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    def summarize(self, req: SummaryBody) -> Summary:
        filters = resolve_filters(self.nd, req.filters)
        articles = select_articles(self.nd, req.topic, req.article_ids, filters)
        if not articles:
            raise NothingFound("no stored article matches the request")
        return self.nd.engine.summarize(SummaryJob(articles, req.topic, req.max_words, MAX_POINTS))
