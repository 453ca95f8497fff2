"""Neutral multi-source summaries: every relevant article represented, every point cited.

select articles -> is the topic covered at all? -> engine (which verifies and balances)
-> respond.
"""

from __future__ import annotations

from service.articles import resolve_filters, select_articles
from service.context import Newsdesk
from service.engines.extractive.relevance import topic_support
from service.engines.extractive.vectors import SentenceEmbedder
from service.engines.protocol import SummaryJob
from service.engines.results import summary_result
from service.errors import NothingFound
from service.models import Summary, Usage
from service.requests import SummaryBody
from service.syndicated import note_copies
from service.verify import CitationLedger

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
        # Retrieval always returns the nearest articles, related or not: a topic they do
        # not cover is refused (the rule answers use), never summarised from unrelated
        # quotes. Articles named by id are summarised as asked.
        if req.topic and not req.article_ids:
            embedder = SentenceEmbedder(self.nd.embedder, self.nd.sentence_vectors)
            if not topic_support(embedder, req.topic, articles).covered():
                return summary_result(
                    req.topic,
                    self.nd.engine.name,
                    CitationLedger([]),
                    [],
                    [],
                    usage=Usage(),
                    refused=True,
                )
        summary = self.nd.engine.summarize(
            SummaryJob(articles, req.topic, req.max_words, MAX_POINTS)
        )
        return note_copies(self.nd, summary)
