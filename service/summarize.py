"""Neutral multi-source summaries: every relevant article represented, every point cited.

select articles -> engine (which verifies and balances) -> respond.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.articles import select_articles
from service.context import Newsdesk
from service.engines.protocol import NothingToSummarize, SummaryJob
from service.models import Summary
from vectorstore.store import ArticleFilter


@dataclass
class SummaryRequest:
    topic: str | None = None
    article_ids: list[str] | None = None
    filters: ArticleFilter | None = None
    max_words: int = 250
    max_points: int = 10


class SummaryService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    def summarize(self, req: SummaryRequest) -> Summary:
        articles = select_articles(self.nd, req.topic, req.article_ids, req.filters)
        if not articles:
            raise NothingToSummarize("no stored article matches the request")
        return self.nd.engine.summarize(
            SummaryJob(articles, req.topic, req.max_words, req.max_points)
        )
