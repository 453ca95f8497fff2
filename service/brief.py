"""Briefings on request: bottom line, developments in time order, perspectives by actor,
where sources differ, open questions, sources. JSON and Markdown.

select articles (as of a date) -> engine (which verifies) -> respond.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.articles import MAX_ARTICLES, select_articles
from service.context import Newsdesk
from service.engines.protocol import BriefJob, NothingToSummarize
from service.models import Briefing
from vectorstore.store import ArticleFilter


@dataclass
class BriefRequest:
    topic: str
    as_of: str | None = None
    audience: str | None = None
    max_articles: int = MAX_ARTICLES


class BriefingService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    def brief(self, req: BriefRequest) -> Briefing:
        # "As of" a date: nothing published after it; undated articles stay in, labelled.
        filters = ArticleFilter(published_before=req.as_of) if req.as_of else None
        articles = select_articles(self.nd, req.topic, None, filters, req.max_articles)
        if req.as_of:
            undated = select_articles(self.nd, req.topic, None, None, req.max_articles)
            known = {a.id for a in articles}
            articles += [a for a in undated if a.published_at is None and a.id not in known]
        if not articles:
            raise NothingToSummarize("no stored article matches the topic")
        return self.nd.engine.brief(BriefJob(articles, req.topic, req.as_of, req.audience))
