"""Sources: follow a feed, news sitemap or page (``POST /v1/sources``), list them with the
outcome of their last poll, unfollow, and poll one now."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from service.api.errors import ApiError, ErrorBody
from service.sources import SourceAlreadyFollowed, Sources

router = APIRouter(tags=["sources"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 422, 429)}
_lock = threading.Lock()


def get_sources(request: Request) -> Sources:
    """The app's Sources, made on first use (and again if a test swaps the Newsdesk)."""
    state = request.app.state
    with _lock:
        current = getattr(state, "sources", None)
        if current is None or current.newsdesk is not state.newsdesk:
            current = Sources(state.newsdesk)
            state.sources = current
        return current


SourcesDep = Annotated[Sources, Depends(get_sources)]


class SourceIn(BaseModel):
    # The patterns say in the schema what the service checks (clients and fuzzers see it);
    # what they cannot say (a port over 65535, an interval outside 30s-30d) is a 400.
    url: str = Field(
        ...,
        max_length=2000,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+",
        description="An RSS/Atom feed, a news sitemap or a page URL (http or https).",
    )
    name: str | None = Field(
        None,
        max_length=200,
        pattern=r"\S",
        description="Shown instead of the feed's own title.",
    )
    every: str | None = Field(
        None,
        max_length=20,
        pattern=r"^(([0-9]+(\.[0-9]+)?[smhd])+|[0-9]+(\.[0-9]+)?)$",
        description="Poll interval (`90s`, `15m`, `2h`, `1d`; a bare number is minutes), "
        "30s to 30d; default NEWSDESK_SOURCES_EVERY.",
    )


class LastPoll(BaseModel):
    items_seen: int
    items_new: int
    items_updated: int
    items_unchanged: int
    items_failed: int
    item_errors: list[dict[str, str]]


class SourceOut(BaseModel):
    id: str
    url: str = Field(description="The canonical URL polled.")
    name: str | None
    kind: str | None = Field(description="`feed`, `sitemap` or `page`; null until polled.")
    every_seconds: float
    added_at: str | None
    next_poll_at: str | None
    polling: bool = Field(description="A poller holds the source's lease right now.")
    last_polled_at: str | None
    last_success_at: str | None
    last_error: str | None
    last_error_code: str | None
    last_error_at: str | None
    consecutive_failures: int
    last_poll: LastPoll
    polls: int


class SourceList(BaseModel):
    sources: list[SourceOut]


class PollResult(BaseModel):
    source_id: str
    ok: bool
    kind: str | None
    not_modified: bool
    error: str | None
    error_code: str | None
    items_seen: int
    items_new: int
    items_updated: int
    items_unchanged: int
    items_failed: int
    item_errors: list[dict[str, str]]
    next_poll_in_seconds: float


def _out(source: Any) -> SourceOut:
    return SourceOut.model_validate(source.to_json())


@router.get("/v1/sources", response_model=SourceList, responses=ERRORS)
def list_sources(sources: SourcesDep) -> SourceList:
    """Every followed source with the outcome of its last poll and when the next is due."""
    return SourceList(sources=[_out(s) for s in sources.list()])


@router.post("/v1/sources", status_code=201, response_model=SourceOut, responses=ERRORS)
def add_source(body: SourceIn, sources: SourcesDep, response: Response) -> SourceOut:
    """Follow a source. It is due at once: a running `newsdesk watch` polls it within
    seconds, or poll it now with `POST /v1/sources/{id}/poll`."""
    try:
        source = sources.add(body.url, body.name, body.every)
    except SourceAlreadyFollowed as exc:
        raise ApiError(409, "source_exists", str(exc)) from exc
    response.headers["Location"] = f"/v1/sources/{source.id}"
    return _out(source)


@router.get("/v1/sources/{source_id}", response_model=SourceOut, responses=ERRORS)
def get_source(source_id: str, sources: SourcesDep) -> SourceOut:
    return _out(sources.get(source_id))


@router.delete("/v1/sources/{source_id}", status_code=204, responses=ERRORS)
def remove_source(source_id: str, sources: SourcesDep) -> Response:
    """Stop following the source; the articles it brought stay stored."""
    sources.remove(source_id)
    return Response(status_code=204)


@router.post("/v1/sources/{source_id}/poll", response_model=PollResult, responses=ERRORS)
async def poll_source(source_id: str, sources: SourcesDep) -> PollResult:
    """Poll now, whether due or not, and answer with what was found. 409 while another
    poller (`newsdesk watch`) is fetching it. A failed fetch is a 200 with `ok: false`:
    the request worked, the source did not."""
    # SourcePollBusy is a 409 source_busy with Retry-After, by the shared error table.
    outcome = await run_in_threadpool(sources.poll, source_id)
    return PollResult.model_validate(outcome.to_json())
