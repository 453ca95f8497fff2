"""Articles: add (JSON or file upload), list, read, cited spans with context, delete."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api.deps import NewsdeskDep, charge_for_size
from service.api.errors import ApiError, ErrorBody
from service.api.schemas import (
    ArticleFull,
    ArticleIn,
    ArticleList,
    ArticleMeta,
    IngestResult,
    Span,
)
from service.citations import span_with_context
from service.context import Newsdesk
from service.errors import InvalidRequest
from service.requests import ISO_DATE_DESCRIPTION, ISO_DATE_PATTERN, Filters, parse_request
from vectorstore.indexer import IngestReport
from vectorstore.ingest import SUPPORTED_SUFFIXES, IngestError, make_article, read_file

router = APIRouter(tags=["articles"])
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 429, 503)}

ARTICLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ArticleIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": (
                                "UTF-8 text, Markdown, HTML, or JSON / JSON Lines records "
                                "with a 'text' field; the file name's extension says which "
                                f"({', '.join(sorted(SUPPORTED_SUFFIXES))}), anything else "
                                "is a 415."
                            ),
                        }
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


def _ingest(newsdesk: Newsdesk, items: list) -> IngestReport:
    report = newsdesk.indexer.index(items)
    # The next search must see this article, not a keyword index from 2 s ago.
    newsdesk.keyword.invalidate()
    return report


def _result(report: IngestReport) -> IngestResult:
    return IngestResult(
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        failed=report.failed,
        chunks=report.chunks,
        article_ids=report.article_ids,
        errors=report.errors,
        warnings=report.warnings,
    )


@router.post(
    "/v1/articles",
    response_model=IngestResult,
    status_code=201,
    responses={200: {"model": IngestResult, "description": "Already stored, unchanged"}, **ERRORS},
    openapi_extra=ARTICLE_BODY,
    summary="Add or update an article (JSON) or ingest an uploaded file",
    description=(
        "Embedding takes time in proportion to the text, so an upload costs one request "
        "of the rate limit per started NEWSDESK_RATE_LIMIT_BYTES_PER_HIT bytes (default "
        "100 kB), checked before any work: 429 when not enough are left."
    ),
)
async def add_article(request: Request, response: Response, newsdesk: NewsdeskDep) -> IngestResult:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        raw = await request.body()
        charge_for_size(request, len(raw))
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc.msg}.") from exc
        except (ValueError, RecursionError) as exc:
            # Not UTF-8, nested deeper than the parser's stack, or a number longer than
            # Python will convert: bad input, not a server error.
            raise ApiError(
                400,
                "invalid_json",
                "The body is not valid JSON (not UTF-8, too deeply nested or a number too long).",
            ) from exc
        try:
            body = ArticleIn.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            raise ApiError(422, "invalid_request", f"{field}: {first['msg']}") from exc
        try:
            article = make_article(
                body.text,
                title=body.title,
                source=body.source,
                url=body.url,
                author=body.author,
                published_at=body.published_at,
                article_id=body.id,
                origin="api",
            )
        except IngestError as exc:
            raise ApiError(422, "invalid_article", str(exc)) from exc
        items: list = [article]
    elif content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "file: an uploaded file is required")
        suffix = Path(upload.filename or "").suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Unsupported file type '{suffix or upload.filename}'; use one of "
                f"{', '.join(sorted(SUPPORTED_SUFFIXES))}.",
            )
        data = await upload.read()
        charge_for_size(request, len(data))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            items = list(read_file(path))
        for item in items:
            if hasattr(item, "origin"):
                item.origin = (item.origin or "").replace(str(path), upload.filename or "upload")
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send application/json or multipart/form-data with a 'file' field.",
        )
    report = await run_in_threadpool(_ingest, newsdesk, items)
    if report.failed and not (report.added or report.updated or report.unchanged):
        raise ApiError(422, "invalid_article", "; ".join(e["reason"] for e in report.errors))
    if not report.added and not report.updated:
        response.status_code = 200
    return _result(report)


@router.get(
    "/v1/articles", response_model=ArticleList, responses=ERRORS, summary="List stored articles"
)
def list_articles(
    newsdesk: NewsdeskDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
    source: str | None = Query(None, max_length=300),
    published_after: str | None = Query(
        None, description=ISO_DATE_DESCRIPTION, json_schema_extra={"pattern": ISO_DATE_PATTERN}
    ),
    published_before: str | None = Query(
        None, description=ISO_DATE_DESCRIPTION, json_schema_extra={"pattern": ISO_DATE_PATTERN}
    ),
) -> ArticleList:
    try:
        filters = parse_request(
            Filters,
            sources=[source] if source else None,
            published_after=published_after,
            published_before=published_before,
        )
    except InvalidRequest as exc:
        # A bad query parameter is a 422, as a bad body is; only a date can be one here.
        raise ApiError(422, "invalid_request", f"{exc.field}: must be an ISO 8601 date") from exc
    flt = filters.to_article_filter()
    rows = [
        (aid, meta)
        for aid, meta in newsdesk.store.iter_article_meta()
        if flt.is_empty() or flt.matches({"article_id": aid, **meta})
    ]
    rows.sort(key=lambda r: (r[1].get("published_at") or "", r[0]), reverse=True)
    page = rows[offset : offset + limit]
    return ArticleList(
        items=[
            ArticleMeta(id=aid, **{k: v for k, v in m.items() if k in ArticleMeta.model_fields})
            for aid, m in page
        ],
        total=len(rows),
        offset=offset,
        limit=limit,
    )


def _article(newsdesk: Newsdesk, article_id: str):  # type: ignore[no-untyped-def]
    article = newsdesk.store.get_article(article_id)
    if article is None:
        raise ApiError(404, "not_found", f"No article with id '{article_id}'.")
    return article


@router.get(
    "/v1/articles/{article_id}",
    response_model=ArticleFull,
    responses=ERRORS,
    summary="An article's metadata and canonical text (the text citations index)",
)
def get_article(article_id: str, newsdesk: NewsdeskDep) -> ArticleFull:
    article = _article(newsdesk, article_id)
    return ArticleFull(**article.metadata(), text=article.text)


@router.get(
    "/v1/articles/{article_id}/spans",
    response_model=Span,
    responses=ERRORS,
    summary="A cited span with surrounding context",
)
def get_span(
    article_id: str,
    newsdesk: NewsdeskDep,
    start: int = Query(..., ge=0, description="First character, 0-based."),
    end: int = Query(
        ...,
        ge=1,
        description="One past the last character: start < end <= the text's length (400 "
        "invalid_span otherwise).",
    ),
    context: int = Query(200, ge=0, le=5000, description="Characters of context each side."),
) -> Span:
    article = _article(newsdesk, article_id)
    if not start < end <= len(article.text):
        raise ApiError(
            400,
            "invalid_span",
            f"Need 0 <= start < end <= {len(article.text)} (the text's length).",
        )
    c_start, c_end = span_with_context(article.text, start, end, context)
    return Span(
        article_id=article.id,
        title=article.title,
        start=start,
        end=end,
        text=article.text[start:end],
        context_start=c_start,
        context_end=c_end,
        before=article.text[c_start:start],
        after=article.text[end:c_end],
    )


@router.delete(
    "/v1/articles/{article_id}",
    status_code=204,
    responses=ERRORS,
    summary="Delete an article and all its chunks",
)
def delete_article(article_id: str, newsdesk: NewsdeskDep) -> Response:
    if not newsdesk.store.delete_article(article_id):
        raise ApiError(404, "not_found", f"No article with id '{article_id}'.")
    newsdesk.keyword.invalidate()
    return Response(status_code=204)
