"""What every engine offers the feature services, and the jobs they hand it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from service.models import Answer, Briefing, EngineName, Summary
from service.passages import Passage
from vectorstore.store import StoredArticle


@dataclass(frozen=True)
class AnswerJob:
    # As asked: the extractive engine scores term coverage on the asker's own words.
    question: str
    # Rewritten to stand alone (or the question itself): what the LLM is asked.
    standalone: str
    # An earlier question carried along when a follow-up could not be rewritten; it helps
    # the meaning match but is not itself to be answered.
    context: str
    passages: list[Passage]


@dataclass(frozen=True)
class SummaryJob:
    articles: list[StoredArticle]
    topic: str | None
    max_words: int
    max_points: int


@dataclass(frozen=True)
class BriefJob:
    articles: list[StoredArticle]
    topic: str
    as_of: str | None
    audience: str | None


class Engine(Protocol):
    @property
    def name(self) -> EngineName:
        """The engine that answers first; results name the one that actually answered."""
        ...

    def passage_budget(self, question: str) -> int | None:
        """Tokens of passages this engine can read for ``question``; None for no limit."""
        ...

    def answer(self, job: AnswerJob) -> Answer: ...

    def summarize(self, job: SummaryJob) -> Summary: ...

    def brief(self, job: BriefJob) -> Briefing: ...
