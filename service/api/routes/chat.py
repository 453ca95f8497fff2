"""POST /v1/chat/completions: OpenAI-compatible, so any OpenAI client can use Newsdesk.

The server keeps no session: the client sends the whole history and the last user
message is answered, read with the most recent turns that fit the history budget.
Answers are verified before anything is shown, so a stream starts once the answer is
checked and then delivers it in chunks; the citations travel on the final chunk.

OpenAI's parameters are honoured where that keeps every shown claim verified (max_tokens
and stop cut the answer between claims, json_object returns the answer as JSON) and
refused with OpenAI's 400 where it can't (n > 1, tools, logprobs, json_schema).
Sampling parameters (temperature, top_p, seed...) are accepted and not used: the answer
is a fixed set of verified claims, not free text drawn from a distribution.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from service.answer import AnswerService
from service.api.deps import MetricsDep, NewsdeskDep
from service.api.errors import ErrorBody
from service.api.schemas import (
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletion,
    ChatCompletionBody,
    ChatHistory,
    NewsdeskExtra,
    OpenAIErrorBody,
    OpenAIErrorDetail,
    chat_usage,
)
from service.models import Answer
from service.render import answer_markdown
from service.web import linked
from vectorstore.chunk import count_tokens

router = APIRouter(tags=["chat"])
STREAM_PIECE_CHARS = 48
# answer_result's format: each claim is followed by " [1][2]", its citation numbers.
_CLAIM_MARKERS = re.compile(r" ((?:\[\d+\])+)(?= |$)")
_NUMBER = re.compile(r"\d+")

FinishReason = Literal["stop", "length"]


def openai_error(status: int, code: str, message: str, param: str | None) -> JSONResponse:
    """An error as OpenAI sends it: the code and message every Newsdesk error has, plus
    the error type and the parameter at fault, which OpenAI's SDKs expose."""
    detail = OpenAIErrorDetail(
        code=code, message=message, type="invalid_request_error", param=param
    )
    return JSONResponse(OpenAIErrorBody(error=detail).model_dump(), status_code=status)


def unsupported_parameter(body: ChatCompletionBody) -> JSONResponse | None:
    """OpenAI's 400 for a parameter Newsdesk can't honour without breaking verification;
    None when every parameter can be."""
    extra = body.model_extra or {}
    if body.n is not None and body.n > 1:
        return openai_error(
            400,
            "unsupported_value",
            f"n={body.n} is not supported: Newsdesk returns one verified answer per request "
            "(n=1). Send the request again for another.",
            "n",
        )
    for name in ("tools", "functions"):
        if getattr(body, name):
            return openai_error(
                400,
                "unsupported_parameter",
                f"'{name}' is not supported: Newsdesk answers from its articles with verified "
                "citations and calls no tools.",
                name,
            )
    for name in ("tool_choice", "function_call"):
        if getattr(body, name) not in (None, "none", "auto"):
            return openai_error(
                400,
                "unsupported_value",
                f"'{name}' can only be 'none' or 'auto': Newsdesk calls no tools.",
                name,
            )
    if body.logprobs or extra.get("top_logprobs"):
        param = "logprobs" if body.logprobs else "top_logprobs"
        return openai_error(
            400,
            "unsupported_value",
            f"'{param}' is not supported: answers are verified claims, not sampled tokens "
            "with probabilities.",
            param,
        )
    if body.response_format is not None and body.response_format.type == "json_schema":
        return openai_error(
            400,
            "unsupported_value",
            "response_format 'json_schema' is not supported: the answer's shape is fixed so "
            "that every claim carries its verified citations. Use 'json_object' for the "
            "answer as JSON.",
            "response_format",
        )
    modalities = extra.get("modalities")
    if extra.get("audio") is not None or (
        isinstance(modalities, list) and any(m != "text" for m in modalities)
    ):
        param = "modalities" if modalities else "audio"
        return openai_error(
            400, "unsupported_value", f"'{param}': only text output is supported.", param
        )
    return None


@dataclass(frozen=True)
class Reply:
    """What a chat client is shown of a verified answer."""

    result: Answer  # the answer as shown: its claims and the citations they use
    content: str
    finish_reason: FinishReason
    claims_cut: int


def claims_of(answer: str) -> list[tuple[str, list[int]]]:
    """An answer's claims in order, each with its markers, and the numbers they cite."""
    parts = _CLAIM_MARKERS.split(answer)
    # split() with one group alternates text and markers, and ends with text.
    claims = [
        (f"{parts[i].strip()} {parts[i + 1]}", [int(n) for n in _NUMBER.findall(parts[i + 1])])
        for i in range(0, len(parts) - 1, 2)
    ]
    if parts[-1].strip():  # text after the last marker, or an answer without any (a refusal)
        claims.append((parts[-1].strip(), []))
    return claims


def first_claims(result: Answer, claims: list[tuple[str, list[int]]], k: int) -> Answer:
    """``result`` with its first ``k`` claims only, and the citations those use."""
    kept = claims[:k]
    cited = {n for _, numbers in kept for n in numbers}
    return result.model_copy(
        update={
            "answer": " ".join(text for text, _ in kept),
            "citations": [c for c in result.citations if c.n in cited],
        }
    )


def render(result: Answer, response_format: str) -> str:
    if response_format == "json_object":
        # The /v1/ask JSON: exact text, not Markdown-escaped.
        return result.model_dump_json()
    return answer_markdown(result)


def fit_reply(
    result: Answer, response_format: str, max_tokens: int | None, stops: list[str]
) -> Reply:
    """The answer with as many of its claims, from the first, as keep the content within
    ``max_tokens`` and free of every stop sequence: a cut falls between claims, so each
    claim shown is whole and still has its citations. With no claim left, Markdown
    content is empty; JSON content is the answer with no claims, if even that fits."""
    claims = claims_of(result.answer)
    if not claims:
        return Reply(result, render(result, response_format), "stop", 0)
    reason: FinishReason = "stop"
    for k in range(len(claims), -1, -1):
        shown = result if k == len(claims) else first_claims(result, claims, k)
        if k == 0 and response_format != "json_object":
            return Reply(shown, "", reason, len(claims))
        content = render(shown, response_format)
        stopped = any(stop in content for stop in stops)
        too_long = max_tokens is not None and count_tokens(content) > max_tokens
        if not (stopped or too_long):
            return Reply(shown, content, reason, len(claims) - k)
        if k == len(claims):
            reason = "stop" if stopped else "length"
    return Reply(first_claims(result, claims, 0), "", reason, len(claims))


def extra_of(reply: Reply, history: ChatHistory) -> NewsdeskExtra:
    result = reply.result
    return NewsdeskExtra(
        engine=result.engine,
        refused=result.refused,
        citations_verified=result.citations_verified,
        citations_rejected=result.citations_rejected,
        estimated_cost_usd=result.usage.estimated_cost_usd,
        history=history,
        claims_cut=reply.claims_cut,
    )


def completion_body(
    reply: Reply, history: ChatHistory, model: str, cid: str, created: int
) -> ChatCompletion:
    return ChatCompletion(
        id=cid,
        created=created,
        model=model,
        choices=[
            ChatChoice(
                message=ChatChoiceMessage(content=reply.content),
                finish_reason=reply.finish_reason,
            )
        ],
        usage=chat_usage(reply.result.usage),
        citations=reply.result.citations,
        newsdesk=extra_of(reply, history),
    )


def sse_chunks(
    reply: Reply,
    history: ChatHistory,
    model: str,
    cid: str,
    created: int,
    include_usage: bool,
) -> Iterator[str]:
    def event(choices: list[dict[str, Any]], **extra: object) -> str:
        chunk: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }
        if include_usage:
            # The spec: with include_usage, every chunk has the field, null but the last.
            chunk["usage"] = None
        chunk.update(extra)
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def delta(content: dict[str, str], finish: FinishReason | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": content, "finish_reason": finish}]

    yield event(delta({"role": "assistant", "content": ""}))
    text = reply.content
    for i in range(0, len(text), STREAM_PIECE_CHARS):
        yield event(delta({"content": text[i : i + STREAM_PIECE_CHARS]}))
    yield event(
        delta({}, reply.finish_reason),
        citations=[c.model_dump() for c in reply.result.citations],
        newsdesk=extra_of(reply, history).model_dump(),
    )
    if include_usage:
        yield event([], usage=chat_usage(reply.result.usage).model_dump())
    yield "data: [DONE]\n\n"


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A chat completion, or a Server-Sent Events stream if stream=true",
        },
        400: {
            "model": ErrorBody,
            "description": "A bad conversation, or a parameter Newsdesk can't honour (n > 1, "
            "tools, logprobs, json_schema): OpenAI's error, with its `type` and `param`",
        },
        **{code: {"model": ErrorBody} for code in (401, 413, 422, 429, 502, 503)},
    },
    summary="OpenAI-compatible chat completion answered with retrieval and citations",
)
async def chat_completions(
    body: ChatCompletionBody,
    http_request: Request,
    newsdesk: NewsdeskDep,
    metrics: MetricsDep,
) -> ChatCompletion | StreamingResponse | JSONResponse:
    refusal = unsupported_parameter(body)
    if refusal is not None:
        return refusal
    request = body.to_request()
    result = await run_in_threadpool(AnswerService(newsdesk).answer, request.ask)
    metrics.record("chat", result)
    result = linked(http_request, result)
    response_format = body.response_format.type if body.response_format else "text"
    reply = fit_reply(result, response_format, body.token_cap(), body.stop_sequences())
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            sse_chunks(reply, request.history, body.model, cid, created, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return completion_body(reply, request.history, body.model, cid, created)
