"""Request and response bodies at the HTTP edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.models import (
    MAX_HISTORY_MESSAGES,
    MAX_QUESTION_CHARS,
    MAX_TOP_K,
    Citation,
    Usage,
)
from vectorstore.ingest import normalize_published_at


def _iso(value: str) -> str:
    iso = normalize_published_at(value)
    if iso is None:
        raise ValueError("must be an ISO 8601 date or date-time")
    return iso


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


IsoDate = Annotated[str, AfterValidator(_iso)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    article_ids: list[str] | None = Field(default=None, max_length=200)
    sources: list[str] | None = Field(default=None, max_length=50)
    published_after: IsoDate | None = None
    published_before: IsoDate | None = None


class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: NonBlank = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[HistoryMessage] = Field(default_factory=list, max_length=MAX_HISTORY_MESSAGES)
    filters: Filters | None = None
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)


class SummaryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str | None = Field(default=None, max_length=MAX_QUESTION_CHARS)
    article_ids: list[str] | None = Field(default=None, max_length=50)
    filters: Filters | None = None
    max_words: int = Field(default=250, ge=30, le=2000)


class BriefingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: NonBlank = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    as_of: IsoDate | None = None
    audience: str | None = Field(default=None, max_length=200)
    format: Literal["json", "markdown"] = "json"


class ArticleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    title: str | None = Field(default=None, max_length=1000)
    source: str | None = Field(default=None, max_length=300)
    url: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=300)
    published_at: str | None = None
    id: str | None = Field(default=None, max_length=128)


class ArticleMeta(BaseModel):
    id: str
    title: str
    source: str | None = None
    url: str | None = None
    author: str | None = None
    published_at: str | None = None
    content_hash: str
    chunks: int
    chars: int | None = None


class ArticleFull(ArticleMeta):
    text: str


class ArticleList(BaseModel):
    items: list[ArticleMeta]
    total: int
    offset: int
    limit: int


class IngestResult(BaseModel):
    added: int
    updated: int
    unchanged: int
    failed: int
    chunks: int
    article_ids: list[str]
    errors: list[dict[str, str]]
    warnings: list[dict[str, str]]


class Span(BaseModel):
    article_id: str
    title: str
    start: int
    end: int
    text: str
    context_start: int
    context_end: int
    before: str
    after: str


# ---- OpenAI-compatible chat ---------------------------------------------------------


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return " ".join(
                str(part.get("text", "")) for part in self.content if part.get("type") == "text"
            )
        return ""


class ChatCompletionBody(BaseModel):
    # OpenAI clients send many optional fields (temperature, n, user...): accepted, unused.
    model_config = ConfigDict(extra="allow")

    model: str = "newsdesk"
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_HISTORY_MESSAGES + 1)
    stream: bool = False


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatChoiceMessage
    finish_reason: Literal["stop"] = "stop"


class ChatUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class NewsdeskExtra(BaseModel):
    engine: str
    refused: bool
    citations_verified: int
    citations_rejected: int
    estimated_cost_usd: float


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    citations: list[Citation]
    newsdesk: NewsdeskExtra


def chat_usage(usage: Usage) -> ChatUsage:
    return ChatUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )
