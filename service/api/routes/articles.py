"""Articles: add (JSON or file upload), list, read, cited spans with context, delete; bulk
uploads as ingest jobs with progress (``service/ingest_jobs.py``)."""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError
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
    RevisionList,
    RevisionMeta,
    Span,
)
from service.articles import resolve_filters
from service.citations import span_with_context
from service.context import Newsdesk
from service.errors import InvalidRequest
from service.ingest_jobs import IngestJobs, read_upload
from service.ingest_queue import QueuedJobs
from service.requests import ISO_DATE_DESCRIPTION, ISO_DATE_PATTERN, Filters, parse_request
from vectorstore.indexer import IngestReport
from vectorstore.ingest import (
    SUPPORTED_SUFFIXES,
    Article,
    Failure,
    IngestError,
    make_article,
)
from vectorstore.store import StoredArticle

router = APIRouter(tags=["articles"])
# Reading a job's state is one small file read, and a client following a long job polls
# it: included with the key check but without the rate limit, which the upload already
# paid by its size.
jobs_router = APIRouter(tags=["articles"])
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
        upload, suffix = await _uploaded_file(request)
        data = await upload.read()
        charge_for_size(request, len(data))
        items = _read_bulk(data, suffix, upload.filename or "upload")
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
    # A named source matches the stored outlet case-insensitively; an unknown one is a
    # 400 listing the known outlets (service/articles.py), not an empty page.
    flt = resolve_filters(newsdesk, filters) or filters.to_article_filter()
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


REVISION = Query(
    None,
    ge=1,
    description="An earlier text of the article (see /revisions); a citation names the "
    "revision its span indexes. Default: the current text.",
)


def _article(newsdesk: Newsdesk, article_id: str, revision: int | None = None) -> StoredArticle:
    if revision is None:
        article = newsdesk.store.get_article(article_id)
    else:
        article = newsdesk.store.get_revision(article_id, revision)
    if article is None:
        which = f" at revision {revision}" if revision is not None else ""
        raise ApiError(404, "not_found", f"No article with id '{article_id}'{which}.")
    return article


@router.get(
    "/v1/articles/{article_id}",
    response_model=ArticleFull,
    responses=ERRORS,
    summary="An article's metadata and canonical text (the text citations index)",
)
def get_article(
    article_id: str, newsdesk: NewsdeskDep, revision: int | None = REVISION
) -> ArticleFull:
    article = _article(newsdesk, article_id, revision)
    return ArticleFull(**article.metadata(), text=article.text)


@router.get(
    "/v1/articles/{article_id}/revisions",
    response_model=RevisionList,
    responses=ERRORS,
    summary="Every text the article has had, oldest first",
)
def list_revisions(article_id: str, newsdesk: NewsdeskDep) -> RevisionList:
    current = _article(newsdesk, article_id)
    found = newsdesk.store.revisions(article_id)
    items = [
        RevisionMeta(
            revision=r.revision,
            content_hash=r.content_hash,
            chars=r.chars,
            written_at=r.written_at,
            current=r.content_hash == current.content_hash,
        )
        for r in found
    ]
    if not items:  # stored before revisions were kept, and never edited since
        items = [
            RevisionMeta(
                revision=current.revision,
                content_hash=current.content_hash,
                chars=len(current.text),
                written_at=0.0,
                current=True,
            )
        ]
    return RevisionList(article_id=article_id, items=items)


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
    revision: int | None = REVISION,
) -> Span:
    article = _article(newsdesk, article_id, revision)
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
        revision=article.revision,
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


# ---- bulk uploads: jobs ----------------------------------------------------------------


class JobArticles(BaseModel):
    total: int | None = Field(description="Records in the upload.")
    read: int = Field(description="Records read so far in this attempt.")
    done: int = Field(
        description="Records finished: stored (added or updated), found already stored "
        "(unchanged) or rejected (failed). A stored article counts only once its write "
        "has returned."
    )
    added: int
    updated: int
    unchanged: int
    failed: int


class JobChunks(BaseModel):
    expected: int | None = Field(
        description="Chunks to embed in all: exact once every record is chunked, an "
        "estimate from the chunks per article so far before that."
    )
    embedded: int
    written: int = Field(description="Chunks stored, with their article records.")


class IngestJob(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    name: str = Field(description="The uploaded file's name, or 'body'.")
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int = Field(description="Runs started; more than 1 after a restart resumed it.")
    message: str | None = Field(description="Why it failed, or that it was resumed.")
    articles: JobArticles
    chunks: JobChunks
    chunks_per_second: float
    articles_per_second: float
    eta_seconds: float | None = Field(description="Seconds left at the current rate.")
    elapsed_seconds: float
    errors: list[dict[str, str]] = Field(description="Rejected records with their reasons.")
    warnings: list[dict[str, str]]
    article_ids: list[str] = Field(description="The ids of the upload's articles, once done.")


BULK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": ARTICLE_BODY["requestBody"]["content"]["multipart/form-data"],
            "application/json": {
                "schema": {"type": "array", "minItems": 1, "items": ArticleIn.model_json_schema()}
            },
        },
    }
}


def _jobs(request: Request) -> IngestJobs | QueuedJobs:
    return request.app.state.jobs


def _check_articles_array(raw: bytes) -> None:
    """A JSON body is held to ArticleIn, as POST /v1/articles holds one article; an
    uploaded file's records are read as a file upload reads them."""
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(
            400, "invalid_json", "The body is not valid JSON (or not UTF-8, or nested too deeply)."
        ) from exc
    if not isinstance(payload, list) or not payload:
        raise ApiError(422, "invalid_request", "body: must be a non-empty array of articles")
    for i, item in enumerate(payload):
        try:
            ArticleIn.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ApiError(422, "invalid_request", f"[{i}].{field}: {first['msg']}") from exc


async def _uploaded_file(request: Request) -> tuple[UploadFile, str]:
    """The multipart ``file`` field and its suffix, or the 422/415 that says what is wrong."""
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
    return upload, suffix


def _read_bulk(data: bytes, suffix: str, name: str) -> list[Article | Failure]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        return read_upload(path, name)


@router.post(
    "/v1/jobs",
    response_model=IngestJob,
    status_code=202,
    responses={**ERRORS, 507: {"model": ErrorBody}},
    openapi_extra=BULK_BODY,
    summary="Ingest many articles as a job; poll GET /v1/jobs/{id} for its progress",
    description=(
        "A .jsonl/.json file of records (or any file POST /v1/articles takes) as "
        "multipart `file`, or a JSON array of articles (each as POST /v1/articles takes "
        "one). The upload is saved to disk before the 202 (to Redis, for the queue "
        "workers, when NEWSDESK_REDIS_URL is set), so an acknowledged job is finished even "
        "if the server or its worker restarts (it resumes from its first record; stored "
        "articles count as unchanged). Rate-limited by size as POST /v1/articles is. 422 "
        "when no record is an article; records that are not are listed in the job's errors."
    ),
)
async def add_articles_bulk(request: Request, response: Response) -> IngestJob:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        upload, suffix = await _uploaded_file(request)
        name = upload.filename or "upload"
        data = await upload.read()
        charge_for_size(request, len(data))
    elif content_type == "application/json":
        suffix, name = ".json", "body"
        data = await request.body()
        charge_for_size(request, len(data))
        _check_articles_array(data)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send multipart/form-data with a 'file' field, or a JSON array of articles.",
        )
    items = await run_in_threadpool(_read_bulk, data, suffix, name)
    if not any(isinstance(item, Article) for item in items):
        reasons = "; ".join(i.reason for i in items[:5] if isinstance(i, Failure)) or "no records"
        raise ApiError(422, "invalid_article", f"No article in the upload: {reasons}")
    try:
        state = await run_in_threadpool(_jobs(request).submit, data, suffix, name, items)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise ApiError(
            507, "insufficient_storage", "No disk space left to save the upload; nothing queued."
        ) from exc
    response.headers["Location"] = f"/v1/jobs/{state['id']}"
    return IngestJob.model_validate(state)


@jobs_router.get(
    "/v1/jobs/{job_id}",
    response_model=IngestJob,
    responses=ERRORS,
    summary="A bulk ingest job: state, articles and chunks done, rate, ETA, errors",
)
def get_job(job_id: str, request: Request) -> IngestJob:
    state = _jobs(request).get(job_id)
    if state is None:
        raise ApiError(404, "not_found", f"No ingest job with id '{job_id}'.")
    return IngestJob.model_validate(state)
