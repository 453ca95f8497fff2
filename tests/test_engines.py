"""Engines: the fallback policy against fake engines, and the extractive path's
independence from prompts (it must work with prompts/ unreadable)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import pytest

from service.answer import AnswerService
from service.brief import BriefingService
from service.context import Newsdesk
from service.engines.extractive.engine import ExtractiveEngine
from service.engines.fallback import FallbackEngine
from service.engines.protocol import AnswerJob, BriefJob, Engine, SummaryJob
from service.llm import LLMError, LLMUnavailable
from service.models import Answer, Briefing, CitedResult, EngineName, Summary
from service.requests import AskBody as Question
from service.requests import BriefingBody, SummaryBody
from service.requests import HistoryMessage as Message
from service.settings import Settings
from service.summarize import SummaryService
from tests.conftest import SEEDS
from tests.llm_mock import BASE_URL
from vectorstore.ingest import read_paths

ANSWER_JOB = AnswerJob("q?", "q?", "", [])
SUMMARY_JOB = SummaryJob([], None, 100, 3)
BRIEF_JOB = BriefJob([], "topic", None, None)


class FakeEngine:
    """Answers every job with an empty result of its own name, or raises ``fails``."""

    def __init__(self, name: EngineName, fails: Exception | None = None) -> None:
        self._name = name
        self.fails = fails
        self.calls: list[str] = []

    @property
    def name(self) -> EngineName:
        return self._name

    def passage_budget(self, question: str) -> int | None:
        return 1234 if self._name == "llm" else None

    def _result(self, job: str) -> None:
        self.calls.append(job)
        if self.fails is not None:
            raise self.fails

    def answer(self, job: AnswerJob) -> Answer:
        self._result("answer")
        return Answer(answer=self._name, refused=False, engine=self._name)

    def summarize(self, job: SummaryJob) -> Summary:
        self._result("summarize")
        return Summary(engine=self._name, points=[])

    def brief(self, job: BriefJob) -> Briefing:
        self._result("brief")
        return Briefing(
            title="t",
            topic="t",
            engine=self._name,
            bottom_line=[],
            developments=[],
            perspectives=[],
        )


JOBS: dict[str, Callable[[Engine], CitedResult]] = {
    "answer": lambda e: e.answer(ANSWER_JOB),
    "summarize": lambda e: e.summarize(SUMMARY_JOB),
    "brief": lambda e: e.brief(BRIEF_JOB),
}


def fallback(llm: FakeEngine, extractive: FakeEngine, on: bool) -> FallbackEngine:
    settings = Settings(_env_file=None, llm_fallback="extractive" if on else "none")
    return FallbackEngine(llm, extractive, settings)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_working_llm_answers_alone(job: str) -> None:
    llm, extractive = FakeEngine("llm"), FakeEngine("extractive")
    result = JOBS[job](fallback(llm, extractive, on=True))
    assert result.engine == "llm" and result.fallback_reason is None
    assert llm.calls == [job] and extractive.calls == []


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_failing_llm_falls_back_with_the_reason(
    job: str, caplog: pytest.LogCaptureFixture
) -> None:
    llm = FakeEngine("llm", fails=LLMUnavailable("endpoint down"))
    extractive = FakeEngine("extractive")
    with caplog.at_level(logging.WARNING, logger="service.engines.fallback"):
        result = JOBS[job](fallback(llm, extractive, on=True))
    assert result.engine == "extractive"
    assert result.fallback_reason == "llm_unavailable: endpoint down"
    assert extractive.calls == [job]
    assert "LLM failed (llm_unavailable)" in caplog.text


@pytest.mark.parametrize("job", sorted(JOBS))
def test_with_the_fallback_off_the_llm_error_surfaces(job: str) -> None:
    error = LLMUnavailable("endpoint down")
    extractive = FakeEngine("extractive")
    with pytest.raises(LLMError) as raised:
        JOBS[job](fallback(FakeEngine("llm", fails=error), extractive, on=False))
    assert raised.value is error and extractive.calls == []


def test_only_llm_errors_fall_back() -> None:
    # A bug in the LLM path must not hide behind an extractive answer.
    extractive = FakeEngine("extractive")
    with pytest.raises(KeyError):
        fallback(FakeEngine("llm", fails=KeyError("x")), extractive, on=True).answer(ANSWER_JOB)
    assert extractive.calls == []


def test_the_fallback_reads_the_passages_the_llm_would() -> None:
    engine = fallback(FakeEngine("llm"), FakeEngine("extractive"), on=True)
    assert engine.name == "llm" and engine.passage_budget("q?") == 1234


def test_without_an_llm_the_extractive_engine_answers(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    assert isinstance(make_newsdesk().engine, ExtractiveEngine)
    with_llm = make_newsdesk(llm_base_url=BASE_URL).engine
    assert isinstance(with_llm, FallbackEngine) and with_llm.name == "llm"


# ---- the extractive path reads no prompt ----------------------------------------------


@pytest.fixture
def no_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every module's load_prompt raises, wherever it was imported."""

    def refuse(name: str, *_args: object) -> None:
        raise AssertionError(f"the extractive path loaded prompt {name!r}")

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("service") and hasattr(module, "load_prompt"):
            monkeypatch.setattr(module, "load_prompt", refuse)


@pytest.mark.usefixtures("no_prompts")
def test_extractive_answers_summaries_and_briefings_load_no_prompt(
    newsdesk: Newsdesk,
) -> None:
    newsdesk.indexer.index(read_paths([SEEDS]))
    history = [Message("user", "How many people fled the Kursk region?")]
    answers = AnswerService(newsdesk)
    for question in (
        Question("How many people fled the Kursk region?"),
        Question("and how many were captured?", history=history),
    ):
        assert answers.answer(question).engine == "extractive"
    assert SummaryService(newsdesk).summarize(SummaryBody()).engine == "extractive"
    briefing = BriefingService(newsdesk).brief(BriefingBody(topic="Kursk"))
    assert briefing.engine == "extractive"


def test_nothing_retrieved_is_a_refusal_from_the_engine_in_charge(newsdesk: Newsdesk) -> None:
    a = AnswerService(newsdesk).answer(Question("How many people fled the Kursk region?"))
    assert a.refused and a.engine == "extractive" and a.citations == []


@pytest.mark.usefixtures("no_prompts")
def test_the_prompt_guard_catches_the_llm_path(make_newsdesk: Callable[..., Newsdesk]) -> None:
    with pytest.raises(AssertionError, match="loaded prompt 'answer'"):
        make_newsdesk(llm_base_url=BASE_URL).engine.passage_budget("q?")
