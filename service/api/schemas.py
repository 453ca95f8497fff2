"""Bodies only the HTTP API has: articles in and out, spans, and the OpenAI-compatible
chat completion. The features' requests are service/requests.py's models, shared with the
command line and Slack.

Every rule the server enforces on a field is also in the OpenAPI schema (a pattern
where a length or an enum is not enough), so a client or a fuzzer generating from the
schema sends what the server accepts, and nothing else.
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.conversation import recent_history
from service.errors import InvalidRequest
from service.models import Citation, Usage
from service.requests import (
    MAX_QUESTION_CHARS,
    AskBody,
    HistoryMessage,
    parse_request,
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
    revision: int = Field(
        1, description="1 for the first text stored under this id, +1 for each changed text since."
    )
    updated_at: str | None = Field(
        None, description="When the current revision replaced an earlier text."
    )
    syndication_group: str | None = Field(
        None,
        description="The id of the first stored copy of the same story text (another "
        "outlet's run of the same wire copy), when this article is such a copy.",
    )


class ArticleFull(ArticleMeta):
    text: str


class RevisionMeta(BaseModel):
    revision: int
    content_hash: str
    chars: int
    written_at: float = Field(
        description="Unix seconds; 0 for a text stored before revisions were kept."
    )
    current: bool


class RevisionList(BaseModel):
    article_id: str
    items: list[RevisionMeta]


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
    revision: int
    start: int
    end: int
    text: str
    context_start: int
    context_end: int
    before: str
    after: str


# ---- OpenAI-compatible chat ---------------------------------------------------------

# OpenAI's own limit on a conversation's length; anything shorter is answered, reading
# only its most recent turns (service/conversation.py's recent_history).
MAX_CHAT_MESSAGES = 2048
# OpenAI's limit on stop sequences.
MAX_STOP_SEQUENCES = 4
# The roles that are turns of the conversation; the others are not read (README, "HTTP
# API": system prompts are written for a free-form assistant, not for cited answers).
TURN_ROLES = ("user", "assistant")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return " ".join(
                str(part.get("text", "")) for part in self.content if part.get("type") == "text"
            )
        return ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = Field(
        default=None,
        strict=True,
        description="Stream one more chunk before `data: [DONE]`, with empty `choices` and "
        "the usage of the whole request; every other chunk then has `usage: null`.",
    )


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"] = Field(
        description="`text` (Markdown with the quoted sources) or `json_object` (the "
        "`/v1/ask` JSON of the answer as the content). `json_schema` is a 400: a schema "
        "of the caller's cannot hold verified citations."
    )


class ChatHistory(BaseModel):
    """What of the conversation the answer read. ``received``: user and assistant
    messages before the question; ``used``: the most recent of them that fit the history
    budget, read to resolve a follow-up ("and in Kyiv?"); ``dropped``: the older rest;
    ``clipped``: used turns read from their beginning only; ``not_read``: system,
    developer and tool messages."""

    received: int
    used: int
    dropped: int
    clipped: int
    not_read: int


@dataclass(frozen=True)
class ChatRequest:
    """A chat body read as Newsdesk reads it: the question with the history it is read
    with, and what of the conversation was left out."""

    ask: AskBody
    history: ChatHistory


class ChatCompletionBody(BaseModel):
    # OpenAI clients send many optional fields (temperature, seed, user...): accepted.
    # Those Newsdesk can't honour without breaking verification are refused by the route.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"messages": [{"role": "user", "content": "How many people fled Kursk?"}]}]
        },
    )

    model: str = "newsdesk"
    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=MAX_CHAT_MESSAGES,
        description=(
            "The whole conversation. Of the user and assistant messages, the last must be "
            f"from the user, with text of 1 to {MAX_QUESTION_CHARS} characters: it is the "
            "question answered (400 otherwise). The turns before it are read from the most "
            "recent back, as many as fit the history budget; system, developer and tool "
            "messages are not read. The response's `newsdesk.history` says what was used."
        ),
    )
    # Strict: lax validation would take 0 and "no", which the schema's boolean refuses.
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    n: int | None = Field(
        default=None,
        ge=1,
        description="How many choices: only 1 (a 400 otherwise).",
        # Published as the limit; the route answers a larger n with OpenAI's 400.
        json_schema_extra={"maximum": 1},
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Cap on the content's tokens, cut at a claim boundary: the answer keeps "
        "its first claims whose content (sources included) fits, and finish_reason is "
        "`length` when a claim was cut.",
    )
    max_completion_tokens: int | None = Field(
        default=None, ge=1, description="The same as max_tokens; the smaller of both applies."
    )
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP_SEQUENCES)] | None = Field(
        default=None,
        description=f"Up to {MAX_STOP_SEQUENCES} sequences. The answer keeps its first claims "
        "whose content contains none of them; finish_reason is `stop` when a claim was cut.",
    )
    response_format: ResponseFormat | None = None
    logprobs: bool | None = Field(
        default=None, strict=True, description="Only false: there are no token log probabilities."
    )
    tools: list[dict[str, Any]] | None = Field(
        default=None,
        description="Not supported: a non-empty list is a 400.",
        json_schema_extra={"maxItems": 0},
    )
    functions: list[dict[str, Any]] | None = Field(
        default=None,
        description="Not supported: a non-empty list is a 400.",
        json_schema_extra={"maxItems": 0},
    )
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description="Only `none` or `auto` (no tools are ever called)."
    )
    function_call: str | dict[str, Any] | None = Field(
        default=None, description="Only `none` or `auto` (no functions are ever called)."
    )

    def stop_sequences(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]

    def token_cap(self) -> int | None:
        caps = [c for c in (self.max_tokens, self.max_completion_tokens) if c is not None]
        return min(caps) if caps else None

    def to_ask(self) -> AskBody:
        return self.to_request().ask

    def to_request(self) -> ChatRequest:
        """The ask request this conversation stands for: its last message the question,
        the most recent user and assistant turns before it the history (system, tool and
        developer messages are not part of it). It stays a body of its own, not an
        AskBody, to take what OpenAI clients send; its question meets AskBody's rules
        like any other."""
        turns = [m for m in self.messages if m.role in TURN_ROLES]
        if not turns or turns[-1].role != "user":
            raise InvalidRequest("The last message must be from the user.")
        text = turns[-1].text().strip()
        # The conversation's own rule: a message of only images has no text to answer.
        if not text:
            raise InvalidRequest("The last user message is empty.")
        earlier = [HistoryMessage.clipped(m.role, m.text()) for m in turns[:-1]]
        window = recent_history(earlier)
        ask = parse_request(AskBody, question=text, history=window.messages)
        return ChatRequest(
            ask=ask,
            history=ChatHistory(
                received=len(earlier),
                used=len(window.messages),
                dropped=window.dropped,
                clipped=window.clipped,
                not_read=len(self.messages) - len(turns),
            ),
        )


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatChoiceMessage
    finish_reason: Literal["stop", "length"] = "stop"


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
    history: ChatHistory | None = None
    # Claims of the verified answer left out of the content by max_tokens or stop.
    claims_cut: int = 0


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


# ---- OpenAI-compatible models and errors ----------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorDetail(BaseModel):
    # OpenAI's error object: the same code and message as every other error here, plus
    # the type and the request parameter at fault, which OpenAI's SDKs expose.
    code: str
    message: str
    type: str
    param: str | None = None


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail
