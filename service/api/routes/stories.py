"""GET /v1/stories, GET /v1/stories/{id}, POST /v1/stories/{id}/summary and /briefing.
Thin: the logic is service/stories.py's."""

from __future__ import annotations

from typing import Any, Literal, cast

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse

from service.api.deps import MetricsDep, NewsdeskDep
from service.api.errors import ApiError, ErrorBody
from service.errors import InvalidRequest
from service.models import CitedResult, StoryBriefing, StoryDetail, StoryList, StorySummary
from service.render import briefing_markdown
from service.requests import (
    MAX_QUESTION_CHARS,
    MAX_STORIES,
    WHEN_DESCRIPTION,
    WHEN_PATTERN,
    StoriesQuery,
    StoryBriefingBody,
    StorySummaryBody,
    parse_request,
)
from service.stories import StoryService, story_markdown
from service.web import linked

router = APIRouter(tags=["stories"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422, 429, 502, 503)
}
STORY_ID = Path(
    max_length=200, description="A story's id, or the id of a story merged into it (an alias)."
)


@router.get(
    "/v1/stories",
    response_model=StoryList,
    responses=ERRORS,
    summary="Stories, the most recently seen first",
)
def list_stories(
    newsdesk: NewsdeskDep,
    since: str | None = Query(
        None,
        description="Seen since then. " + WHEN_DESCRIPTION,
        json_schema_extra={"pattern": WHEN_PATTERN},
    ),
    until: str | None = Query(
        None,
        description="Begun by then (a bare date: by its end). " + WHEN_DESCRIPTION,
        json_schema_extra={"pattern": WHEN_PATTERN},
    ),
    outlet: list[str] | None = Query(
        None,
        max_length=50,
        description="Covered by this outlet (any case; repeat for any of several). An outlet "
        "no stored article carries is a 400 listing the known ones.",
    ),
    min_outlets: int = Query(1, ge=1, le=1000, description="Covered by at least this many."),
    q: str | None = Query(
        None,
        max_length=MAX_QUESTION_CHARS,
        description="Only stories with an article keyword search finds for this text.",
    ),
    limit: int = Query(50, ge=1, le=MAX_STORIES),
) -> StoryList:
    try:
        query = parse_request(
            StoriesQuery,
            since=since,
            until=until,
            outlets=outlet or None,
            min_outlets=min_outlets,
            q=q,
            limit=limit,
        )
    except InvalidRequest as exc:
        # A bad query parameter is a 422, as a bad body is; only a time can be one here.
        raise ApiError(422, "invalid_request", str(exc)) from exc
    return StoryService(newsdesk).list(query)


@router.get(
    "/v1/stories/{story_id}",
    response_model=StoryDetail,
    responses={200: {"content": {"text/markdown": {}}}, **ERRORS},
    summary="A story: articles by outlet, timeline, coverage and framing",
)
def get_story(
    request: Request,
    newsdesk: NewsdeskDep,
    story_id: str = STORY_ID,
    format: Literal["json", "markdown"] = Query(
        "json", description="markdown: the story, its timeline and coverage table as Markdown."
    ),
) -> StoryDetail | PlainTextResponse:
    detail = StoryService(newsdesk).detail(story_id)
    if format == "markdown":
        return PlainTextResponse(story_markdown(detail), media_type="text/markdown")
    # Its citations get reader links like any result's (service/web).
    return linked(request, cast(CitedResult, detail))  # type: ignore[return-value]


@router.post(
    "/v1/stories/{story_id}/summary",
    response_model=StorySummary,
    responses=ERRORS,
    summary="Neutral summary of one story's articles, with where they differ",
)
def story_summary(
    body: StorySummaryBody,
    request: Request,
    newsdesk: NewsdeskDep,
    metrics: MetricsDep,
    story_id: str = STORY_ID,
) -> StorySummary:
    result = StoryService(newsdesk).summary(story_id, body)
    metrics.record("summary", result)
    return linked(request, result)


@router.post(
    "/v1/stories/{story_id}/briefing",
    response_model=StoryBriefing,
    responses={200: {"content": {"text/markdown": {}}}, **ERRORS},
    summary="Briefing on one story, as JSON or Markdown",
)
def story_briefing(
    body: StoryBriefingBody,
    request: Request,
    newsdesk: NewsdeskDep,
    metrics: MetricsDep,
    story_id: str = STORY_ID,
) -> StoryBriefing | PlainTextResponse:
    result = StoryService(newsdesk).briefing(story_id, body)
    metrics.record("briefing", result)
    if body.format == "markdown":
        return PlainTextResponse(briefing_markdown(result), media_type="text/markdown")
    return linked(request, result)
