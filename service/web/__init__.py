"""Reader pages served by the API's own app: ask, read a cited span in its article,
briefings. Server-rendered (Jinja2, auto-escaped), one stylesheet, one small script."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.links import LinkSigner, load_secret, with_links
from service.models import CitedResult
from service.settings import Settings
from service.web.auth import PageAuth
from service.web.saved import BriefingStore
from service.web.view import visible, visible_text

HERE = Path(__file__).parent
R = TypeVar("R", bound=CitedResult)


class WebState:
    """The pages' collaborators, made on first use: the link secret may be written to the
    data dir, which an app that never serves a page or link should not do."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def secret(self) -> bytes:
        return load_secret(self.settings)

    @cached_property
    def signer(self) -> LinkSigner:
        return LinkSigner(
            self.secret,
            self.settings.link_lifetime_hours * 3600,
            self.settings.link_clock_skew_seconds,
        )

    @cached_property
    def auth(self) -> PageAuth:
        return PageAuth(self.settings, self.secret)

    @cached_property
    def briefings(self) -> BriefingStore:
        return BriefingStore(self.settings.data_dir / "briefings")

    @cached_property
    def templates(self) -> Jinja2Templates:
        env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        )
        env.filters["visible"] = visible
        env.filters["visible_text"] = visible_text
        return Jinja2Templates(env=env)


def web_state(request: Request) -> WebState:
    return request.app.state.web


def public_base(request: Request) -> str:
    """Where links in API responses point: NEWSDESK_PUBLIC_URL, else this request's host."""
    return request.app.state.settings.public_url or str(request.base_url)


def linked(request: Request, result: R) -> R:
    """An API result with signed reader links on its citations."""
    return with_links(result, web_state(request).signer, public_base(request))


def mount_web(app: FastAPI, settings: Settings) -> None:
    from service.web.pages import router

    app.state.web = WebState(settings)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
