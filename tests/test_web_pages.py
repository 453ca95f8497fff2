"""Reader pages over HTTP (no browser): signed citation links, login and CSRF, escaping of
a hostile article, the pages' Content-Security-Policy, saved briefings, and the links the
API and the CLI hand out. The same behaviour in a real browser: test_web_browser.py."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from openai import OpenAI
from pydantic import SecretStr
from typer.testing import CliRunner

import service.cli
from service.api import create_app
from service.context import Newsdesk
from service.links import SECRET_FILE, LinkRefused, LinkSigner, load_secret
from service.models import OutletCoverage
from service.settings import Settings
from service.web.auth import CSRF_COOKIE, SESSION_COOKIE
from service.web.charts import coverage_bars, first_appearances
from tests.conftest import SEEDS, HashingEmbedder
from tests.test_story_coverage import SHORT_REPORTS, market_story
from vectorstore.ingest import make_article

KEY = "page-test-key-1"
QUESTION = "How many people fled the Kursk region?"
HOSTILE_ID = "hostile"
HOSTILE_TEXT = (
    "Officials in Velmar said the harbour reopened on Monday after the storm passed. "
    '<script>alert("text")</script> <img src=x onerror=alert("img")> '
    "<a href=\"javascript:alert('link')\" onclick=\"alert('click')\">click here</a> "
    "The file is named \u202egnp.exe and the ferry sailed again at noon."
)
HOSTILE_TITLE = '<script>alert("title")</script> Velmar \u202eharbour'


@pytest.fixture
def web_nd(nd: Newsdesk) -> Newsdesk:
    """The seeds plus a hostile article (hashing embedder)."""
    nd.indexer.index(
        [
            make_article(
                HOSTILE_TEXT,
                article_id=HOSTILE_ID,
                title=HOSTILE_TITLE,
                source='<b onmouseover="alert(1)">Wire</b>',
                url="javascript:alert('url')",
                author="<i>Anon</i>",
            )
        ]
    )
    return nd


def keyed_settings(nd: Newsdesk, **overrides: object) -> Settings:
    # model_copy does not validate: keys go in as the SecretStr the setting holds.
    values = {"api_keys": [KEY], **overrides}
    values["api_keys"] = [SecretStr(k) for k in values["api_keys"]]  # type: ignore[union-attr]
    return nd.settings.model_copy(update=values)


@pytest.fixture
def keyed(web_nd: Newsdesk) -> Iterator[TestClient]:
    """The app with API keys set: pages need a login, signed links don't."""
    app = create_app(settings=keyed_settings(web_nd), newsdesk=web_nd)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def open_client(web_nd: Newsdesk) -> Iterator[TestClient]:
    with TestClient(create_app(newsdesk=web_nd), raise_server_exceptions=False) as c:
        yield c


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def signed_citation(c: TestClient) -> dict:
    r = c.post("/v1/ask", json={"question": QUESTION}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    return r.json()["citations"][0]


def marked(page: str, anchor: str = "cited") -> str:
    m = re.search(rf'<mark class="[a-z]+" id="{anchor}">(.*?)</mark>', page, re.S)
    assert m, page
    return html.unescape(m.group(1))


def csrf(c: TestClient, path: str = "/login") -> str:
    c.get(path)
    token = c.cookies.get(CSRF_COOKIE)
    assert token
    return token


def log_in(c: TestClient, key: str = KEY) -> None:
    token = csrf(c)
    r = c.post(
        "/login", data={"key": key, "csrf_token": token, "next": "/"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text


# ---- signed links ------------------------------------------------------------------------


def test_a_signed_link_opens_the_article_with_the_quote_highlighted_without_a_key(
    keyed: TestClient,
) -> None:
    cite = signed_citation(keyed)
    assert cite["url"].startswith("http://testserver/read/")
    assert cite["url"].endswith("#cited")
    r = keyed.get(path_of(cite["url"]))  # no Authorization header, no cookie
    assert r.status_code == 200
    assert marked(r.text) == cite["quote"]
    assert "text/html" in r.headers["content-type"]


def test_a_signed_link_grants_that_article_only(keyed: TestClient) -> None:
    cite = signed_citation(keyed)
    query = urlsplit(cite["url"]).query
    # The same signature on another article, the API, and the other pages: all refused.
    other = keyed.get(f"/read/{HOSTILE_ID}?{query}")
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "link_invalid"
    assert keyed.get(f"/v1/articles/{cite['article_id']}?{query}").status_code == 401
    for page in ("/", "/briefings", "/stories", f"/read/{cite['article_id']}"):
        r = keyed.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(
    "change",
    [
        {"spans": "0-40"},
        {"rev": "2"},
        {"exp": str(int(time.time()) + 10**6)},
        {"sig": "A" * 43},
        {"sig": ""},
    ],
)
def test_a_tampered_link_is_refused_with_403(keyed: TestClient, change: dict) -> None:
    cite = signed_citation(keyed)
    parts = urlsplit(cite["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | change
    path = f"{parts.path}?{urlencode(query)}"
    as_json = keyed.get(path)
    assert as_json.status_code == 403
    assert as_json.json() == {
        "error": {"code": "link_invalid", "message": as_json.json()["error"]["message"]}
    }
    as_page = keyed.get(path, headers={"Accept": "text/html"})
    assert as_page.status_code == 403
    assert "This link can't be opened" in html.unescape(as_page.text)
    assert cite["quote"] not in html.unescape(as_page.text)


def test_links_expire_after_the_clock_skew_allowance(web_nd: Newsdesk) -> None:
    settings = keyed_settings(web_nd, link_clock_skew_seconds=60)
    secret = load_secret(settings)
    app = create_app(settings=settings, newsdesk=web_nd)
    now = time.time()
    # Signed an hour ago with a lifetime of an hour: expired 10 s ago, 70 s ago.
    within = LinkSigner(secret, 3600, 60, clock=lambda: now - 3610)
    past = LinkSigner(secret, 3600, 60, clock=lambda: now - 3670)
    with TestClient(app, raise_server_exceptions=False) as c:
        cite = signed_citation(c)
        spans = [(cite["start"], cite["end"])]
        ok = c.get(path_of(within.url("", cite["article_id"], spans, cite["revision"])))
        assert ok.status_code == 200
        gone = c.get(path_of(past.url("", cite["article_id"], spans, cite["revision"])))
        assert gone.status_code == 403
        assert gone.json()["error"]["code"] == "link_expired"
    # A link signed with another secret is as good as a forged one.
    forged = LinkSigner(b"another secret", 3600, 60).url("", "a1", [(0, 5)], 1)
    query = {k: v[0] for k, v in parse_qs(urlsplit(forged).query).items()}
    with pytest.raises(LinkRefused) as refused:
        LinkSigner(secret, 3600, 60).verify("a1", query)
    assert refused.value.reason == "invalid"


def test_the_link_secret_is_made_once_kept_0600_and_overridden_by_the_setting(
    settings: Settings,
) -> None:
    first = load_secret(settings)
    path = settings.data_dir / SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(settings) == first  # stable across restarts
    assert len(first) == 64
    chosen = settings.model_copy(update={"link_secret": SecretStr("shared-by-replicas")})
    assert load_secret(chosen) == b"shared-by-replicas"
    signed = LinkSigner(load_secret(chosen), 60, 0).url("", "a1", [(0, 5)], 1)
    query = {k: v[0] for k, v in parse_qs(urlsplit(signed).query).items()}
    assert LinkSigner(b"shared-by-replicas", 60, 0).verify("a1", query).spans == ((0, 5),)
    with pytest.raises(LinkRefused):
        LinkSigner(first, 60, 0).verify("a1", query)


# ---- links in API responses ----------------------------------------------------------------


def test_api_citations_link_to_the_public_url_when_set(web_nd: Newsdesk) -> None:
    settings = keyed_settings(web_nd, public_url="https://news.example.org/")
    with TestClient(create_app(settings=settings, newsdesk=web_nd)) as c:
        cite = signed_citation(c)
        assert cite["url"].startswith("https://news.example.org/read/")
        # The link works on the server whatever host name it was handed out under.
        assert marked(c.get(path_of(cite["url"])).text) == cite["quote"]
        brief = c.post(
            "/v1/briefings",
            json={"topic": "the fighting in the Kursk region"},
            headers={"Authorization": f"Bearer {KEY}"},
        ).json()
        assert brief["citations"]
        assert all(
            x["url"].startswith("https://news.example.org/read/") for x in brief["citations"]
        )


def test_chat_completions_carry_the_signed_links_for_openai_clients(keyed: TestClient) -> None:
    client = OpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=keyed)
    reply = client.chat.completions.create(
        model="newsdesk", messages=[{"role": "user", "content": QUESTION}]
    )
    cite = reply.model_extra["citations"][0]
    page = keyed.get(path_of(cite["url"]))
    assert page.status_code == 200 and marked(page.text) == cite["quote"]


# ---- login and CSRF ------------------------------------------------------------------------


def test_login_exchanges_the_key_for_a_strict_httponly_session(keyed: TestClient) -> None:
    assert keyed.get("/", follow_redirects=False).status_code == 303
    token = csrf(keyed)
    no_csrf = keyed.post("/login", data={"key": KEY}, follow_redirects=False)
    assert no_csrf.status_code == 403
    wrong = keyed.post("/login", data={"key": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "not a valid API key" in wrong.text
    assert SESSION_COOKIE not in keyed.cookies
    ok = keyed.post(
        "/login",
        data={"key": KEY, "csrf_token": token, "next": "/briefings"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/briefings"
    cookie = ok.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert KEY not in cookie
    assert keyed.get("/").status_code == 200
    assert keyed.get("/briefings").status_code == 200
    # The session is no API key.
    assert keyed.get("/v1/articles").status_code == 401


def test_login_never_redirects_off_site(keyed: TestClient) -> None:
    token = csrf(keyed)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r = keyed.post(
            "/login",
            data={"key": KEY, "csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/"


def test_a_forged_or_stale_session_is_refused(keyed: TestClient, web_nd: Newsdesk) -> None:
    log_in(keyed)
    good = keyed.cookies.get(SESSION_COOKIE)
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    keyed.cookies.delete(SESSION_COOKIE)
    keyed.cookies.set(SESSION_COOKIE, forged)
    assert keyed.get("/", follow_redirects=False).status_code == 303
    # The key was removed from the configuration: its sessions end with it.
    rotated = create_app(settings=keyed_settings(web_nd, api_keys=["another"]), newsdesk=web_nd)
    with TestClient(rotated) as c:
        c.cookies.set(SESSION_COOKIE, good)
        assert c.get("/", follow_redirects=False).status_code == 303


def test_every_form_needs_the_csrf_token(keyed: TestClient) -> None:
    log_in(keyed)
    token = keyed.cookies.get(CSRF_COOKIE)
    topic = {"topic": "the fighting in the Kursk region"}
    assert keyed.post("/briefings", data=topic, follow_redirects=False).status_code == 403
    bad = {**topic, "csrf_token": token + "x"}
    assert keyed.post("/briefings", data=bad, follow_redirects=False).status_code == 403
    stream = keyed.post("/ask/stream", json={"question": QUESTION})
    assert stream.status_code == 403 and stream.json()["error"]["code"] == "csrf_failed"
    assert keyed.post("/logout", follow_redirects=False).status_code == 403
    assert keyed.get("/", follow_redirects=False).status_code == 200  # still logged in
    out = keyed.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert keyed.get("/", follow_redirects=False).status_code == 303


def test_without_keys_the_pages_are_open_like_the_api(open_client: TestClient) -> None:
    assert open_client.get("/").status_code == 200
    assert open_client.get("/briefings").status_code == 200
    assert open_client.get("/login", follow_redirects=False).status_code == 303


# ---- pages ---------------------------------------------------------------------------------


def test_a_briefing_is_saved_and_shown_with_clickable_citations(open_client: TestClient) -> None:
    token = csrf(open_client, "/briefings")
    r = open_client.post(
        "/briefings",
        data={"topic": "the fighting in the Kursk region", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = open_client.get(r.headers["location"])
    assert page.status_code == 200
    links = re.findall(r'<a class="cite" href="([^"]+)">\[(\d+)\]</a>', page.text)
    assert links
    href, _ = links[0]
    target = open_client.get(html.unescape(href))
    assert target.status_code == 200 and 'id="cited"' in target.text
    assert r.headers["location"].rsplit("/", 1)[1] in open_client.get("/briefings").text
    assert open_client.get("/briefings/../../etc").status_code == 404


def test_the_ask_page_answers_without_script_and_streams_with_it(open_client: TestClient) -> None:
    page = open_client.get("/", params={"q": QUESTION})
    links = re.findall(r'<a class="cite" href="([^"]+)">\[1\]</a>', page.text)
    assert links
    reader = open_client.get(html.unescape(links[0]))
    token = open_client.cookies.get(CSRF_COOKIE)
    stream = open_client.post(
        "/ask/stream", json={"question": QUESTION}, headers={"X-CSRF-Token": token}
    )
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in stream.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    cites = next(c["citations"] for c in chunks if "citations" in c)
    assert "[1]" in text and cites[0]["url"].startswith("/read/")
    assert marked(reader.text) == cites[0]["quote"]


def test_the_hostile_article_renders_as_inert_text(open_client: TestClient) -> None:
    r = open_client.get(f"/read/{HOSTILE_ID}", params={"start": 0, "end": 40})
    assert r.status_code == 200
    body = r.text
    # No tag, attribute or URL from the article survives as markup.
    assert "<script>alert" not in body and "<img" not in body
    assert "onerror=" not in body.replace("onerror=alert(&#34;img&#34;)", "")
    assert 'href="javascript:' not in body.lower() and "<b onmouseover" not in body
    assert "&lt;script&gt;alert(&#34;text&#34;)&lt;/script&gt;" in body
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in body
    # The bidi override is shown as its code point, not applied.
    assert "\u202e" not in body and "U+202E" in body
    # The javascript: URL is shown as text, not linked.
    assert "javascript:alert(&#39;url&#39;)" in body and "(not a web link)" in body
    scripts = re.findall(r"<script[^>]*>", body)
    assert scripts == []  # the reader page needs no script at all


def test_pages_send_a_strict_csp_and_no_inline_script(open_client: TestClient) -> None:
    for path in ("/", "/briefings", f"/read/{HOSTILE_ID}"):
        r = open_client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        for tag in re.findall(r"<script[^>]*>", r.text):
            assert re.fullmatch(r'<script src="/static/[a-z]+\.js">', tag)
        tags = re.findall(r"<[a-z][^>]*>", r.text)
        assert not [t for t in tags if re.search(r"\son[a-z]+=", t)]  # no inline handlers
    js = open_client.get("/static/ask.js")
    assert js.status_code == 200 and ".innerHTML" not in js.text


def test_an_unknown_article_is_a_404_page(open_client: TestClient) -> None:
    r = open_client.get("/read/nope", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "No article" in r.text


# ---- the CLI -------------------------------------------------------------------------------


def test_brief_save_prints_the_url_of_its_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(data))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    runner = CliRunner()
    assert runner.invoke(service.cli.app, ["ingest", str(SEEDS)]).exit_code == 0
    result = runner.invoke(
        service.cli.app, ["brief", "--topic", "the fighting in the Kursk region", "--save"]
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[-1].removeprefix("Saved: ")
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/briefings/[0-9a-f]{16}", url)
    briefing_id = url.rsplit("/", 1)[1]
    saved = json.loads((data / "briefings" / f"{briefing_id}.json").read_text())
    assert saved["briefing"]["citations"]
    settings = Settings(_env_file=None, data_dir=data, llm_base_url=None, llm_api_key=None)
    with TestClient(create_app(newsdesk=Newsdesk(settings, embedder=HashingEmbedder()))) as c:
        page = c.get(f"/briefings/{briefing_id}")
        assert page.status_code == 200
        assert html.escape(saved["briefing"]["title"], quote=False) in page.text


# ---- stories -------------------------------------------------------------------------------

HOSTILE_OUTLET = "<b>\u202eHerald</b>"


@pytest.fixture
def story_client(make_newsdesk: Callable[..., Newsdesk]) -> Iterator[tuple[TestClient, str]]:
    """Four outlets on one event (tests/test_story_coverage.py), the Herald renamed to
    something hostile."""
    newsdesk = make_newsdesk(**SHORT_REPORTS)
    articles = [
        dataclasses.replace(a, source=HOSTILE_OUTLET) if a.source == "Herald" else a
        for a in market_story()
    ]
    newsdesk.indexer.index([a for a in articles if a.id != "courier"])
    newsdesk.indexer.index([a for a in articles if a.id == "courier"])
    story_id = newsdesk.store.story_ids_of(["gazette"])["gazette"]
    app = create_app(settings=keyed_settings(newsdesk), newsdesk=newsdesk)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, story_id


def test_a_story_page_draws_coverage_and_first_appearances_as_svg(
    story_client: tuple[TestClient, str],
) -> None:
    c, story_id = story_client
    assert c.get(f"/stories/{story_id}", follow_redirects=False).status_code == 303
    log_in(c)
    listing = c.get("/stories")
    assert f'href="/stories/{story_id}"' in listing.text
    page = c.get(f"/stories/{story_id}")
    assert page.status_code == 200
    labels = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', page.text)
    # Bars, most articles first, then first appearances in time order.
    herald = "<b>[U+202E]Herald</b>"  # escaped, its direction control written out
    assert [html.unescape(x) for x in labels] == [
        *(herald, "Courier", "Gazette", "Tribune"),  # bars: 1 article each, by name
        *("Gazette", herald, "Courier", "Tribune"),  # first appearances, in time order
    ]
    assert "<b>" not in page.text and "&lt;b&gt;" in page.text
    assert "\u202e" not in page.text
    assert len(re.findall(r'<rect class="bar copies"', page.text)) == 1  # the Courier's copy
    assert len(re.findall(r'<circle class="dot"', page.text)) == 4
    # The summary's citations link to reader pages that highlight their quote.
    href = html.unescape(re.findall(r'<a class="cite" href="([^"]+)">', page.text)[0])
    assert c.get(href).status_code == 200 and 'id="cited"' in c.get(href).text


def test_briefing_a_story_needs_the_csrf_token_and_saves_it(
    story_client: tuple[TestClient, str],
) -> None:
    c, story_id = story_client
    log_in(c)
    assert c.post(f"/stories/{story_id}/briefing", follow_redirects=False).status_code == 403
    token = c.cookies.get(CSRF_COOKIE)
    r = c.post(f"/stories/{story_id}/briefing", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/briefings/")
    assert c.get(r.headers["location"]).text.count('class="cite"') > 0
    missing = c.get("/stories/story-nope", headers={"Accept": "text/html"})
    assert missing.status_code == 404


def test_charts_scale_bars_to_the_most_articles_and_place_dates_in_time() -> None:
    def row(outlet: str | None, n: int, copies: int, first: str | None) -> OutletCoverage:
        return OutletCoverage(
            outlet=outlet,
            articles=[f"{outlet}-{i}" for i in range(n)],
            copies=copies,
            first_covered=first,
            characters=100,
            quoted_share=0,
            attributed_share=0,
            own_voice_share=1,
            loaded_terms_own_voice={},
            loaded_terms_quoted={},
            loaded_terms_attributed={},
        )

    rows = [
        row("A", 1, 0, "2024-03-09T12:00:00+00:00"),
        row("B", 4, 1, "2024-03-09T10:00:00+00:00"),
        row(None, 2, 0, None),
    ]
    bars = coverage_bars(rows)
    assert [(b.label, b.articles) for b in bars.bars] == [("B", 4), ("outlet unknown", 2), ("A", 1)]
    full = bars.bars[0].own_width + bars.bars[0].copies_width
    assert bars.bars[0].copies_width == pytest.approx(full / 4)
    assert bars.bars[2].own_width == pytest.approx(full / 4)
    line = first_appearances(rows)
    assert [d.label for d in line.dots] == ["B", "A"]  # earliest first
    assert line.dots[0].x < line.dots[1].x and line.undated == ["outlet unknown"]
    assert (line.start, line.end) == ("2024-03-09 10:00", "2024-03-09 12:00")
