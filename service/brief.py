"""Briefings on request: bottom line, developments in time order, perspectives by actor,
where sources differ, open questions, sources. JSON and Markdown."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.context import Newsdesk
from service.extractive import (
    actor_of,
    article_sentences,
    centrality_scores,
    is_development,
    is_open_question,
    is_prose,
    select_balanced,
)
from service.fallback import llm_or_extractive
from service.models import (
    Briefing,
    BriefingSource,
    Development,
    Perspective,
    Point,
)
from service.passages import fit_to_window, new_nonce, render_passages
from service.prompts import load_prompt
from service.summarize import (
    DIFFERENCES_SCHEMA,
    MAX_SENTENCES_PER_ARTICLE,
    POINTS_SCHEMA,
    NothingToSummarize,
    SummaryService,
    extractive_differences,
    sentence_point,
)
from service.verify import CitationLedger
from vectorstore.store import ArticleFilter, StoredArticle

BRIEF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "bottom_line": POINTS_SCHEMA,
        "developments": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "date": {"type": ["string", "null"]},
                    "text": {"type": "string"},
                    "quotes": POINTS_SCHEMA["items"]["properties"]["quotes"],
                },
                "required": ["text", "quotes"],
            },
        },
        "perspectives": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"actor": {"type": "string"}, "points": POINTS_SCHEMA},
                "required": ["actor", "points"],
            },
        },
        "differences": DIFFERENCES_SCHEMA,
        "open_questions": POINTS_SCHEMA,
    },
    "required": ["bottom_line", "developments"],
}


@dataclass
class BriefRequest:
    topic: str
    as_of: str | None = None
    audience: str | None = None
    max_articles: int = 12


def article_date(article: StoredArticle) -> str | None:
    return article.published_at[:10] if article.published_at else None


class BriefingService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk
        self.summaries = SummaryService(newsdesk)
        self.scorer = self.summaries.scorer

    def brief(self, req: BriefRequest) -> Briefing:
        # "As of" a date: nothing published after it; undated articles stay in, labelled.
        filters = ArticleFilter(published_before=req.as_of) if req.as_of else None
        articles = self.summaries.select_articles(req.topic, None, filters, req.max_articles)
        if req.as_of:
            undated = self.summaries.select_articles(req.topic, None, None, req.max_articles)
            known = {a.id for a in articles}
            articles += [a for a in undated if a.published_at is None and a.id not in known]
        if not articles:
            raise NothingToSummarize("no stored article matches the topic")
        return llm_or_extractive(
            self.nd,
            lambda: self._llm_brief(articles, req),
            lambda: self._extractive_brief(articles, req),
            "briefing",
        )

    def _sources(self, articles: list[StoredArticle]) -> list[BriefingSource]:
        return [
            BriefingSource(
                article_id=a.id,
                title=a.title,
                source=a.source,
                published_at=a.published_at,
                url=a.url,
            )
            for a in articles
        ]

    def _briefing(
        self,
        req: BriefRequest,
        articles: list[StoredArticle],
        ledger: CitationLedger,
        **parts: Any,
    ) -> Briefing:
        """What both engines' briefings share: the request, sources and citation record."""
        return Briefing(
            topic=req.topic,
            as_of=req.as_of,
            audience=req.audience,
            sources=self._sources(articles),
            citations=ledger.citations,
            balance=ledger.balance(),
            citations_verified=ledger.verified,
            **parts,
        )

    def _extractive_brief(self, articles: list[StoredArticle], req: BriefRequest) -> Briefing:
        sentences = [
            s
            for a in articles
            for s in article_sentences(a)[:MAX_SENTENCES_PER_ARTICLE]
            if is_prose(s)
        ]
        if not sentences:
            raise NothingToSummarize("the matching articles have no usable sentences")
        vectors = self.scorer.vectors(sentences)
        topic_vector = self.scorer.query_vector(req.topic)
        scores = centrality_scores(vectors, topic_vector)
        ledger = CitationLedger([])
        used: set[int] = set()

        def point(i: int) -> Point:
            used.add(i)
            return sentence_point(ledger, sentences[i])

        def pick(candidates: list[int], n: int, words: int) -> list[int]:
            pool = [i for i in candidates if i not in used]
            if not pool:
                return []
            sub = select_balanced(
                [sentences[i] for i in pool],
                scores[pool],
                vectors[pool],
                max_words=words,
                max_points=n,
            )
            return [pool[k] for k in sub]

        everything = list(range(len(sentences)))
        bottom = [point(i) for i in pick(everything, 2, 90)]

        dev_ids = pick([i for i in everything if is_development(sentences[i].text)], 6, 260)
        order = {a.id: k for k, a in enumerate(articles)}
        dev_ids.sort(
            key=lambda i: (
                article_date(sentences[i].article) or "9999",
                order[sentences[i].article.id],
                sentences[i].position,
            )
        )
        developments = []
        for i in dev_ids:
            p = point(i)
            developments.append(
                Development(
                    text=p.text, citations=p.citations, date=article_date(sentences[i].article)
                )
            )

        by_actor: dict[str, list[int]] = defaultdict(list)
        for i in np.argsort(-scores):
            actor = actor_of(sentences[int(i)].text)
            if actor and int(i) not in used:
                by_actor[actor].append(int(i))
        actors = sorted(by_actor, key=lambda a: -sum(scores[i] for i in by_actor[a][:2]))[:4]
        perspectives = [
            Perspective(actor=a, points=[point(i) for i in by_actor[a][:2] if i not in used])
            for a in actors
        ]
        perspectives = [p for p in perspectives if p.points]

        differences = extractive_differences(ledger, sentences, scores, vectors)

        open_ids = pick([i for i in everything if is_open_question(sentences[i].text)], 3, 120)
        open_questions = [point(i) for i in open_ids]

        return self._briefing(
            req,
            articles,
            ledger,
            title=f"Briefing: {req.topic}",
            engine="extractive",
            bottom_line=bottom,
            developments=developments,
            perspectives=perspectives,
            differences=differences,
            open_questions=open_questions,
            refused=not bottom,
        )

    def _llm_brief(self, articles: list[StoredArticle], req: BriefRequest) -> Briefing:
        llm = self.nd.llm
        assert llm is not None
        settings = self.nd.settings
        budget = settings.llm_context_window - settings.llm_max_output_tokens - 900
        nonce = new_nonce()
        prompt = load_prompt("brief")
        passages, system, user = fit_to_window(
            lambda ps: prompt.render(
                nonce=nonce,
                topic=req.topic,
                audience=req.audience or "general readers",
                as_of=req.as_of or "the latest articles",
                passages=render_passages(ps, nonce),
            ),
            self.summaries.article_passages(articles, budget),
            settings.llm_context_window - settings.llm_max_output_tokens,
        )
        result = llm.complete_json(
            system=system, user=user, schema=BRIEF_SCHEMA, schema_name="briefing"
        )
        data = result.data
        ledger = CitationLedger(passages)
        bottom = ledger.points(data.get("bottom_line"))
        developments = []
        for raw in data.get("developments") or []:
            p = ledger.point(raw)
            if p is None:
                continue
            # A date must come from a cited article; the model can't invent one.
            cited_dates = {
                article_date(passages_article)
                for n in p.citations
                if (passages_article := self._article_of(ledger, n)) is not None
            }
            claimed = raw.get("date") if isinstance(raw, dict) else None
            date = claimed if claimed in cited_dates else None
            if date is None and len(cited_dates) == 1:
                date = next(iter(cited_dates))
            developments.append(Development(text=p.text, citations=p.citations, date=date))
        developments.sort(key=lambda d: d.date or "9999")
        perspectives = []
        for raw in data.get("perspectives") or []:
            if not isinstance(raw, dict):
                continue
            points = ledger.points(raw.get("points"))
            if points and str(raw.get("actor") or "").strip():
                perspectives.append(Perspective(actor=str(raw["actor"]).strip(), points=points))
        differences = ledger.differences(data.get("differences"))
        open_questions = ledger.points(data.get("open_questions"))
        title = str(data.get("title") or "").strip() or f"Briefing: {req.topic}"
        return self._briefing(
            req,
            articles,
            ledger,
            title=title,
            engine="llm",
            bottom_line=bottom,
            developments=developments,
            perspectives=perspectives,
            differences=differences,
            open_questions=open_questions,
            usage=result.usage,
            citations_rejected=ledger.rejected,
            claims_dropped=ledger.claims_dropped,
            refused=not (bottom or developments),
        )

    @staticmethod
    def _article_of(ledger: CitationLedger, n: int) -> StoredArticle | None:
        aid = ledger.citations[n - 1].article_id
        return next((p.article for p in ledger.passages if p.article.id == aid), None)
