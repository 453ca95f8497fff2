"""POST /v1/summaries and POST /v1/briefings."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from service.api.deps import MetricsDep, NewsdeskDep
from service.api.errors import ErrorBody
from service.api.routes.ask import to_filter
from service.api.schemas import BriefingBody, SummaryBody
from service.brief import BriefingService, BriefRequest
from service.models import Briefing, Summary
from service.render import briefing_markdown
from service.summarize import SummaryRequest, SummaryService

router = APIRouter(tags=["summaries"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422, 429, 502, 503)}


@router.post(
    "/v1/summaries",
    response_model=Summary,
    responses=ERRORS,
    summary="Neutral multi-source summary with where sources differ",
)
def summarize(
    body: SummaryBody,
    newsdesk: NewsdeskDep,
    metrics: MetricsDep,
) -> Summary:
    req = SummaryRequest(
        topic=body.topic,
        article_ids=body.article_ids,
        filters=to_filter(newsdesk, body.filters),
        max_words=body.max_words,
    )
    result = SummaryService(newsdesk).summarize(req)
    metrics.record(
        "summary",
        result.engine,
        result.refused,
        result.usage,
        result.citations_verified,
        result.citations_rejected,
    )
    return result


@router.post(
    "/v1/briefings",
    response_model=Briefing,
    responses={200: {"content": {"text/markdown": {}}}, **ERRORS},
    summary="Briefing on request, as JSON or Markdown",
)
def briefing(
    body: BriefingBody,
    newsdesk: NewsdeskDep,
    metrics: MetricsDep,
) -> Briefing | PlainTextResponse:
    req = BriefRequest(topic=body.topic, as_of=body.as_of, audience=body.audience)
    result = BriefingService(newsdesk).brief(req)
    metrics.record(
        "briefing",
        result.engine,
        result.refused,
        result.usage,
        result.citations_verified,
        result.citations_rejected,
    )
    if body.format == "markdown":
        return PlainTextResponse(briefing_markdown(result), media_type="text/markdown")
    return result
