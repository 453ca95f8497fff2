"""POST /v1/search: what retrieval finds, as `newsdesk search --json` prints it."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import NewsdeskDep
from service.api.errors import ErrorBody
from service.requests import SearchBody
from service.search import SearchHit, search

router = APIRouter(tags=["search"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 413, 422, 429, 503)}


@router.post(
    "/v1/search",
    response_model=list[SearchHit],
    responses=ERRORS,
    summary="Passages hybrid retrieval finds for a query, each an exact article span",
)
def search_passages(body: SearchBody, newsdesk: NewsdeskDep) -> list[SearchHit]:
    return search(newsdesk, body)
