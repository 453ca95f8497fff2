"""One fallback policy for every job: the LLM first, the extractive engine if it fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from service.engines.protocol import AnswerJob, BriefJob, Engine, SummaryJob
from service.llm import LLMError
from service.models import Answer, Briefing, CitedResult, EngineName, Summary
from service.settings import Settings

log = logging.getLogger(__name__)

R = TypeVar("R", bound=CitedResult)


class FallbackEngine:
    """``llm`` answers; when it raises an LLMError and NEWSDESK_LLM_FALLBACK=extractive,
    ``extractive`` answers instead, with the failure in fallback_reason. With the fallback
    off the LLMError reaches the caller (HTTP 502/503/504)."""

    def __init__(self, llm: Engine, extractive: Engine, settings: Settings) -> None:
        self.llm = llm
        self.extractive = extractive
        # Read at each failure, not here: the setting may change while the engine lives.
        self.settings = settings

    @property
    def name(self) -> EngineName:
        return self.llm.name

    def passage_budget(self, question: str) -> int | None:
        # The LLM reads the passages first, and a fallback answer cites the same ones.
        return self.llm.passage_budget(question)

    def answer(self, job: AnswerJob) -> Answer:
        return self._run("answering", lambda e: e.answer(job))

    def summarize(self, job: SummaryJob) -> Summary:
        return self._run("summarising", lambda e: e.summarize(job))

    def brief(self, job: BriefJob) -> Briefing:
        return self._run("briefing", lambda e: e.brief(job))

    def _run(self, task: str, job: Callable[[Engine], R]) -> R:
        try:
            return job(self.llm)
        except LLMError as exc:
            if self.settings.llm_fallback != "extractive":
                raise
            log.warning("LLM failed (%s); %s with the extractive engine", exc.code, task)
            result = job(self.extractive)
            result.fallback_reason = f"{exc.code}: {exc}"
            return result
