"""POST /v1/ask: the native answer shape."""

from __future__ import annotations

from fastapi import APIRouter

from service.answer import AnswerService, Message, Question
from service.api.deps import MetricsDep, NewsdeskDep
from service.api.errors import ApiError, ErrorBody
from service.api.metrics import Metrics
from service.api.schemas import AskBody, Filters
from service.context import Newsdesk
from service.models import Answer
from vectorstore.store import ArticleFilter

router = APIRouter(tags=["answers"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 413, 422, 429, 502, 503)}


def to_filter(newsdesk: Newsdesk, filters: Filters | None) -> ArticleFilter | None:
    """Article filters, with unknown article ids rejected rather than silently empty."""
    if filters is None:
        return None
    if filters.article_ids:
        known = newsdesk.store.article_meta(filters.article_ids)
        missing = [a for a in filters.article_ids if a not in known]
        if missing:
            raise ApiError(400, "unknown_article", f"unknown article id(s): {', '.join(missing)}")
    return ArticleFilter(
        article_ids=tuple(filters.article_ids) if filters.article_ids else None,
        sources=tuple(filters.sources) if filters.sources else None,
        published_after=filters.published_after,
        published_before=filters.published_before,
    )


def record_answer(metrics: Metrics, kind: str, result: Answer) -> None:
    metrics.record(
        kind,
        result.engine,
        result.refused,
        result.usage,
        result.citations_verified,
        result.citations_rejected,
    )


@router.post(
    "/v1/ask",
    response_model=Answer,
    responses=ERRORS,
    summary="Answer a question with verified span citations",
)
def ask(
    body: AskBody,
    newsdesk: NewsdeskDep,
    metrics: MetricsDep,
) -> Answer:
    question = Question(
        text=body.question,
        history=[Message(m.role, m.content) for m in body.history],
        filters=to_filter(newsdesk, body.filters),
        top_k=body.top_k,
    )
    result = AnswerService(newsdesk).answer(question)
    record_answer(metrics, "answer", result)
    return result
