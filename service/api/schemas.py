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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import InvalidRequest
from service.models import Citation, Usage
from service.requests import (
    MAX_HISTORY_MESSAGES,
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

    def to_ask(self) -> AskBody:
        """The ask request this conversation stands for: its last message the question,
        the user and assistant turns before it the history (system, tool and developer
        messages are not part of it). It stays a body of its own, not an AskBody, to take
        what OpenAI clients send; its question meets AskBody's rules like any other."""
        turns = [m for m in self.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            raise InvalidRequest("The last message must be from the user.")
        text = turns[-1].text().strip()
        # The conversation's own rule: a message of only images has no text to answer.
        if not text:
            raise InvalidRequest("The last user message is empty.")
        history = [HistoryMessage.clipped(m.role, m.text()) for m in turns[:-1]]
        return parse_request(AskBody, question=text, history=history)


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
