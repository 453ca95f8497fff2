"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from service.api.deps import require_caller, require_key
from service.api.docs import add_docs, openapi_with_security
from service.api.errors import install_error_handlers
from service.api.metrics import Metrics
from service.api.middleware import (
    BodySizeLimitMiddleware,
    HeaderSizeLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from service.api.routes import articles, ask, chat, health, models, search, summaries
from service.api.routes import sources as sources_routes
from service.api.routes import stories as stories_routes
from service.api.security import KeyChecker, RateLimiter
from service.context import Newsdesk
from service.ingest_queue import open_jobs
from service.settings import Settings
from service.warmup import Warmup

log = logging.getLogger("newsdesk.api")

DESCRIPTION = """Cited news answers, neutral multi-source summaries and briefings.

Every citation is `{n, article_id, title, source, published_at, start, end, quote}` where
`quote == canonical_text[start:end]` of the article (`GET /v1/articles/{id}`), checked
before it is returned, and `url`: a signed, expiring link to the article's reader page
with the span highlighted, which opens without an API key. Errors are
`{"error": {"code", "message"}}`."""


class NewsdeskAPI(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's ServerErrorMiddleware, so a 500 carries the headers too.
        return SecurityHeadersMiddleware(super().build_middleware_stack())


def create_app(settings: Settings | None = None, newsdesk: Newsdesk | None = None) -> FastAPI:
    settings = settings or (newsdesk.settings if newsdesk else Settings())
    newsdesk = newsdesk or Newsdesk(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "newsdesk API starting (LLM %s)",
            "configured" if settings.llm_configured else "not configured: extractive engine",
        )
        if not settings.chroma_host:
            # Take the embedded store's one-process lock at startup rather than on the first
            # request, so a CLI started beside the server is the one refused, not the server.
            _ = app.state.newsdesk.store
        # In the background, so startup is not blocked; /readyz is 503 until it is done.
        app.state.warmup.start()
        app.state.jobs.start()  # resumes bulk ingest jobs an earlier process left unfinished
        yield
        app.state.jobs.stop()  # before the store closes: the job worker writes to it
        if getattr(app.state, "sources", None) is not None:
            app.state.sources.close()
        if "keyword" in vars(app.state.newsdesk):  # its change-log poller reads the store
            app.state.newsdesk.keyword.close()
        if "store" in vars(app.state.newsdesk):  # opened: a cached_property
            app.state.newsdesk.store.close()

    app = NewsdeskAPI(
        title="Newsdesk",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by add_docs instead: behind the key and without a CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.newsdesk = newsdesk
    app.state.metrics = Metrics()
    app.state.keys = KeyChecker(settings)
    app.state.rate_limiter = RateLimiter(settings.rate_limit)
    # Both look up app.state.newsdesk when they run: tests may swap it after create_app.
    app.state.warmup = Warmup(lambda: app.state.newsdesk)
    # In this process's data dir, or in Redis for the workers (service/ingest_queue.py).
    app.state.jobs = open_jobs(settings, lambda: app.state.newsdesk)

    def openapi() -> dict[str, Any]:
        return openapi_with_security(app, app.state.keys.enabled)

    app.openapi = openapi  # type: ignore[method-assign]

    install_error_handlers(app)
    protected = [Depends(require_caller)]
    app.include_router(health.router)
    for router in (
        ask.router,
        chat.router,
        models.router,
        summaries.router,
        articles.router,
        search.router,
        sources_routes.router,
    ):
        app.include_router(router, dependencies=protected)
    # With keys set only the health checks are open; reading the docs costs no budget.
    app.include_router(stories_routes.router, dependencies=protected)
    add_docs(app, dependencies=[Depends(require_key)])
    # Polling a bulk job costs no budget either (service/api/routes/articles.py).
    app.include_router(articles.jobs_router, dependencies=[Depends(require_key)])

    from service.slack import mount_slack

    mount_slack(app, newsdesk)

    from service.web import mount_web

    # The reader pages: their own login (service/web/auth.py), and signed links.
    mount_web(app, settings)

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeaderSizeLimitMiddleware, max_bytes=settings.max_header_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    if settings.cors_origins:
        # Added last, so outermost: a browser can read every answer, a 413 from the body
        # limit included, not just those from the routes.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return app
