"""Pydantic shapes shared by the HTTP API, the Slack bot and the CLI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Engine = Literal["llm", "extractive"]

# Request limits shared by every front end (HTTP API, Slack, CLI).
MAX_QUESTION_CHARS = 2000
MAX_HISTORY_MESSAGES = 40
MAX_TOP_K = 50


class Citation(BaseModel):
    """A verified span: ``quote == canonical_text(article_id)[start:end]`` always holds."""

    n: int
    article_id: str
    title: str
    source: str | None = None
    published_at: str | None = None
    start: int
    end: int
    quote: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated_cost_usd: float = 0.0


class Answer(BaseModel):
    answer: str
    refused: bool
    engine: Engine
    citations: list[Citation] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    citations_verified: int = 0
    citations_rejected: int = 0
    claims_dropped: int = 0
    standalone_question: str | None = None
    fallback_reason: str | None = None


class Point(BaseModel):
    """One claim of a summary or briefing, bound to citation numbers."""

    text: str
    citations: list[int]


class Difference(BaseModel):
    """Sources disagree: each side keeps its own citation, from different articles."""

    topic: str
    sides: list[Point]


class SourceShare(BaseModel):
    article_id: str
    title: str
    source: str | None = None
    citations: int
    share: float


class Summary(BaseModel):
    topic: str | None = None
    engine: Engine
    points: list[Point]
    differences: list[Difference] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    balance: list[SourceShare] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    citations_verified: int = 0
    citations_rejected: int = 0
    claims_dropped: int = 0
    refused: bool = False
    fallback_reason: str | None = None


class Development(Point):
    date: str | None = None  # ISO date of the source article, or None when undated


class Perspective(BaseModel):
    actor: str
    points: list[Point]


class BriefingSource(BaseModel):
    article_id: str
    title: str
    source: str | None = None
    published_at: str | None = None
    url: str | None = None


class Briefing(BaseModel):
    title: str
    topic: str
    as_of: str | None = None
    audience: str | None = None
    engine: Engine
    bottom_line: list[Point]
    developments: list[Development]
    perspectives: list[Perspective]
    differences: list[Difference] = Field(default_factory=list)
    open_questions: list[Point] = Field(default_factory=list)
    sources: list[BriefingSource] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    balance: list[SourceShare] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    citations_verified: int = 0
    citations_rejected: int = 0
    claims_dropped: int = 0
    refused: bool = False
    fallback_reason: str | None = None
