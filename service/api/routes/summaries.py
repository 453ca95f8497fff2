"""POST /v1/summaries and POST /v1/briefings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from service.api.deps import MetricsDep, NewsdeskDep
from service.api.errors import ErrorBody
from service.brief import BriefingService
from service.models import Briefing, Summary
from service.render import briefing_markdown
from service.requests import BriefingBody, SummaryBody
from service.summarize import SummaryService
from service.web import linked

router = APIRouter(tags=["summaries"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422, 429, 502, 503)}


@router.post(
    "/v1/summaries",
    response_model=Summary,
    responses=ERRORS,
    summary="Neutral multi-source summary with where sources differ",
)
def summarize(
    body: SummaryBody, request: Request, newsdesk: NewsdeskDep, metrics: MetricsDep
) -> Summary:
    result = SummaryService(newsdesk).summarize(body)
    metrics.record("summary", result)
    return linked(request, result)


@router.post(
    "/v1/briefings",
    response_model=Briefing,
    responses={200: {"content": {"text/markdown": {}}}, **ERRORS},
    summary="Briefing on request, as JSON or Markdown",
)
def briefing(
    body: BriefingBody, request: Request, newsdesk: NewsdeskDep, metrics: MetricsDep
) -> Briefing | PlainTextResponse:
    result = BriefingService(newsdesk).brief(body)
    metrics.record("briefing", result)
    if body.format == "markdown":
        return PlainTextResponse(briefing_markdown(result), media_type="text/markdown")
    return linked(request, result)
