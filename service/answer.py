"""Questions to cited answers: condense -> retrieve -> engine (which verifies) -> respond."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.context import Newsdesk
from service.conversation import Message, condense
from service.engines.protocol import AnswerJob
from service.engines.results import REFUSAL
from service.models import Answer
from service.passages import passages_from_hits
from vectorstore.store import ArticleFilter


@dataclass
class Question:
    text: str
    history: list[Message] = field(default_factory=list)
    filters: ArticleFilter | None = None
    top_k: int | None = None


class AnswerService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    def answer(self, q: Question) -> Answer:
        standalone, context, usage = condense(self.nd.llm, q.text, q.history)
        top_k = q.top_k or self.nd.settings.top_k
        hits = self.nd.retriever.search(standalone, top_k=top_k, filters=q.filters)
        articles = self.nd.store.get_articles(sorted({h.article_id for h in hits}))
        engine = self.nd.engine
        passages = passages_from_hits(hits, articles, engine.passage_budget(standalone))
        if passages:
            result = engine.answer(AnswerJob(q.text, standalone, context, passages))
        else:
            # Nothing retrieved, nothing to cite: no engine could do better than refuse.
            result = Answer(answer=REFUSAL, refused=True, engine=engine.name)
        result.usage = usage + result.usage
        result.standalone_question = standalone if standalone != q.text else None
        return result
