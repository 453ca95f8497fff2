"""Hostile content that used to get a 500 or reach a chat UI raw: impossible publication
dates in uploads and batches, stored text with no searchable word, and Markdown or HTML in
articles and LLM claims. Every citation still keeps ``quote == canonical_text[start:end]``.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from typer.testing import CliRunner

import service.cli
from service.answer import REFUSAL
from service.api import create_app
from service.context import Newsdesk
from service.render import answer_text_markdown, md_escape, summary_markdown
from service.requests import SummaryBody
from service.settings import Settings
from service.summarize import SummaryService
from tests.conftest import HashingEmbedder
from tests.hardening import assert_citations_verbatim, assert_error
from tests.llm_mock import BASE_URL, CHAT_URL, completion
from vectorstore.ingest import make_article

COMMONMARK = MarkdownIt("commonmark")  # raw HTML passes through, as in many chat UIs


@pytest.fixture
def bare(newsdesk: Newsdesk) -> Iterator[TestClient]:
    """The API over an empty store."""
    with TestClient(create_app(newsdesk=newsdesk), raise_server_exceptions=False) as c:
        yield c


def articles_total(client: TestClient) -> int:
    return client.get("/v1/articles").json()["total"]


# ---- impossible publication dates -----------------------------------------------------------

IMPOSSIBLE_DATES = ["1e20", "-1e20", "NaN", "Infinity", "true", "false", "9" * 400]


def record(published_at: str, text: str = "The Velmar ferry sailed at dawn.") -> bytes:
    return f'{{"text": "{text}", "published_at": {published_at}}}'.encode()


@pytest.mark.parametrize("raw", IMPOSSIBLE_DATES)
def test_uploaded_file_with_an_impossible_date_is_422_naming_the_field(
    bare: TestClient, raw: str
) -> None:
    r = bare.post("/v1/articles", files={"file": ("story.json", record(raw))})
    body = assert_error(r, 422, "invalid_article")
    assert body["error"]["message"].startswith("published_at: ")
    assert articles_total(bare) == 0


@pytest.mark.parametrize("raw", IMPOSSIBLE_DATES)
def test_json_body_with_an_impossible_date_is_422_naming_the_field(
    bare: TestClient, raw: str
) -> None:
    r = bare.post("/v1/articles", content=record(raw), headers={"Content-Type": "application/json"})
    assert "published_at" in assert_error(r, 422)["error"]["message"]
    assert articles_total(bare) == 0


@pytest.mark.parametrize("raw", ["1700000000", "1700000000000"])
def test_uploaded_unix_seconds_and_milliseconds_become_the_same_date(
    bare: TestClient, raw: str
) -> None:
    r = bare.post("/v1/articles", files={"file": ("story.json", record(raw))})
    assert r.status_code == 201, r.text
    [article_id] = r.json()["article_ids"]
    assert bare.get(f"/v1/articles/{article_id}").json()["published_at"] == (
        "2023-11-14T22:13:20+00:00"
    )
    # The range filters read the same date.
    found = bare.get("/v1/articles", params={"published_after": "2023-11-14"}).json()
    assert [a["id"] for a in found["items"]] == [article_id]
    assert bare.get("/v1/articles", params={"published_after": "2023-11-15"}).json()["total"] == 0


def test_cli_batch_skips_records_with_impossible_dates_and_stores_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lines = [record("1700000000", "The first good record is here.")]
    lines += [record(raw, f"Bad record number {i}.") for i, raw in enumerate(IMPOSSIBLE_DATES)]
    lines += [record("1700000000000", "The last good record is here.")]
    (inbox / "batch.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (inbox / "one.json").write_bytes(record('"2024-03-01"', "A JSON file record."))

    runner = CliRunner()
    result = runner.invoke(service.cli.app, ["ingest", str(inbox), "--json"])
    assert result.exit_code == 1  # some records failed, and said so
    report = json.loads(result.stdout)
    assert (report["added"], report["failed"]) == (3, len(IMPOSSIBLE_DATES))
    assert all(e["reason"].startswith("published_at: ") for e in report["errors"])
    assert "Traceback" not in result.stdout + result.stderr

    listed = json.loads(runner.invoke(service.cli.app, ["articles", "--json"]).stdout)
    rows = listed["items"] if isinstance(listed, dict) else listed
    assert sorted(a["published_at"] for a in rows) == [
        "2023-11-14T22:13:20+00:00",
        "2023-11-14T22:13:20+00:00",
        "2024-03-01",
    ]


# ---- no searchable word -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["A", "And the, of it.", "…!?"])
def test_ask_and_chat_refuse_when_no_stored_word_is_searchable(bare: TestClient, text: str) -> None:
    assert bare.post("/v1/articles", json={"text": text}).status_code == 201
    r = bare.post("/v1/ask", json={"question": "What happened in Velmar?"})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["refused"] is True and r.json()["citations"] == []
    r = bare.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "What happened in Velmar?"}]},
    )
    assert r.status_code == 200, r.text[:300]
    assert r.json()["choices"][0]["message"]["content"].startswith(REFUSAL)
    assert r.json()["citations"] == []


def test_keyword_index_without_a_searchable_word_survives_a_restart(
    make_newsdesk: Callable[..., Newsdesk], caplog: pytest.LogCaptureFixture
) -> None:
    first = make_newsdesk()
    first.indexer.index([make_article("A", article_id="only-a")])
    assert first.keyword.search("a", 5) == []
    # A restart loads the saved index (which has no BM25 part): no failure, no rebuild.
    caplog.set_level(logging.INFO, logger="vectorstore.keyword")
    again = make_newsdesk()
    assert again.keyword.search("velmar ferry", 5) == []
    assert "keyword index rebuilt" not in caplog.text
    again.indexer.index([make_article("The Velmar ferry sailed.", article_id="ferry")])
    again.keyword.invalidate()
    assert [c.article_id for c, _ in again.keyword.search("velmar ferry", 5)] == ["ferry"]


# ---- Markdown and HTML in articles and LLM claims ----------------------------------------------

PAYLOADS = (
    "<img src=x onerror=alert(1)>",
    "[read more](javascript:alert(1))",
    "![](http://tracker.example/pixel.png)",
    "<script>alert(2)</script>",
)
RAW_MARKUP = ("<img", "<script", "](javascript:", "![](", "<http")
ARTICLE_A = (
    "Velmar harbour notice <img src=x onerror=alert(1)>\n\n"
    "The Velmar harbour master said 38 ships waited outside the breakwater "
    "[read more](javascript:alert(1)) on Sunday. "
    "Inspectors photographed the tankers ![](http://tracker.example/pixel.png) near the quay. "
    "The harbour reopened on Monday, the port authority said."
)
ARTICLE_B = (
    "Velmar port authority statement\n\n"
    "The port authority said 41 ships waited outside the Velmar breakwater on Sunday "
    "<script>alert(2)</script> while the storm passed. "
    "Officials said the Velmar harbour reopened on Monday after the storm."
)
QUESTION = "How many ships waited outside the Velmar breakwater?"


def hostile_articles() -> list:
    return [
        make_article(
            ARTICLE_A,
            title="<img src=x onerror=alert(1)> Velmar [harbour](javascript:alert(1))",
            source="![](http://tracker.example/src.png) Wire",
            article_id="velmar-a",
        ),
        make_article(
            ARTICLE_B,
            title="Velmar **port** <b>statement</b>",
            source="Port <i>Authority</i>",
            article_id="velmar-b",
        ),
    ]


def assert_inert(markdown: str) -> None:
    """No markup from the articles or the LLM is live: not in the text, and not in what a
    CommonMark renderer (which passes raw HTML through) makes of it."""
    for raw in RAW_MARKUP:
        assert raw not in markdown, (raw, markdown)
    rendered = COMMONMARK.render(markdown)
    for tag in ("<img", "<script", "<a ", "<b>", "<i>"):
        assert tag not in rendered, (tag, rendered)


def assert_quotes_keep_raw_markup(citations: list[dict]) -> None:
    """The JSON keeps the exact text: at least one quote carries a payload as written."""
    assert any(p in c["quote"] for c in citations for p in PAYLOADS), citations


@given(st.text(alphabet=st.characters(blacklist_characters="\x00")))
def test_escaped_text_renders_as_exactly_that_text(text: str) -> None:
    escaped = md_escape(text)
    for line in (escaped, f"- {escaped}"):
        rendered = COMMONMARK.render(line)
        inner = re.fullmatch(r"(?:<ul>\n<li>|<p>)?(.*?)(?:</li>\n</ul>|</p>)?\n?", rendered, re.S)
        assert inner is not None
        assert "<" not in inner.group(1), rendered  # no tag of any kind: text only
        shown = html.unescape(inner.group(1))
        assert shown.split() == text.split(), (text, escaped, rendered)


def test_answer_markers_stay_while_claims_are_escaped() -> None:
    text = "Ships waited [x](javascript:alert(1)) [1] and <img src=x> [2][3]"
    markdown = answer_text_markdown(text)
    assert markdown.endswith(" [1] and &lt;img src=x&gt; [2][3]")
    assert_inert(markdown)


def test_chat_and_briefing_markdown_from_hostile_articles_are_inert(
    newsdesk: Newsdesk, bare: TestClient
) -> None:
    newsdesk.indexer.index(hostile_articles())
    ask = {"messages": [{"role": "user", "content": QUESTION}]}
    r = bare.post("/v1/chat/completions", json=ask)
    assert r.status_code == 200, r.text[:300]
    content, citations = r.json()["choices"][0]["message"]["content"], r.json()["citations"]
    assert citations and not content.startswith(REFUSAL)
    assert_inert(content)
    assert "&lt;img src=x onerror=alert(1)&gt; Velmar" in content  # shown, escaped
    assert_citations_verbatim(bare, citations)
    assert_quotes_keep_raw_markup(citations)

    r = bare.post(
        "/v1/chat/completions",
        json={**ask, "stream": True},
    )
    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in r.text.splitlines()
        if line.startswith("data: {")
    ]
    assert "".join(pieces) == content

    topic = "Velmar harbour ships <img src=x onerror=alert(1)> [x](javascript:alert(1))"
    r = bare.post("/v1/briefings", json={"topic": topic, "format": "markdown"})
    assert r.status_code == 200, r.text[:300]
    assert "Velmar" in r.text and "Sources" in r.text
    assert_inert(r.text)


@pytest.mark.parametrize(
    "args",
    [
        ("ask", QUESTION),
        ("summarize", "--topic", "Velmar harbour ships"),
        ("brief", "--topic", "Velmar harbour ships"),
    ],
    ids=["ask", "summarize", "brief"],
)
def test_cli_markdown_from_hostile_articles_is_inert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(data))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    settings = Settings(_env_file=None, data_dir=data, llm_base_url=None, llm_api_key=None)
    Newsdesk(settings, embedder=HashingEmbedder()).indexer.index(hostile_articles())  # type: ignore[arg-type]
    result = CliRunner().invoke(service.cli.app, list(args))
    assert result.exit_code == 0, result.stderr
    assert "Velmar" in result.stdout and "Sources:" in result.stdout
    assert_inert(result.stdout)


def passage_with(prompt: str, phrase: str) -> int:
    """The number of the prompt passage whose text contains ``phrase``."""
    for number, body in re.findall(r"<<<PASSAGE (\d+) \w+>>>\n(.*?)<<<END", prompt, re.S):
        if phrase in body:
            return int(number)
    raise AssertionError(f"no passage contains {phrase!r}")


@pytest.fixture
def llm_newsdesk(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Newsdesk:
    import openai._base_client

    monkeypatch.setattr(openai._base_client.time, "sleep", lambda _s: None)
    s = settings.model_copy(update={"llm_base_url": BASE_URL, "llm_fallback": "none"})
    nd = Newsdesk(s, embedder=HashingEmbedder(), llm_http_client=httpx.Client())  # type: ignore[arg-type]
    nd.indexer.index(hostile_articles())
    return nd


def hostile_claim(prompt: str) -> dict:
    # The markup is the article's own, quoted: a claim can only carry what its quote says.
    quote = (
        "The Velmar harbour master said 38 ships waited outside the breakwater "
        "[read more](javascript:alert(1)) on Sunday"
    )
    return {
        "text": "38 ships waited outside the breakwater [read more](javascript:alert(1))",
        "quotes": [{"passage": passage_with(prompt, quote), "quote": quote}],
    }


def test_llm_claims_with_markup_reach_chat_escaped(llm_newsdesk: Newsdesk) -> None:
    def llm(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        return completion({"refused": False, "claims": [hostile_claim(prompt)]})

    with (
        respx.mock(assert_all_called=True) as router,
        TestClient(create_app(newsdesk=llm_newsdesk), raise_server_exceptions=False) as c,
    ):
        router.post(CHAT_URL).mock(side_effect=llm)
        r = c.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}
        )
        assert r.status_code == 200, r.text[:300]
        data = r.json()
        assert data["newsdesk"]["engine"] == "llm"
        content = data["choices"][0]["message"]["content"]
        assert content.startswith(
            "38 ships waited outside the breakwater \\[read more\\]\\(javascript:alert(1)) [1]"
        )
        assert_inert(content)
        assert_citations_verbatim(c, data["citations"])
        assert [q["quote"] for q in data["citations"]] == [
            "The Velmar harbour master said 38 ships waited outside the breakwater "
            "[read more](javascript:alert(1)) on Sunday"
        ]


def test_llm_summary_points_and_differences_are_escaped(llm_newsdesk: Newsdesk) -> None:
    def llm(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][-1]["content"]
        other = (
            "The port authority said 41 ships waited outside the Velmar breakwater on Sunday "
            "<script>alert(2)</script>"
        )
        side_b = {
            "text": "41 ships waited outside the Velmar breakwater <script>alert(2)</script>",
            "quotes": [{"passage": passage_with(prompt, other), "quote": other}],
        }
        return completion(
            {
                "points": [hostile_claim(prompt)],
                "differences": [
                    {
                        "topic": "Ships waited " + PAYLOADS[3],
                        "sides": [hostile_claim(prompt), side_b],
                    }
                ],
            }
        )

    with respx.mock(assert_all_called=True) as router:
        router.post(CHAT_URL).mock(side_effect=llm)
        summary = SummaryService(llm_newsdesk).summarize(
            SummaryBody(topic="Velmar ships " + PAYLOADS[0])
        )
    assert summary.engine == "llm" and summary.points and summary.differences
    markdown = summary_markdown(summary)
    assert "Ships waited &lt;script&gt;alert(2)&lt;/script&gt;" in markdown
    assert_inert(markdown)
    texts = {a.id: a.text for a in hostile_articles()}
    for c in summary.citations:
        assert texts[c.article_id][c.start : c.end] == c.quote
