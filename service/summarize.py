"""Neutral multi-source summaries: every relevant article represented, every point cited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.answer import add_usage
from service.context import Newsdesk
from service.extractive import (
    Sentence,
    SentenceScorer,
    article_sentences,
    centrality_scores,
    find_disagreements,
    is_prose,
    select_balanced,
)
from service.fallback import llm_or_extractive
from service.models import Difference, Point, Summary, Usage
from service.neutrality import attributed_quote
from service.passages import Passage, fit_to_window, new_nonce, render_passages
from service.prompts import load_prompt
from service.verify import CLAIMS_SCHEMA, CitationLedger
from vectorstore.chunk import count_tokens
from vectorstore.store import ArticleFilter, StoredArticle

POINTS_SCHEMA = CLAIMS_SCHEMA
DIFFERENCES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"topic": {"type": "string"}, "sides": POINTS_SCHEMA},
        "required": ["topic", "sides"],
    },
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"points": POINTS_SCHEMA, "differences": DIFFERENCES_SCHEMA},
    "required": ["points"],
}
MAX_ARTICLES = 12
MAX_SENTENCES_PER_ARTICLE = 80


class NothingToSummarize(LookupError):
    """No stored article matches the request."""


def attributed(sentence: Sentence) -> str:
    return attributed_quote(sentence.article.title, sentence.article.source, sentence.text)


def sentence_point(ledger: CitationLedger, sentence: Sentence) -> Point:
    """A source sentence as an attributed point; verbatim, so verified by construction."""
    ledger.verified += 1
    n = ledger.cite_span(sentence.article, sentence.start, sentence.end)
    return Point(text=attributed(sentence), citations=[n])


def extractive_differences(
    ledger: CitationLedger, sentences: list[Sentence], scores: np.ndarray, vectors: np.ndarray
) -> list[Difference]:
    """Where sources differ, among the 80 best-scored sentences."""
    top = [int(i) for i in np.argsort(-scores)[:80]]
    return [
        Difference(topic=d.topic, sides=[sentence_point(ledger, d.a), sentence_point(ledger, d.b)])
        for d in find_disagreements([sentences[i] for i in top], vectors[top])
    ]


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
        self.scorer = SentenceScorer(newsdesk.embedder, newsdesk.sentence_vectors)

    def select_articles(
        self,
        topic: str | None,
        article_ids: list[str] | None,
        filters: ArticleFilter | None,
        limit: int = MAX_ARTICLES,
    ) -> list[StoredArticle]:
        """The articles a summary must cover: named ones, or those retrieval finds."""
        if article_ids:
            found = self.nd.store.get_articles(article_ids)
            missing = [a for a in article_ids if a not in found]
            if missing:
                raise NothingToSummarize(f"unknown article id(s): {', '.join(missing)}")
            return [found[a] for a in article_ids]
        if topic:
            hits = self.nd.retriever.search(topic, top_k=limit * 2, filters=filters)
            order: list[str] = []
            for h in hits:
                if h.article_id not in order:
                    order.append(h.article_id)
            found = self.nd.store.get_articles(order[:limit])
            return [found[a] for a in order[:limit] if a in found]
        ids = [
            aid
            for aid, meta in self.nd.store.iter_article_meta()
            if filters is None or filters.matches({"article_id": aid, **meta})
        ]
        found = self.nd.store.get_articles(ids[:limit])
        return [found[a] for a in ids[:limit] if a in found]

    def summarize(self, req: SummaryRequest) -> Summary:
        articles = self.select_articles(req.topic, req.article_ids, req.filters)
        if not articles:
            raise NothingToSummarize("no stored article matches the request")
        return llm_or_extractive(
            self.nd,
            lambda: self._llm_summary(articles, req),
            lambda: self.extractive_summary(articles, req.topic, req.max_words, req.max_points),
            "summarising",
        )

    # ---- extractive -----------------------------------------------------------------

    def extractive_summary(
        self,
        articles: list[StoredArticle],
        topic: str | None,
        max_words: int = 250,
        max_points: int = 10,
    ) -> Summary:
        sentences = [
            s
            for a in articles
            for s in article_sentences(a)[:MAX_SENTENCES_PER_ARTICLE]
            if is_prose(s)
        ]
        if not sentences:
            return Summary(topic=topic, engine="extractive", points=[], refused=True)
        vectors = self.scorer.vectors(sentences)
        topic_vector = self.scorer.query_vector(topic) if topic else None
        # News puts what matters first: a mild lead bonus on top of centrality.
        position = np.array([1.0 / (1.0 + 0.15 * s.position) for s in sentences])
        scores = centrality_scores(vectors, topic_vector) + 0.08 * position
        chosen = select_balanced(
            sentences, scores, vectors, max_words=max_words, max_points=max_points
        )
        # Reading order: article by article as first chosen, then position.
        first_pick = {}
        for rank, i in enumerate(chosen):
            first_pick.setdefault(sentences[i].article.id, rank)
        chosen.sort(key=lambda i: (first_pick[sentences[i].article.id], sentences[i].position))

        ledger = CitationLedger([])
        points = [sentence_point(ledger, sentences[i]) for i in chosen]
        differences = extractive_differences(ledger, sentences, scores, vectors)
        return Summary(
            topic=topic,
            engine="extractive",
            points=points,
            differences=differences,
            citations=ledger.citations,
            balance=ledger.balance(),
            citations_verified=ledger.verified,
        )

    # ---- LLM ------------------------------------------------------------------------

    def article_passages(self, articles: list[StoredArticle], budget_tokens: int) -> list[Passage]:
        """The opening of every article, each cut to an equal share of the budget, so no
        article is left out because another one is long."""
        share = max(120, budget_tokens // max(1, len(articles)))
        passages = []
        for article in articles:
            end = 0
            used = 0
            for s in article_sentences(article):
                cost = count_tokens(s.text) + 1
                if used + cost > share:
                    break
                end, used = s.end, used + cost
            if end == 0:
                continue
            passages.append(Passage(len(passages) + 1, article, 0, end))
        return passages

    def _llm_summary(self, articles: list[StoredArticle], req: SummaryRequest) -> Summary:
        llm = self.nd.llm
        assert llm is not None
        settings = self.nd.settings
        budget = settings.llm_context_window - settings.llm_max_output_tokens - 800
        nonce = new_nonce()
        prompt = load_prompt("summarize")
        passages, system, user = fit_to_window(
            lambda ps: prompt.render(
                nonce=nonce,
                max_points=req.max_points,
                max_words=req.max_words,
                topic=req.topic or "everything in these articles",
                passages=render_passages(ps, nonce),
            ),
            self.article_passages(articles, budget),
            settings.llm_context_window - settings.llm_max_output_tokens,
        )
        result = llm.complete_json(
            system=system, user=user, schema=SUMMARY_SCHEMA, schema_name="neutral_summary"
        )
        ledger = CitationLedger(passages)
        points = ledger.points(result.data.get("points"))
        differences = ledger.differences(result.data.get("differences"))
        return Summary(
            topic=req.topic,
            engine="llm",
            points=points,
            differences=differences,
            citations=ledger.citations,
            balance=ledger.balance(),
            usage=add_usage(Usage(), result.usage),
            citations_verified=ledger.verified,
            citations_rejected=ledger.rejected,
            claims_dropped=ledger.claims_dropped,
            refused=not points,
        )
