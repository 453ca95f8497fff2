"""The one request model of each feature, and every rule a request must meet.

The HTTP API takes these as its bodies (FastAPI validates them, and publishes the same
rules in the OpenAPI document); the command line and Slack build them with
``parse_request``, which fails with the service's InvalidRequest. What the models can't
check alone (ids the store doesn't hold) the services check, raising UnknownArticle.

The class names are the names the OpenAPI document has always given these schemas (it
takes them from the class names), hence "Body".
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from service.errors import InvalidRequest, QuestionTooLong
from vectorstore.ingest import normalize_published_at
from vectorstore.store import ArticleFilter

M = TypeVar("M", bound=BaseModel)

# Limits shared by every surface (HTTP API, Slack, CLI).
MAX_QUESTION_CHARS = 2000
MAX_HISTORY_MESSAGES = 40
MAX_MESSAGE_CHARS = 20_000
MAX_TOP_K = 50
# Search shows passages, not an answer built from them: a longer list is still cheap.
MAX_SEARCH_TOP_K = 100
MIN_SUMMARY_WORDS = 30
MAX_SUMMARY_WORDS = 2000

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
_UNKNOWN_ARTICLE_NOTE = "Ids of stored articles; an id not in the store is a 400 unknown_article."


# No docstrings on these models: one would become a "description" in the OpenAPI document,
# which tests/snapshots/openapi.json pins. Comments say what each is instead.


# Which stored articles a request may draw on; fields left empty don't narrow.
class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    article_ids: list[str] | None = Field(
        default=None, max_length=200, description=_UNKNOWN_ARTICLE_NOTE
    )
    sources: list[str] | None = Field(default=None, max_length=50)
    published_after: IsoDate | None = None
    published_before: IsoDate | None = None

    def to_article_filter(self) -> ArticleFilter:
        """The store's form of these filters (the only place it is built from a request)."""
        return ArticleFilter(
            article_ids=tuple(self.article_ids) if self.article_ids else None,
            sources=tuple(self.sources) if self.sources else None,
            published_after=self.published_after,
            published_before=self.published_before,
        )


# One earlier turn of a conversation.
class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)

    # Positional as well, HistoryMessage("user", "..."), as the older Message was built.
    # Pydantic validates through an overridden __init__, so it must take what any body
    # holds and leave every complaint to the validation.
    def __init__(self, *args: Any, **fields: Any) -> None:
        super().__init__(**dict(zip(("role", "content"), args, strict=False)), **fields)

    @classmethod
    def clipped(cls, role: str, content: str) -> HistoryMessage:
        """A turn of a conversation written elsewhere (a Slack thread, an OpenAI client's
        history), not to this limit: a longer one keeps its beginning, so the question
        is still answered."""
        return cls(role, content[:MAX_MESSAGE_CHARS])


# A question, with the conversation before it when it is a follow-up.
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

    # Positional as well, AskBody("How many fled?", history=...), as the older Question was
    # built; see HistoryMessage.
    def __init__(self, *args: Any, **fields: Any) -> None:
        super().__init__(**dict(zip(("question",), args, strict=False)), **fields)

    @property
    def text(self) -> str:
        """The question, under the name the older Question model gave it (callers that
        took a Question still read ``.text``)."""
        return self.question


# The passages retrieval finds for a query, with their exact spans (POST /v1/search,
# `newsdesk search`, the LangChain retriever).
class SearchBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "How many people fled Kursk?", "top_k": 5}]},
    )

    query: NonBlank = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: Annotated[int, Field(ge=1, le=MAX_SEARCH_TOP_K), BeforeValidator(_json_integer)] = 5
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    filters: Filters | None = None


# A neutral summary of the named articles, or of those about the topic, or (neither
# given) of every article the filters admit.
class SummaryBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"topic": "Kursk", "max_words": 150}]}
    )

    topic: str | None = Field(default=None, max_length=MAX_QUESTION_CHARS)
    article_ids: list[str] | None = Field(
        default=None, max_length=50, description=_UNKNOWN_ARTICLE_NOTE
    )
    filters: Filters | None = None
    max_words: Annotated[
        int,
        Field(ge=MIN_SUMMARY_WORDS, le=MAX_SUMMARY_WORDS),
        BeforeValidator(_json_integer),
    ] = 250


# A briefing on a topic from what was published by ``as_of`` (undated articles too).
class BriefingBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"topic": "Kursk", "format": "json"}]}
    )

    topic: NonBlank = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    as_of: IsoDate | None = None
    audience: str | None = Field(default=None, max_length=200)
    format: Literal["json", "markdown"] = "json"


# The texts a request is about: when blank or too long, they get errors of their own.
_TEXT_FIELDS = ("question", "topic", "query")


def parse_request(model: type[M], **fields: Any) -> M:
    """``model`` built from a surface's input (command-line options, a Slack message),
    checked as the API checks its bodies; the first problem is raised as InvalidRequest
    (QuestionTooLong for an overlong question or topic)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise _invalid_request(exc) from None


def _invalid_request(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    value = first.get("input")
    if field in _TEXT_FIELDS:
        if isinstance(value, str) and not value.strip():
            return InvalidRequest(f"the {field} is empty", field=field, value=value)
        if first["type"] == "string_too_long":
            return QuestionTooLong(field, first["ctx"]["max_length"], value)
    # The API's wording for the same problem in a body (service/api/errors.py).
    return InvalidRequest(f"{field}: {first['msg']}", field=field, value=value)


# ---- stories (service/stories.py) ------------------------------------------------------

# A time ago, counted back from now: 90m, 24h, 7d, 2w.
RELATIVE_TIME_PATTERN = "^[0-9]{1,4}[mhdw]$"
WHEN_PATTERN = f"({ISO_DATE_PATTERN})|({RELATIVE_TIME_PATTERN})"
WHEN_DESCRIPTION = (
    ISO_DATE_DESCRIPTION + " Or a time ago: 90m, 24h, 7d, 2w (minutes, hours, days, weeks)."
)
MAX_STORIES = 200


def _when(value: str) -> str:
    if matches(RELATIVE_TIME_PATTERN, value):
        return value
    iso = iso_or_none(value)
    if iso is None:
        raise ValueError("must be an ISO 8601 date or a time ago such as 24h or 7d")
    return iso


When = Annotated[
    str,
    AfterValidator(_when),
    Field(description=WHEN_DESCRIPTION, json_schema_extra={"pattern": WHEN_PATTERN}),
]


# Which stories to list, most recently seen first (GET /v1/stories, `newsdesk stories`,
# Slack's /stories).
class StoriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: When | None = None
    until: When | None = None
    outlets: list[str] | None = Field(default=None, max_length=50)
    min_outlets: int = Field(default=1, ge=1, le=1000)
    q: str | None = Field(default=None, max_length=MAX_QUESTION_CHARS)
    limit: int = Field(default=50, ge=1, le=MAX_STORIES)


# A story's neutral summary: its articles only, syndicated copies once.
class StorySummaryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})

    # Unset: enough words for a point from every outlet of the story (at least 250).
    max_words: (
        Annotated[
            int,
            Field(ge=MIN_SUMMARY_WORDS, le=MAX_SUMMARY_WORDS),
            BeforeValidator(_json_integer),
        ]
        | None
    ) = None


# A story's briefing, from what its articles had published by ``as_of``.
class StoryBriefingBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"format": "markdown"}]}
    )

    as_of: IsoDate | None = None
    audience: str | None = Field(default=None, max_length=200)
    format: Literal["json", "markdown"] = "json"
