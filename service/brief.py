"""Briefings on request: bottom line, developments in time order, perspectives by actor,
where sources differ, open questions, sources. JSON and Markdown.

select articles (as of a date) -> engine (which verifies) -> respond.
"""

from __future__ import annotations

from service.articles import MAX_ARTICLES, select_articles
from service.context import Newsdesk
from service.engines.protocol import BriefJob
from service.errors import NothingFound
from service.models import Briefing
from service.requests import BriefingBody, Filters


class BriefingService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    def brief(self, req: BriefingBody) -> Briefing:
        # "As of" a date: nothing published after it; undated articles stay in, labelled.
        filters = Filters(published_before=req.as_of).to_article_filter() if req.as_of else None
        articles = select_articles(self.nd, req.topic, None, filters, MAX_ARTICLES)
        if req.as_of:
            undated = select_articles(self.nd, req.topic, None, None, MAX_ARTICLES)
            known = {a.id for a in articles}
            articles += [a for a in undated if a.published_at is None and a.id not in known]
        if not articles:
            raise NothingFound("no stored article matches the topic")
        return self.nd.engine.brief(BriefJob(articles, req.topic, req.as_of, req.audience))
