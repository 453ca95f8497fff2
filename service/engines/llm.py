"""The LLM engine. One pipeline for every job: prompt -> fit to window -> complete_json ->
ledger -> result, parameterised by the prompt, the reply's schema and how a verified reply
becomes a result. Nothing the model says reaches a result unless the ledger located its
quote in the article."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service.engines.llm_schemas import ANSWER_SCHEMA, BRIEF_SCHEMA, SUMMARY_SCHEMA
from service.engines.protocol import AnswerJob, BriefJob, SummaryJob
from service.engines.results import (
    UNDATED,
    answer_result,
    article_date,
    briefing_result,
    summary_result,
    verification_counts,
)
from service.llm import LLMClient
from service.models import (
    Answer,
    Briefing,
    CitedResult,
    Development,
    EngineName,
    Perspective,
    Summary,
    Usage,
)
from service.passages import Passage, fit_to_window, new_nonce, opening_passages, render_passages
from service.prompts import load_prompt
from service.settings import Settings
from service.verify import CitationLedger
from vectorstore.chunk import count_tokens
from vectorstore.store import StoredArticle

# Context budgets: tokens of passages a prompt may carry, kept as each feature's first
# version set them. An answer's budget subtracts the prompt's counted fixed text (template
# and question) plus a margin, with a floor so a tiny window still gets a passage.
# Summaries and briefings subtract a flat allowance for template and request text instead
# (both templates count ~350 tokens; nothing records why briefings keep 100 more).
# fit_to_window checks the final prompt either way, so these only decide what is offered
# to it: how many hits an answer gets, how long each article's opening is otherwise.
ANSWER_MARGIN_TOKENS = 50
ANSWER_MIN_BUDGET_TOKENS = 200
SUMMARY_PROMPT_TOKENS = 800
BRIEF_PROMPT_TOKENS = 900
# Claims an answer may make (prompts/answer.md's $max_claims).
MAX_ANSWER_CLAIMS = 5

R = TypeVar("R", bound=CitedResult)


def context_budget(settings: Settings, reserved_tokens: int, *, floor: int | None = None) -> int:
    """Tokens left in the model's window after room for its reply and ``reserved_tokens``."""
    budget = settings.llm_context_window - settings.llm_max_output_tokens - reserved_tokens
    return budget if floor is None else max(floor, budget)


@dataclass(frozen=True)
class PromptJob(Generic[R]):
    prompt: str  # prompts/<prompt>.md
    values: Mapping[str, object]  # its placeholders besides the passages and their nonce
    schema: dict[str, Any]
    schema_name: str
    # The reply's JSON to a result, with a ledger over the passages the prompt carried.
    to_result: Callable[[dict[str, Any], CitationLedger, Usage], R]


class LLMEngine:
    def __init__(self, llm: LLMClient, settings: Settings) -> None:
        self.llm = llm
        self.settings = settings

    @property
    def name(self) -> EngineName:
        return "llm"

    def passage_budget(self, question: str) -> int | None:
        fixed = load_prompt("answer").template_tokens + count_tokens(question)
        return context_budget(
            self.settings, fixed + ANSWER_MARGIN_TOKENS, floor=ANSWER_MIN_BUDGET_TOKENS
        )

    def answer(self, job: AnswerJob) -> Answer:
        def to_answer(data: dict[str, Any], ledger: CitationLedger, usage: Usage) -> Answer:
            claims = [] if data.get("refused") is True else data.get("claims")
            if isinstance(claims, list) and len(claims) > MAX_ANSWER_CLAIMS:
                # The prompt's limit, enforced: claims past it are never checked or shown.
                ledger.claims_dropped += len(claims) - MAX_ANSWER_CLAIMS
                claims = claims[:MAX_ANSWER_CLAIMS]
            return answer_result(ledger.points(claims), ledger, self.name, usage)

        values = {"max_claims": MAX_ANSWER_CLAIMS, "question": job.standalone}
        return self._run(
            PromptJob("answer", values, ANSWER_SCHEMA, "cited_answer", to_answer), job.passages
        )

    def summarize(self, job: SummaryJob) -> Summary:
        def to_summary(data: dict[str, Any], ledger: CitationLedger, usage: Usage) -> Summary:
            points = ledger.points(data.get("points"))
            differences = ledger.differences(data.get("differences"))
            if not points:
                # Refused: its differences and their citations are not shown either.
                return summary_result(
                    job.topic, self.name, CitationLedger([]), [], [], usage=usage, refused=True
                ).model_copy(update=verification_counts(ledger))
            return summary_result(
                job.topic, self.name, ledger, points, differences, usage=usage, refused=False
            )

        values = {
            "max_points": job.max_points,
            "max_words": job.max_words,
            "topic": job.topic or "everything in these articles",
        }
        budget = context_budget(self.settings, SUMMARY_PROMPT_TOKENS)
        return self._run(
            PromptJob("summarize", values, SUMMARY_SCHEMA, "neutral_summary", to_summary),
            opening_passages(job.articles, budget),
        )

    def brief(self, job: BriefJob) -> Briefing:
        def to_briefing(data: dict[str, Any], ledger: CitationLedger, usage: Usage) -> Briefing:
            bottom = ledger.points(data.get("bottom_line"))
            developments = dated_developments(ledger, data.get("developments"))
            perspectives: list[Perspective] = []
            for raw in data.get("perspectives") or []:
                if not isinstance(raw, dict):
                    continue
                mark = ledger.mark()
                points = ledger.points(raw.get("points"))
                # The actor is the model's word too: shown only if its points' quotes name it.
                actor = ledger.checked_label(raw.get("actor"), points)
                if actor:
                    perspectives.append(Perspective(actor=actor, points=points))
                else:
                    # Its points are not shown, so neither are the sources only they cited.
                    ledger.forget_since(mark)
                    ledger.claims_dropped += len(points)
            differences = ledger.differences(data.get("differences"))
            open_questions = ledger.points(data.get("open_questions"))
            refused = not (bottom or developments)
            if refused:
                # Nothing of a refused briefing is shown, however well its parts checked.
                return briefing_result(
                    job,
                    self.name,
                    CitationLedger([]),
                    title=f"Briefing: {job.topic}",
                    bottom_line=[],
                    developments=[],
                    perspectives=[],
                    differences=[],
                    open_questions=[],
                    usage=usage,
                    refused=True,
                ).model_copy(update=verification_counts(ledger))
            cited = bottom + developments
            title = ledger.checked_label(data.get("title"), cited) or f"Briefing: {job.topic}"
            return briefing_result(
                job,
                self.name,
                ledger,
                title=title,
                bottom_line=bottom,
                developments=developments,
                perspectives=perspectives,
                differences=differences,
                open_questions=open_questions,
                usage=usage,
                refused=False,
            )

        values = {
            "topic": job.topic,
            "audience": job.audience or "general readers",
            "as_of": job.as_of or "the latest articles",
        }
        budget = context_budget(self.settings, BRIEF_PROMPT_TOKENS)
        return self._run(
            PromptJob("brief", values, BRIEF_SCHEMA, "briefing", to_briefing),
            opening_passages(job.articles, budget),
        )

    def _run(self, job: PromptJob[R], passages: list[Passage]) -> R:
        nonce = new_nonce()
        prompt = load_prompt(job.prompt)
        passages, system, user = fit_to_window(
            lambda ps: prompt.render(
                nonce=nonce, passages=render_passages(ps, nonce), **job.values
            ),
            passages,
            context_budget(self.settings, 0),
        )
        result = self.llm.complete_json(
            system=system, user=user, schema=job.schema, schema_name=job.schema_name
        )
        return job.to_result(result.data, CitationLedger(passages), result.usage)


def dated_developments(ledger: CitationLedger, raws: Any) -> list[Development]:
    """Verified developments in date order. A date must be one of the cited articles'
    dates: the model can't invent one, and with one cited date it is that one."""
    developments: list[Development] = []
    for raw in raws or []:
        p = ledger.point(raw)
        if p is None:
            continue
        cited_dates = {
            article_date(article)
            for n in p.citations
            if (article := cited_article(ledger, n)) is not None
        }
        claimed = raw.get("date") if isinstance(raw, dict) else None
        date = claimed if claimed in cited_dates else None
        if date is None and len(cited_dates) == 1:
            date = next(iter(cited_dates))
        developments.append(Development(text=p.text, citations=p.citations, date=date))
    developments.sort(key=lambda d: d.date or UNDATED)
    return developments


def cited_article(ledger: CitationLedger, n: int) -> StoredArticle | None:
    aid = ledger.citations[n - 1].article_id
    return next((p.article for p in ledger.passages if p.article.id == aid), None)
