"""Questions to cited answers: condense -> retrieve -> engine -> verify -> respond."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from service.context import Newsdesk
from service.extractive import (
    SentenceScorer,
    article_sentences,
    pick_answer_sentences,
    rank_for_question,
)
from service.fallback import llm_or_extractive
from service.llm import LLMError
from service.models import Answer, Usage
from service.passages import (
    Passage,
    fit_to_window,
    new_nonce,
    passages_from_hits,
    render_passages,
)
from service.prompts import load_prompt
from service.verify import CLAIMS_SCHEMA, CitationLedger
from vectorstore.chunk import count_tokens
from vectorstore.store import ArticleFilter

log = logging.getLogger(__name__)

REFUSAL = "The sources don't say."
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"refused": {"type": "boolean"}, "claims": CLAIMS_SCHEMA},
    "required": ["claims"],
}
CONDENSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string"}},
    "required": ["question"],
}


@dataclass
class Message:
    role: str  # "user" or "assistant"
    content: str


@dataclass
class Question:
    text: str
    history: list[Message] = field(default_factory=list)
    filters: ArticleFilter | None = None
    top_k: int | None = None


_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|what about|how about|then)\b|\b(they|them|their|it|its|that|those|"
    r"these|this|he|she|his|her|there)\b",
    re.IGNORECASE,
)


def previous_user_question(history: list[Message]) -> str | None:
    for message in reversed(history):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    return None


def looks_like_follow_up(question: str) -> bool:
    return bool(_FOLLOW_UP.search(question)) or len(question.split()) <= 4


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        total_tokens=a.total_tokens + b.total_tokens,
        estimated_cost_usd=round(a.estimated_cost_usd + b.estimated_cost_usd, 6),
    )


class AnswerService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk
        self.settings = newsdesk.settings
        self.scorer = SentenceScorer(newsdesk.embedder, newsdesk.sentence_vectors)

    # ---- conversation -------------------------------------------------------------

    def condense(self, question: str, history: list[Message]) -> tuple[str, str, Usage]:
        """Standalone question for retrieval, the context to keep, and LLM usage.

        With an LLM the follow-up is rewritten by the model; without one the previous
        question is carried along as context for follow-up-looking questions.
        """
        previous = previous_user_question(history)
        if not previous:
            return question, "", Usage()
        llm = self.nd.llm
        if llm is not None:
            convo = "\n".join(f"{m.role}: {m.content}" for m in history[-10:])
            system, user = load_prompt("condense_question").render(history=convo, question=question)
            try:
                result = llm.complete_json(
                    system=system,
                    user=user,
                    schema=CONDENSE_SCHEMA,
                    schema_name="standalone_question",
                    max_tokens=200,
                )
                rewritten = str(result.data.get("question") or "").strip()
                if rewritten:
                    return rewritten, "", result.usage
            except LLMError as exc:
                log.warning("condensing the question failed, using heuristics: %s", exc)
        if looks_like_follow_up(question):
            return f"{question} ({previous})", previous, Usage()
        return question, "", Usage()

    # ---- main entry -----------------------------------------------------------------

    def answer(self, q: Question) -> Answer:
        standalone, context, usage = self.condense(q.text, q.history)
        top_k = q.top_k or self.settings.top_k
        hits = self.nd.retriever.search(standalone, top_k=top_k, filters=q.filters)
        articles = self.nd.store.get_articles(sorted({h.article_id for h in hits}))
        budget = self._context_budget(standalone)
        passages = passages_from_hits(hits, articles, budget)

        def with_llm() -> Answer:
            answer = self._llm_answer(standalone, passages)
            answer.usage = add_usage(usage, answer.usage)
            return answer

        def extractive() -> Answer:
            answer = self._extractive_answer(q.text, context, passages)
            answer.usage = usage
            return answer

        result = llm_or_extractive(self.nd, with_llm, extractive, "answering")
        result.standalone_question = standalone if standalone != q.text else None
        return result

    def _context_budget(self, question: str) -> int:
        prompt = load_prompt("answer")
        fixed = prompt.template_tokens + count_tokens(question)
        budget = self.settings.llm_context_window - self.settings.llm_max_output_tokens - fixed
        return max(200, budget - 50)

    def _llm_answer(self, question: str, passages: list[Passage]) -> Answer:
        llm = self.nd.llm
        assert llm is not None
        if not passages:
            return Answer(answer=REFUSAL, refused=True, engine="llm")
        nonce = new_nonce()
        prompt = load_prompt("answer")
        passages, system, user = fit_to_window(
            lambda ps: prompt.render(
                nonce=nonce, max_claims=5, question=question, passages=render_passages(ps, nonce)
            ),
            passages,
            self.settings.llm_context_window - self.settings.llm_max_output_tokens,
        )
        result = llm.complete_json(
            system=system, user=user, schema=ANSWER_SCHEMA, schema_name="cited_answer"
        )
        ledger = CitationLedger(passages)
        claims = [] if result.data.get("refused") is True else result.data.get("claims")
        points = ledger.points(claims)
        return self._respond(points, ledger, "llm", result.usage)

    def _extractive_answer(self, question: str, context: str, passages: list[Passage]) -> Answer:
        sentences = []
        seen = set()
        for p in passages:
            for s in article_sentences(p.article, p.start, p.end):
                if s.key not in seen:
                    seen.add(s.key)
                    sentences.append(s)
        ranked = rank_for_question(self.scorer, question, sentences, context=context)
        top = ranked[:12]
        vectors = (
            dict(
                zip(
                    [r.sentence.key for r in top],
                    self.scorer.vectors([r.sentence for r in top]),
                    strict=True,
                )
            )
            if top
            else {}
        )
        chosen = pick_answer_sentences(top, vectors)
        ledger = CitationLedger(passages)
        points = []
        for scored in chosen:
            passage = next(
                p
                for p in passages
                if p.article.id == scored.sentence.article.id
                and p.start <= scored.sentence.start < p.end
            )
            point = ledger.point(
                {
                    "text": scored.sentence.text,
                    "quotes": [{"passage": passage.n, "quote": scored.sentence.text}],
                }
            )
            if point:
                points.append(point)
        return self._respond(points, ledger, "extractive", Usage())

    def _respond(self, points: list, ledger: CitationLedger, engine: str, usage: Usage) -> Answer:
        if not points:
            return Answer(
                answer=REFUSAL,
                refused=True,
                engine=engine,
                usage=usage,  # type: ignore[arg-type]
                citations_verified=ledger.verified,
                citations_rejected=ledger.rejected,
                claims_dropped=ledger.claims_dropped,
            )
        text = " ".join(f"{p.text} " + "".join(f"[{n}]" for n in p.citations) for p in points)
        return Answer(
            answer=text.strip(),
            refused=False,
            engine=engine,  # type: ignore[arg-type]
            citations=ledger.citations,
            usage=usage,
            citations_verified=ledger.verified,
            citations_rejected=ledger.rejected,
            claims_dropped=ledger.claims_dropped,
        )
