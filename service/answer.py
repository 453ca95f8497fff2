"""Questions to cited answers: condense -> retrieve -> engine (which verifies) -> respond."""

from __future__ import annotations

from service.articles import resolve_filters
from service.context import Newsdesk
from service.conversation import condense
from service.engines.protocol import AnswerJob
from service.engines.results import REFUSAL
from service.models import Answer
from service.passages import passages_from_hits
from service.requests import AskBody


class AnswerService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    def answer(self, q: AskBody) -> Answer:
        filters = resolve_filters(self.nd, q.filters)
        standalone, context, usage = condense(self.nd.llm, q.question, q.history)
        top_k = q.top_k or self.nd.settings.top_k
        hits = self.nd.retriever.search(standalone, top_k=top_k, filters=filters)
        articles = self.nd.store.get_articles(sorted({h.article_id for h in hits}))
        engine = self.nd.engine
        passages = passages_from_hits(hits, articles, engine.passage_budget(standalone))
        if passages:
            result = engine.answer(AnswerJob(q.question, standalone, context, passages))
        else:
            # Nothing retrieved, nothing to cite: no engine could do better than refuse.
            result = Answer(answer=REFUSAL, refused=True, engine=engine.name)
        result.usage = usage + result.usage
        result.standalone_question = standalone if standalone != q.question else None
        return result
