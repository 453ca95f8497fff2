"""POST /v1/chat/completions: OpenAI-compatible, so any OpenAI client can use Newsdesk.

The server keeps no session: the client sends the whole history and the last user
message is answered. Answers are verified before anything is shown, so a stream starts
once the answer is checked and then delivers it in chunks; the citations travel on the
final chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from service.answer import AnswerService
from service.api.deps import MetricsDep, NewsdeskDep
from service.api.errors import ErrorBody
from service.api.schemas import (
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletion,
    ChatCompletionBody,
    NewsdeskExtra,
    chat_usage,
)
from service.models import Answer
from service.render import answer_markdown

router = APIRouter(tags=["chat"])
STREAM_PIECE_CHARS = 48


def completion_body(result: Answer, model: str, cid: str, created: int) -> ChatCompletion:
    return ChatCompletion(
        id=cid,
        created=created,
        model=model,
        choices=[ChatChoice(message=ChatChoiceMessage(content=answer_markdown(result)))],
        usage=chat_usage(result.usage),
        citations=result.citations,
        newsdesk=NewsdeskExtra(
            engine=result.engine,
            refused=result.refused,
            citations_verified=result.citations_verified,
            citations_rejected=result.citations_rejected,
            estimated_cost_usd=result.usage.estimated_cost_usd,
        ),
    )


def sse_chunks(result: Answer, model: str, cid: str, created: int) -> Iterator[str]:
    def event(delta: dict, finish: str | None = None, **extra: object) -> str:
        chunk = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    text = answer_markdown(result)
    for i in range(0, len(text), STREAM_PIECE_CHARS):
        yield event({"content": text[i : i + STREAM_PIECE_CHARS]})
    final = completion_body(result, model, cid, created)
    yield event(
        {},
        "stop",
        usage=final.usage.model_dump(),
        citations=[c.model_dump() for c in result.citations],
        newsdesk=final.newsdesk.model_dump(),
    )
    yield "data: [DONE]\n\n"


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A chat completion, or a Server-Sent Events stream if stream=true",
        },
        **{code: {"model": ErrorBody} for code in (400, 401, 413, 422, 429, 502, 503)},
    },
    summary="OpenAI-compatible chat completion answered with retrieval and citations",
)
async def chat_completions(
    body: ChatCompletionBody,
    newsdesk: NewsdeskDep,
    metrics: MetricsDep,
) -> ChatCompletion | StreamingResponse:
    result = await run_in_threadpool(AnswerService(newsdesk).answer, body.to_ask())
    metrics.record("chat", result)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        return StreamingResponse(
            sse_chunks(result, body.model, cid, created),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return completion_body(result, body.model, cid, created)
