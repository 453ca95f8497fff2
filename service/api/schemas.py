"""Request and response bodies at the HTTP edge.

Every rule the server enforces on a field is also in the OpenAPI schema (a pattern
where a length or an enum is not enough), so a client or a fuzzer generating from the
schema sends what the server accepts, and nothing else.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from service.models import (
    MAX_HISTORY_MESSAGES,
    MAX_QUESTION_CHARS,
    MAX_TOP_K,
    Citation,
    Usage,
)
from vectorstore.ingest import normalize_published_at

# ISO 8601 as the server reads it: a calendar date (leap years included, so the schema
# never admits 2023-02-29), optionally a time and a UTC offset. Digits are [0-9], not
# \d, which in Python also matches other scripts' digits that dates don't accept.
_YEAR = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    "|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29"
_TIME = (
    r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?"
)
ISO_DATE_PATTERN = f"^({_YEAR}-{_MONTH_DAY}|{_LEAP_DAY}){_TIME}$"
ISO_DATE_DESCRIPTION = (
    "ISO 8601 date (2024-03-01) or date-time (2024-03-01T09:30, 2024-03-01T09:30:00Z, "
    "2024-03-01T09:30:00+02:00)."
)


def _invisible_class() -> str:
    """A regex class of what an article can't consist of alone: whitespace (as Python's
    str.strip sees it), format characters (Cf: zero-width, bidi controls) and NUL."""
    chars = [
        c
        for c in map(chr, range(sys.maxunicode + 1))
        if c == "\x00" or c.isspace() or unicodedata.category(c) == "Cf"
    ]
    ranges: list[list[int]] = []
    for code in map(ord, chars):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def esc(code: int) -> str:
        return rf"\u{code:04x}" if code <= 0xFFFF else rf"\U{code:08x}"

    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)


# make_article's rule: no NUL anywhere and at least one character that is neither
# whitespace nor a format character. (Text that is only site boilerplate, a lone
# "Share" line, is still refused; a pattern can't say that.)
ARTICLE_TEXT_PATTERN = rf"^[^\x00]*[^{_invisible_class()}][^\x00]*$"
# make_article's rule for ids: once stripped, not "." or ".." (they can't be used in a
# URL), and no slash, backslash or newline. Blank means none: the id is derived. So:
# whitespace, then a core that starts and ends with a visible character, then whitespace.
ARTICLE_ID_PATTERN = r"^\s*(?!\.\.?\s*$)([^\s/\\]([^/\\\n]*[^\s/\\])?)?\s*$"
# str.strip()'s whitespace is what _not_blank refuses.
NOT_BLANK_PATTERN = r"\S"


def matches(pattern: str, value: str) -> bool:
    """JSON Schema's reading of ``pattern``: a search, not a full match."""
    return re.search(pattern, value) is not None


def iso_or_none(value: str) -> str | None:
    """The normalised date, or None when ``value`` is not what ISO_DATE_PATTERN allows."""
    return normalize_published_at(value) if matches(ISO_DATE_PATTERN, value) else None


def _iso(value: str) -> str:
    iso = iso_or_none(value)
    if iso is None:
        raise ValueError("must be an ISO 8601 date or date-time")
    return iso


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _json_integer(value: Any) -> Any:
    # Pydantic's lax int also takes "5" and true, which the schema's "integer" refuses;
    # 5.0 is an integer to JSON Schema, so numbers go on to int's own check.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


IsoDate = Annotated[
    str,
    AfterValidator(_iso),
    Field(
        description=ISO_DATE_DESCRIPTION,
        json_schema_extra={"pattern": ISO_DATE_PATTERN},
    ),
]
NonBlank = Annotated[
    str, AfterValidator(_not_blank), Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN})
]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    article_ids: list[str] | None = Field(
        default=None,
        max_length=200,
        description="Ids of stored articles; an id not in the store is a 400 unknown_article.",
    )
    sources: list[str] | None = Field(default=None, max_length=50)
    published_after: IsoDate | None = None
    published_before: IsoDate | None = None


class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How many people fled Kursk?"}]},
    )

    question: NonBlank = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[HistoryMessage] = Field(default_factory=list, max_length=MAX_HISTORY_MESSAGES)
    filters: Filters | None = None
    # Constraints before the validator, or the schema says "ge" instead of "minimum".
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K), BeforeValidator(_json_integer)] | None = None


class SummaryBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"topic": "Kursk", "max_words": 150}]}
    )

    topic: str | None = Field(default=None, max_length=MAX_QUESTION_CHARS)
    article_ids: list[str] | None = Field(
        default=None,
        max_length=50,
        description="Ids of stored articles; an id not in the store is a 400 unknown_article.",
    )
    filters: Filters | None = None
    max_words: Annotated[int, Field(ge=30, le=2000), BeforeValidator(_json_integer)] = 250


class BriefingBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"topic": "Kursk", "format": "json"}]}
    )

    topic: NonBlank = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    as_of: IsoDate | None = None
    audience: str | None = Field(default=None, max_length=200)
    format: Literal["json", "markdown"] = "json"


class ArticleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "Flood in Ardo\n\nThe river Oona flooded 40 homes on Monday.",
                    "source": "Ardo Gazette",
                    "published_at": "2024-08-12",
                }
            ]
        },
    )

    # The text and id rules are checked by make_article (422 invalid_article), not here:
    # the patterns only publish them.
    text: str = Field(
        min_length=1,
        description=(
            "The article. No NUL characters, and at least one character that is not "
            "whitespace or an invisible format character (zero-width, bidi controls). "
            "Text that is only site boilerplate (a lone 'Share' line) is refused too."
        ),
        json_schema_extra={"pattern": ARTICLE_TEXT_PATTERN},
    )
    title: str | None = Field(default=None, max_length=1000)
    source: str | None = Field(default=None, max_length=300)
    url: str | None = Field(default=None, max_length=2000)
    author: str | None = Field(default=None, max_length=300)
    published_at: str | None = Field(
        default=None,
        description="ISO 8601 date or date-time; anything else is stored as unknown, with a "
        "warning in the response.",
    )
    id: (
        Annotated[str, Field(max_length=128, json_schema_extra={"pattern": ARTICLE_ID_PATTERN})]
        | None
    ) = Field(
        default=None,
        description=(
            "Your id for the article (default: derived from the text). No slash, backslash "
            "or newline, and not '.' or '..'; surrounding whitespace is dropped."
        ),
    )


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
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"messages": [{"role": "user", "content": "How many people fled Kursk?"}]}]
        },
    )

    model: str = "newsdesk"
    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=MAX_HISTORY_MESSAGES + 1,
        description=(
            "The whole conversation. Of the user and assistant messages, the last must be "
            f"from the user, with text of 1 to {MAX_QUESTION_CHARS} characters: it is the "
            "question answered (400 otherwise)."
        ),
    )
    # Strict: lax validation would take 0 and "no", which the schema's boolean refuses.
    stream: bool = Field(default=False, strict=True)


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
