"""The page routes: thin, the work is in service/web/{auth,view,saved}.py and the
services the API uses."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.responses import StreamingResponse as SSEResponse
from starlette.concurrency import run_in_threadpool

from service.answer import AnswerService
from service.api.errors import STATUS_OF_CODE, ApiError, error_response
from service.api.routes.chat import Reply, sse_chunks
from service.api.schemas import ChatHistory
from service.articles import require_articles
from service.brief import BriefingService
from service.errors import NewsdeskError
from service.links import FRAGMENT, LinkRefused, parse_spans, with_links
from service.models import Answer, Citation, CitedResult
from service.requests import (
    AskBody,
    BriefingBody,
    StoriesQuery,
    StoryBriefingBody,
    StorySummaryBody,
    parse_request,
)
from service.stories import StoryService
from service.web import WebState, web_state
from service.web.auth import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, Visitor, safe_next
from service.web.charts import coverage_bars, first_appearances
from service.web.view import cited_pieces, highlight, marker_pieces, safe_href

router = APIRouter(include_in_schema=False)
State = Annotated[WebState, Depends(web_state)]

# Pages load only their own stylesheet and script; nothing inline, nothing from elsewhere.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class LoginRequired(Exception):
    """A page visited without a session while keys are set: off to /login."""


# ---- helpers -----------------------------------------------------------------------


def page(
    request: Request,
    web: WebState,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    visitor: Visitor | None = None,
) -> HTMLResponse:
    token = web.auth.csrf_token(request)
    response = web.templates.TemplateResponse(
        request,
        template,
        {
            "csrf_field": CSRF_FIELD,
            "csrf_token": token,
            "visitor": visitor,
            "keys_on": web.auth.enabled,
            **context,
        },
        status_code=status,
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"},
    )
    if request.cookies.get(CSRF_COOKIE) != token:
        web.auth.set_csrf_cookie(response, request, token)
    return response


def error_page(
    request: Request, web: WebState, status: int, code: str, message: str
) -> HTMLResponse | JSONResponse:
    """An error as a page for browsers, as the API's JSON for anything else."""
    if "text/html" not in request.headers.get("accept", ""):
        return error_response(status, code, message)
    return page(request, web, "error.html", {"code": code, "message": message}, status)


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import urlencode

    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def visitor_or_none(request: Request, web: State) -> Visitor | None:
    return web.auth.visitor(request)


VisitorDep = Annotated[Visitor | None, Depends(visitor_or_none)]


def numbered(result: CitedResult) -> dict[int, Citation]:
    return {c.n: c for c in result.citations}


def spend(request: Request, visitor: Visitor) -> None:
    """A page that runs an answer or briefing costs what the API request would."""
    request.app.state.rate_limiter.check(visitor.identity)


def reported(request: Request, web: WebState, exc: NewsdeskError) -> Response:
    return error_page(request, web, STATUS_OF_CODE.get(exc.code, 500), exc.code, str(exc))


# ---- login ---------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, web: State, next: str = "/") -> Response:
    if not web.auth.enabled:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, web, "login.html", {"next": safe_next(next), "message": None})


@router.post("/login")
def login(
    request: Request,
    web: State,
    key: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = safe_next(next)
    if not web.auth.csrf_ok(request, csrf_token):
        return error_page(request, web, 403, "csrf_failed", "The form expired: reload the page.")
    if not web.auth.enabled:
        return RedirectResponse(target, status_code=303)
    failures = request.app.state.keys.failures
    address = request.client.host if request.client else "unknown"
    try:
        # The API's own limit on failed key checks per address: a form is no faster way
        # to guess a key than a header.
        failures.ensure_available(f"auth-failures:{address}", "Too many failed API key checks")
        fingerprint = web.auth.check_key(key.strip())
        if fingerprint is None:
            failures.check(f"auth-failures:{address}", what="Too many failed API key checks")
    except ApiError as exc:
        return page(
            request, web, "login.html", {"next": target, "message": exc.message}, exc.status
        )
    if fingerprint is None:
        context = {"next": target, "message": "That is not a valid API key."}
        return page(request, web, "login.html", context, 401)
    response = RedirectResponse(target, status_code=303)
    web.auth.start_session(response, request, fingerprint)
    return response


@router.post("/logout")
def logout(request: Request, web: State, csrf_token: Annotated[str, Form()] = "") -> Response:
    if not web.auth.csrf_ok(request, csrf_token):
        return error_page(request, web, 403, "csrf_failed", "The form expired: reload the page.")
    response = RedirectResponse("/login" if web.auth.enabled else "/", status_code=303)
    web.auth.end_session(response)
    return response


# ---- ask -----------------------------------------------------------------------------


@router.get("/")
def index(request: Request, web: State, visitor: VisitorDep, q: str = "") -> Response:
    """Ask a question. With ``?q=`` the answer is rendered here (no script needed); the
    page's script streams it from /ask/stream instead."""
    if visitor is None:
        return login_redirect(request)
    context: dict[str, Any] = {"question": q, "answer": None, "answer_pieces": [], "citations": []}
    if q.strip():
        try:
            spend(request, visitor)
            body = parse_request(AskBody, question=q)
            require_articles(request.app.state.newsdesk)
            answer = AnswerService(request.app.state.newsdesk).answer(body)
        except ApiError as exc:
            return error_page(request, web, exc.status, exc.code, exc.message)
        except NewsdeskError as exc:
            return reported(request, web, exc)
        answer = with_links(answer, web.signer, "")
        context.update(
            answer=answer,
            answer_pieces=cited_pieces(answer.answer, numbered(answer)),
            citations=answer.citations,
        )
    return page(request, web, "index.html", context, visitor=visitor)


@router.post("/ask/stream")
async def ask_stream(request: Request, web: State, visitor: VisitorDep) -> Response:
    """The answer as the chat endpoint's Server-Sent Events (service/api/routes/chat.py),
    its content the answer's own text with ``[n]`` markers, and each citation's ``url``
    on the final chunk. Cookie-authenticated, so a CSRF token is required."""
    if visitor is None:
        return error_response(401, "unauthorized", "Log in first.")
    if not web.auth.csrf_ok(request, request.headers.get(CSRF_HEADER)):
        return error_response(403, "csrf_failed", "Missing or wrong CSRF token: reload the page.")
    try:
        payload = await request.json()
    except ValueError:
        return error_response(400, "invalid_json", "The body is not valid JSON.")
    question = payload.get("question") if isinstance(payload, dict) else None
    spend(request, visitor)
    body = parse_request(AskBody, question=question)  # InvalidRequest: the API's 400
    newsdesk = request.app.state.newsdesk
    await run_in_threadpool(require_articles, newsdesk)
    result: Answer = await run_in_threadpool(AnswerService(newsdesk).answer, body)
    request.app.state.metrics.record("answer", result)
    result = with_links(result, web.signer, "")
    reply = Reply(result, result.answer, "stop", 0)
    history = ChatHistory(received=0, used=0, dropped=0, clipped=0, not_read=0)
    cid = f"web-{uuid.uuid4().hex[:24]}"
    chunks = sse_chunks(reply, history, "newsdesk", cid, int(time.time()), False)
    return SSEResponse(
        chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


# ---- reader --------------------------------------------------------------------------


@router.get("/read/{article_id}")
def read(request: Request, web: State, article_id: str) -> Response:
    """The article with its cited spans marked. A signed link (``sig=``) opens it for
    anyone holding the link; otherwise this is a page like the others, behind the login
    when keys are set, with spans from ``?spans=`` or ``?start=&end=``."""
    query = request.query_params
    signed = "sig" in query
    revision: int | None = None
    if signed:
        try:
            grant = web.signer.verify(article_id, query)
        except LinkRefused as exc:
            return error_page(request, web, 403, f"link_{exc.reason}", exc.message)
        spans, revision, visitor = list(grant.spans), grant.revision, None
    else:
        visitor = web.auth.visitor(request)
        if visitor is None:
            return login_redirect(request)
        try:
            spans = list(_unsigned_spans(query))
            revision = int(query["rev"]) if query.get("rev") else None
        except ValueError:
            return error_page(request, web, 400, "invalid_request", "Bad spans or revision.")
    store = request.app.state.newsdesk.store
    if revision:
        article = store.get_revision(article_id, revision)
    else:
        article = store.get_article(article_id)
    if article is None:
        which = f" at revision {revision}" if revision else ""
        return error_page(request, web, 404, "not_found", f"No article '{article_id}'{which}.")
    segments = highlight(article.text, spans)
    shown = [(s, e) for s, e in spans if 0 <= s < e <= len(article.text)]
    context = {
        "article": article,
        "href": safe_href(article.url),
        "segments": segments,
        "passages": [
            {"anchor": anchor, "text": article.text[s:e], "start": s, "end": e}
            for anchor, (s, e) in zip(_anchors(len(shown)), shown, strict=True)
        ],
        "signed": signed,
    }
    return page(request, web, "read.html", context, visitor=visitor)


def _anchors(count: int) -> list[str]:
    return [FRAGMENT if i == 0 else f"span-{i + 1}" for i in range(count)]


def _unsigned_spans(query: Any) -> tuple[tuple[int, int], ...]:
    if query.get("spans"):
        return parse_spans(query["spans"])
    if query.get("start") and query.get("end"):
        return ((int(query["start"]), int(query["end"])),)
    return ()


def cited_points(items: list[Any], cites: dict[int, Citation]) -> list[dict[str, Any]]:
    """Points (and their subclasses) as the templates' bullets show them."""
    return [
        {
            "item": p,
            "pieces": cited_pieces(p.text, cites),
            "markers": marker_pieces(p.citations, cites),
        }
        for p in items
    ]


# ---- briefings -----------------------------------------------------------------------


@router.get("/briefings")
def briefings(request: Request, web: State, visitor: VisitorDep) -> Response:
    if visitor is None:
        return login_redirect(request)
    context = {"saved": web.briefings.list(), "message": None, "form": {}}
    return page(request, web, "briefings.html", context, visitor=visitor)


@router.post("/briefings")
def new_briefing(
    request: Request,
    web: State,
    visitor: VisitorDep,
    topic: Annotated[str, Form()] = "",
    as_of: Annotated[str, Form()] = "",
    audience: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if visitor is None:
        return login_redirect(request)
    if not web.auth.csrf_ok(request, csrf_token):
        return error_page(request, web, 403, "csrf_failed", "The form expired: reload the page.")
    form = {"topic": topic, "as_of": as_of, "audience": audience}
    try:
        spend(request, visitor)
        body = parse_request(
            BriefingBody, topic=topic, as_of=as_of or None, audience=audience or None
        )
        require_articles(request.app.state.newsdesk)
        result = BriefingService(request.app.state.newsdesk).brief(body)
    except ApiError as exc:
        return error_page(request, web, exc.status, exc.code, exc.message)
    except NewsdeskError as exc:
        context = {"saved": web.briefings.list(), "message": str(exc), "form": form}
        status = STATUS_OF_CODE.get(exc.code, 500)
        return page(request, web, "briefings.html", context, status, visitor=visitor)
    request.app.state.metrics.record("briefing", result)
    saved = web.briefings.save(result)
    return RedirectResponse(f"/briefings/{saved.id}", status_code=303)


@router.get("/briefings/{briefing_id}")
def show_briefing(request: Request, web: State, visitor: VisitorDep, briefing_id: str) -> Response:
    if visitor is None:
        return login_redirect(request)
    saved = web.briefings.get(briefing_id)
    if saved is None:
        return error_page(request, web, 404, "not_found", f"No briefing '{briefing_id}'.")
    # Signed as the page is shown: a saved briefing's links never go stale.
    briefing = with_links(saved.briefing, web.signer, "")
    cites = numbered(briefing)

    def points(items: list[Any]) -> list[dict[str, Any]]:
        return cited_points(items, cites)

    context = {
        "saved": saved,
        "b": briefing,
        "bottom_line": points(briefing.bottom_line),
        "developments": points(briefing.developments),
        "perspectives": [
            {"actor": p.actor, "points": points(p.points)} for p in briefing.perspectives
        ],
        "differences": [{"topic": d.topic, "sides": points(d.sides)} for d in briefing.differences],
        "open_questions": points(briefing.open_questions),
        "citations": briefing.citations,
        "sources": [{"s": s, "href": safe_href(s.url)} for s in briefing.sources],
    }
    return page(request, web, "briefing.html", context, visitor=visitor)


# ---- stories -------------------------------------------------------------------------


@router.get("/stories")
def stories(request: Request, web: State, visitor: VisitorDep, q: str = "") -> Response:
    if visitor is None:
        return login_redirect(request)
    try:
        query = parse_request(StoriesQuery, q=q.strip() or None)
        listing = StoryService(request.app.state.newsdesk).list(query)
    except NewsdeskError as exc:
        return reported(request, web, exc)
    context = {"stories": listing.stories, "q": q}
    return page(request, web, "stories.html", context, visitor=visitor)


@router.get("/stories/{story_id}")
def story(request: Request, web: State, visitor: VisitorDep, story_id: str) -> Response:
    """Coverage by outlet and first appearances as charts, then the story's summary (run
    as the page is asked for, like POST /v1/stories/{id}/summary) and its timeline."""
    if visitor is None:
        return login_redirect(request)
    service = StoryService(request.app.state.newsdesk)
    try:
        spend(request, visitor)
        detail = service.detail(story_id)
        summary = with_links(service.summary(detail.id, StorySummaryBody()), web.signer, "")
    except ApiError as exc:
        return error_page(request, web, exc.status, exc.code, exc.message)
    except NewsdeskError as exc:
        return reported(request, web, exc)
    detail = with_links(cast(CitedResult, detail), web.signer, "")  # type: ignore[assignment]
    cites = numbered(cast(CitedResult, detail))
    summary_cites = numbered(summary)
    context = {
        "s": detail,
        "bars": coverage_bars(detail.coverage.outlets),
        "timeline": first_appearances(detail.coverage.outlets),
        "reports": cited_points(detail.timeline, cites),
        "summary": summary,
        "points": cited_points(summary.points, summary_cites),
        "differences": [
            {"topic": d.topic, "sides": cited_points(d.sides, summary_cites)}
            for d in summary.differences
        ],
        "citations": summary.citations,
    }
    return page(request, web, "story.html", context, visitor=visitor)


@router.post("/stories/{story_id}/briefing")
def brief_story(
    request: Request,
    web: State,
    visitor: VisitorDep,
    story_id: str,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if visitor is None:
        return login_redirect(request)
    if not web.auth.csrf_ok(request, csrf_token):
        return error_page(request, web, 403, "csrf_failed", "The form expired: reload the page.")
    try:
        spend(request, visitor)
        result = StoryService(request.app.state.newsdesk).briefing(story_id, StoryBriefingBody())
    except ApiError as exc:
        return error_page(request, web, exc.status, exc.code, exc.message)
    except NewsdeskError as exc:
        return reported(request, web, exc)
    request.app.state.metrics.record("briefing", result)
    saved = web.briefings.save(result)
    return RedirectResponse(f"/briefings/{saved.id}", status_code=303)
