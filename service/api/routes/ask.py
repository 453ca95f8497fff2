"""POST /v1/ask: the native answer shape."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.answer import AnswerService
from service.api.deps import MetricsDep, NewsdeskDep
from service.api.errors import ErrorBody
from service.models import Answer
from service.requests import AskBody
from service.web import linked

router = APIRouter(tags=["answers"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 413, 422, 429, 502, 503)}


@router.post(
    "/v1/ask",
    response_model=Answer,
    responses=ERRORS,
    summary="Answer a question with verified span citations",
)
def ask(body: AskBody, request: Request, newsdesk: NewsdeskDep, metrics: MetricsDep) -> Answer:
    result = AnswerService(newsdesk).answer(body)
    metrics.record("answer", result)
    return linked(request, result)
