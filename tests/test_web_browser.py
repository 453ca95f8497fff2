"""The reader pages in a real browser: Chromium (Debian's ``chromium`` package, installed
by scripts/system-deps.sh) driven by Playwright, against the app served by uvicorn on a
free port. Playwright's own browser download is not used: it is launched with the system
binary. Screenshots of every page are saved as test artifacts (the path is printed at the
end of the run; ``NEWSDESK_TEST_ARTIFACTS`` chooses it)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright
from pydantic import SecretStr

from service.api import create_app
from service.brief import BriefingService
from service.context import Newsdesk
from service.links import LinkSigner, load_secret
from service.requests import BriefingBody
from service.settings import Settings
from service.web.saved import BriefingStore
from tests.conftest import SEEDS, HashingEmbedder
from tests.test_story_coverage import SHORT_REPORTS, market_story_id
from tests.test_web_pages import HOSTILE_ID, HOSTILE_TEXT, HOSTILE_TITLE, KEY, QUESTION
from vectorstore.ingest import make_article, read_paths

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary (Debian package 'chromium'; scripts/system-deps.sh installs it)",
)
TOPIC = "the fighting in the Kursk region"
PHONE = {"width": 375, "height": 740}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """An app under a real uvicorn server, in a thread of this process."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # No lifespan: both apps share one store, which the test owns.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Site:
    open: Served  # no API keys: pages open
    keyed: Served  # NEWSDESK_API_KEYS set
    settings: Settings
    artifacts: Path
    story_id: str  # four outlets on one event (tests/test_story_coverage.py)
    demo_briefing: str  # the id of the briefing `make demo` would save


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("web-browser")
    settings = Settings(
        _env_file=None,
        data_dir=data,
        llm_base_url=None,
        llm_api_key=None,
        index_check_seconds=0,
        **SHORT_REPORTS,
    )
    nd = Newsdesk(settings, embedder=HashingEmbedder())  # type: ignore[arg-type]
    nd.indexer.index(read_paths([SEEDS]))
    nd.indexer.index(
        [
            make_article(
                HOSTILE_TEXT,
                article_id=HOSTILE_ID,
                title=HOSTILE_TITLE,
                url="javascript:alert('url')",
            )
        ]
    )
    # What `make demo` saves: the demo topic's briefing over the seeds alone.
    demo = BriefingStore(data / "briefings").save(
        BriefingService(nd).brief(BriefingBody(topic=TOPIC))
    )
    story_id = market_story_id(nd)
    keyed = settings.model_copy(update={"api_keys": [SecretStr(KEY)]})
    artifacts = Path(
        os.environ.get("NEWSDESK_TEST_ARTIFACTS") or tmp_path_factory.mktemp("web-artifacts")
    )
    artifacts.mkdir(parents=True, exist_ok=True)
    with (
        Served(create_app(settings=settings, newsdesk=nd)) as open_site,
        Served(create_app(settings=keyed, newsdesk=nd)) as keyed_site,
    ):
        yield Site(open_site, keyed_site, settings, artifacts, story_id, demo.id)
    nd.store.close()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nreader page screenshots: {artifacts}")


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@dataclass
class Tab:
    """A page whose every dialog and console message is recorded: a script from an
    article would show up in one or the other."""

    page: Page
    dialogs: list[str]
    console: list[str]

    def errors(self) -> list[str]:
        return [m for m in self.console if "error" in m.lower()]


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    """A fresh browser context: no cookies."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    t = Tab(context.new_page(), [], [])
    t.page.on("dialog", lambda d: (t.dialogs.append(d.message), d.dismiss()))
    t.page.on("console", lambda m: t.console.append(f"{m.type}: {m.text}"))
    t.page.on("pageerror", lambda e: t.console.append(f"pageerror: {e}"))
    yield t
    context.close()


def shot(page: Page, site: Site, name: str) -> None:
    """What the reader sees: the viewport (scrolled to the highlight on a reader page)."""
    page.screenshot(path=str(site.artifacts / f"{name}.png"))


def in_viewport(page: Page, selector: str) -> bool:
    return page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }",
    )


def overflows(page: Page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )


def api_citation(site: Site) -> dict:
    r = httpx.post(
        f"{site.keyed.url}/v1/ask",
        json={"question": QUESTION},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["citations"][0]


# ---- tests -------------------------------------------------------------------------------


def test_clicking_1_in_a_streamed_answer_shows_the_quote_highlighted(tab: Tab, site: Site) -> None:
    page = tab.page
    page.goto(f"{site.open.url}/")
    page.fill("#q", QUESTION)
    page.click("button[type=submit]")
    link = page.locator("#answer a.cite", has_text="[1]").first
    link.wait_for(timeout=30_000)
    # The streamed final chunk's citation: the sources list shows its quote.
    quote = page.locator(".sources li").first.locator("blockquote").inner_text().strip("“”")
    shot(page, site, "ask")
    link.click()
    page.wait_for_url("**/read/**")
    mark = page.locator("mark#cited")
    assert mark.inner_text() == quote
    assert in_viewport(page, "mark#cited")
    shot(page, site, "read")
    assert tab.dialogs == [] and tab.errors() == []


def test_a_signed_link_opens_without_a_key_and_a_tampered_or_expired_one_gets_403(
    tab: Tab, site: Site
) -> None:
    page = tab.page
    cite = api_citation(site)
    url = cite["url"]
    assert url.startswith(f"{site.keyed.url}/read/")
    response = page.goto(url)
    assert response.status == 200
    assert page.locator("mark#cited").inner_text() == cite["quote"]
    assert in_viewport(page, "mark#cited")
    # The link opened this page only: the others still ask for a login.
    page.goto(f"{site.keyed.url}/briefings")
    assert urlsplit(page.url).path == "/login"

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    tampered = f"{parts.scheme}://{parts.netloc}{parts.path}?" + urlencode(
        {**query, "spans": f"0-{cite['end']}"}
    )
    response = page.goto(tampered)
    assert response.status == 403
    assert "This link can't be opened" in page.inner_text("h1")
    shot(page, site, "link-403")

    old = LinkSigner(load_secret(site.settings), 60, 0, clock=lambda: time.time() - 3600)
    expired = old.url(site.keyed.url, cite["article_id"], [(cite["start"], cite["end"])], 1)
    response = page.goto(expired)
    assert response.status == 403
    assert "expired" in page.inner_text("p.error")


def test_login_with_keys_set(tab: Tab, site: Site) -> None:
    page = tab.page
    page.goto(f"{site.keyed.url}/briefings")
    assert urlsplit(page.url).path == "/login"
    shot(page, site, "login")
    page.fill("#key", "wrong-key")
    page.click("button[type=submit]")
    assert "not a valid API key" in page.inner_text("p.error")
    page.fill("#key", KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.keyed.url}/briefings")
    assert page.inner_text("h1") == "Briefings"
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["newsdesk_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie") == ""  # no cookie readable by scripts
    page.click("text=Log out")
    page.wait_for_url("**/login")


def test_the_hostile_article_runs_no_script(tab: Tab, site: Site) -> None:
    page = tab.page
    page.goto(f"{site.open.url}/read/{HOSTILE_ID}?start=0&end=40")
    text = page.inner_text("#text")
    assert '<script>alert("text")</script>' in text
    assert "onerror=alert" in text and "javascript:alert" in text
    assert "U+202E" in text and "\u202e" not in text
    assert page.locator("#text script, #text img, #text a").count() == 0
    page.hover("#text")
    page.mouse.click(200, 300)
    assert tab.dialogs == [] and tab.errors() == []
    assert page.locator("a[href^='javascript:']").count() == 0
    shot(page, site, "hostile")


def test_the_pages_fit_a_375_px_phone(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    pg = context.new_page()
    try:
        pg.goto(f"{site.open.url}/briefings")
        pg.fill("#topic", TOPIC)
        pg.click("form.brief button[type=submit]")
        pg.wait_for_url("**/briefings/*", timeout=60_000)
        briefing = pg.url
        assert briefing.rsplit("/", 1)[1] != site.demo_briefing
        assert pg.locator("a.cite").count() > 0
        assert not overflows(pg)
        shot(pg, site, "briefing-375")
        pg.locator("a.cite").first.click()
        pg.wait_for_url("**/read/**")
        assert in_viewport(pg, "mark#cited")
        assert not overflows(pg)
        shot(pg, site, "read-375")
        pg.goto(f"{site.open.url}/?q={QUESTION}")
        assert pg.locator("#answer a.cite").count() > 0
        assert not overflows(pg)
        box = pg.locator("button[type=submit]").bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        shot(pg, site, "ask-375")
        pg.goto(briefing)
        pg.emulate_media(media="print")
        assert pg.locator("header.top").is_hidden()
    finally:
        context.close()


def test_a_story_page_charts_its_coverage_and_links_its_summary(
    browser: Browser, site: Site
) -> None:
    for name, viewport in (("story", {"width": 1100, "height": 800}), ("story-375", PHONE)):
        context = browser.new_context(viewport=viewport)
        pg = context.new_page()
        try:
            pg.goto(f"{site.open.url}/stories")
            pg.click(f"a[href='/stories/{site.story_id}']")
            pg.wait_for_url(f"**/stories/{site.story_id}")
            bars = pg.locator("svg.chart rect.bar:not(.copies)")
            assert bars.count() == 4  # Gazette, Herald, Courier (a copy), Tribune
            assert pg.locator("svg.chart rect.bar.copies").count() == 1
            assert pg.locator("svg.chart circle.dot").count() == 4
            assert not overflows(pg)
            shot(pg, site, name)
        finally:
            context.close()
    pg = browser.new_page()
    try:
        pg.goto(f"{site.open.url}/stories/{site.story_id}")
        cite = pg.locator(".story ul a.cite").first
        n = cite.inner_text().strip("[]")
        quote = pg.locator(f"#source-{n} blockquote").inner_text().strip("“”")
        cite.click()
        pg.wait_for_url("**/read/**")
        assert pg.locator("mark#cited").inner_text() == quote
    finally:
        pg.close()


def test_the_demo_briefing_prints_on_one_page(tab: Tab, site: Site) -> None:
    page = tab.page
    page.goto(f"{site.open.url}/briefings/{site.demo_briefing}")
    assert page.locator("a.cite").count() > 0
    page.emulate_media(media="print")
    assert page.locator("header.top").is_hidden()
    assert page.locator(".sources blockquote").first.is_hidden()
    pdf = page.pdf(path=str(site.artifacts / "briefing.pdf"), format="A4")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1  # PDF page objects
