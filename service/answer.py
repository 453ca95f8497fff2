"""Questions to cited answers: condense -> retrieve (per facet) -> engine (which
verifies) -> respond."""

from __future__ import annotations

import dataclasses

from service.articles import resolve_filters
from service.context import Newsdesk
from service.conversation import condense
from service.engines.protocol import AnswerJob
from service.engines.results import REFUSAL
from service.models import Answer, Usage
from service.passages import passages_from_hits
from service.requests import AskBody
from service.stories import story_scope
from vectorstore.retrieve import Hit, mentioned_days
from vectorstore.store import ArticleFilter
from vectorstore.timing import stage

# Passages added for each day a question names ("reported by X on September 26, 2023"):
# a date is a filter on the evidence, not just words to match.
HITS_PER_DATE = 2


class AnswerService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    def job(self, q: AskBody) -> AnswerJob | None:
        """What the engine is asked, or None when nothing was retrieved."""
        return self._job(q)[0]

    def _job(self, q: AskBody) -> tuple[AnswerJob | None, str, Usage]:
        filters = resolve_filters(self.nd, q.filters)
        # "What do outlets say about story story-ab12?" is answered from that story.
        question, filters = story_scope(self.nd, q.question, filters)
        standalone, context, usage = condense(self.nd.llm, question, q.history)
        top_k = q.top_k or self.nd.settings.top_k
        hits = self.nd.retriever.search(standalone, top_k=top_k, filters=filters)
        hits += self._dated_hits(standalone, filters, {h.chunk.id for h in hits})
        with stage("articles"):
            articles = self.nd.store.get_articles(sorted({h.article_id for h in hits}))
        passages = passages_from_hits(hits, articles, self.nd.engine.passage_budget(standalone))
        if not passages:
            return None, standalone, usage
        return AnswerJob(question, standalone, context, passages), standalone, usage

    def _dated_hits(
        self, question: str, filters: ArticleFilter | None, seen: set[str]
    ) -> list[Hit]:
        """The best passages of each day the question names, within the request's
        filters, that the main search did not already find."""
        out: list[Hit] = []
        for day in mentioned_days(question):
            base = filters or ArticleFilter()
            after = max(filter(None, [base.published_after, f"{day}T00:00:00+00:00"]))
            before = min(filter(None, [base.published_before, f"{day}T23:59:59+00:00"]))
            scoped = dataclasses.replace(base, published_after=after, published_before=before)
            for hit in self.nd.retriever.search(question, top_k=HITS_PER_DATE, filters=scoped):
                if hit.chunk.id not in seen:
                    seen.add(hit.chunk.id)
                    out.append(hit)
        return out

    def answer(self, q: AskBody) -> Answer:
        job, standalone, usage = self._job(q)
        engine = self.nd.engine
        if job is not None:
            with stage("engine"):
                result = engine.answer(job)
        else:
            # Nothing retrieved, nothing to cite: no engine could do better than refuse.
            result = Answer(answer=REFUSAL, refused=True, engine=engine.name)
        result.usage = usage + result.usage
        result.standalone_question = standalone if standalone != q.question else None
        return result
