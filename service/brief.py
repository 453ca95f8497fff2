"""Briefings on request: bottom line, developments in time order, perspectives by actor,
where sources differ, open questions, sources. JSON and Markdown.

select articles (as of a date) -> is the topic covered at all? -> engine (which verifies)
-> respond.
"""

from __future__ import annotations

from service.articles import MAX_ARTICLES, select_articles
from service.context import Newsdesk
from service.engines.extractive.relevance import no_coverage, topic_support
from service.engines.extractive.vectors import SentenceEmbedder
from service.engines.protocol import BriefJob
from service.engines.results import briefing_result
from service.errors import NothingFound
from service.models import Briefing, Usage
from service.requests import BriefingBody, Filters
from service.syndicated import note_copies
from service.verify import CitationLedger


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
        # The nearest articles are not necessarily about the topic: one they do not cover
        # gets "no coverage of X" (the rule answers use), not a briefing of unrelated
        # quotes, and lists no sources.
        embedder = SentenceEmbedder(self.nd.embedder, self.nd.sentence_vectors)
        if not topic_support(embedder, req.topic, articles).covered():
            return self.refused(req)
        briefing = self.nd.engine.brief(BriefJob(articles, req.topic, req.as_of, req.audience))
        return note_copies(self.nd, briefing)

    def refused(self, req: BriefingBody) -> Briefing:
        job = BriefJob([], req.topic, req.as_of, req.audience)
        return briefing_result(
            job,
            self.nd.engine.name,
            CitationLedger([]),
            title=no_coverage(req.topic),
            bottom_line=[],
            developments=[],
            perspectives=[],
            differences=[],
            open_questions=[],
            usage=Usage(),
            refused=True,
        )
