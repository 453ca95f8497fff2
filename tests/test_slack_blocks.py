"""Block Kit rendering, escaping, Slack's limits, thread history and the app manifest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from service.models import (
    Answer,
    Briefing,
    Citation,
    Development,
    Difference,
    Perspective,
    Point,
    SourceShare,
    Summary,
)
from service.requests import HistoryMessage as Message
from service.slack.blocks import (
    MAX_BLOCKS,
    REFUSAL,
    SECTION_CHARS,
    TRIMMED,
    WORKING,
    answer_blocks,
    briefing_blocks,
    citation_line,
    engine_text,
    escape,
    span_url,
    split_messages,
    split_text,
    summary_blocks,
)
from service.slack.history import bot_in_thread, slack_to_plain, thread_history, ts_key

MANIFEST = Path(__file__).resolve().parent.parent / "service" / "slack" / "manifest.yaml"
HOSTILE = "<!channel> <!here|here> <@U024BE7LH> <#C1|general> <https://evil|click> & co"
# Every "&" must start one of the three entities, every "<" must be our own link.
BROKEN_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


# A signed reader link as the bot puts it on a citation, and as Slack's syntax writes it.
LINK = "https://newsdesk.example/read/a1?spans=10-20&rev=1&exp=1900000000&sig=S1g#cited"
SLACK_LINK = LINK.replace("&", "&amp;")


def cite(n: int = 1, **overrides: object) -> Citation:
    values: dict[str, object] = {
        "n": n,
        "article_id": "a1",
        "title": "Title",
        "source": "Wire",
        "published_at": "2024-08-10T09:00:00+00:00",
        "start": 10,
        "end": 20,
        "quote": "Quoted words.",
    }
    values.update(overrides)
    return Citation(**values)  # type: ignore[arg-type]


def texts(blocks: list[dict]) -> list[str]:
    out = []
    for b in blocks:
        if b["type"] == "section":
            out.append(b["text"]["text"])
        elif b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return out


def assert_safe(blocks: list[dict]) -> None:
    for b in blocks:
        assert b["type"] in {"section", "context"}
        for t in texts([b]):
            assert not BROKEN_ENTITY.search(t), t
            assert "<!" not in t and "<@" not in t and "<#" not in t
            assert len(t) <= SECTION_CHARS
        objs = [b["text"]] if b["type"] == "section" else b["elements"]
        assert all(o["type"] == "mrkdwn" and o["verbatim"] is True for o in objs)


# ---- escaping ---------------------------------------------------------------------------


def test_escape_makes_mentions_and_links_inert() -> None:
    assert escape(HOSTILE) == (
        "&lt;!channel&gt; &lt;!here|here&gt; &lt;@U024BE7LH&gt; &lt;#C1|general&gt; "
        "&lt;https://evil|click&gt; &amp; co"
    )
    assert escape("tell @here and @channel, not @hereford") == (
        "tell @\u2060here and @\u2060channel, not @hereford"
    )
    assert escape("&lt; already") == "&amp;lt; already"  # text is text, even entities


def test_citation_line_escapes_every_field_and_links_the_span() -> None:
    c = cite(title="<!here> T & U", source="<@U1>", quote="Said <https://evil|click>.", url=LINK)
    line = citation_line(c)
    assert line == (
        f"*[1]* <{SLACK_LINK}|"
        "&lt;!here&gt; T &amp; U> — &lt;@U1&gt; · 2024-08-10\n"
        ">“Said &lt;https://evil|click&gt;.”"
    )
    no_url = c.model_copy(update={"url": None})  # no public URL: no link
    assert citation_line(no_url).startswith("*[1]* *&lt;!here&gt; T &amp; U* — ")


def test_markdown_and_html_from_articles_and_the_llm_make_no_link_in_slack() -> None:
    """Slack's mrkdwn has no [text](url) links, images or HTML; its only link syntax is
    <url|label>, so escaping "<" leaves the span link as the one live link."""
    payload = "<img src=x onerror=alert(1)> [x](javascript:alert(1)) ![](http://t.example/p)"
    answer = Answer(
        answer=f"Ships waited {payload} [1]",
        refused=False,
        engine="llm",
        citations=[cite(title=payload, source=payload, quote=payload, url=LINK)],
    )
    blocks = answer_blocks(answer)
    assert_safe(blocks)
    links = [m for t in texts(blocks) for m in re.findall(r"<([^>]*)>", t)]
    assert links == [
        f"{SLACK_LINK}|"
        "&lt;img src=x onerror=alert(1)&gt; [x](javascript:alert(1)) ![](http://t.example/p)"
    ]


def test_span_url_is_the_signed_link_in_slack_syntax_and_refuses_odd_ones() -> None:
    assert span_url(cite(url=LINK)) == SLACK_LINK
    assert span_url(cite()) is None
    assert span_url(cite(url="https://h|evil")) is None
    assert span_url(cite(url="https://h/>x")) is None


def test_long_quotes_and_titles_are_trimmed() -> None:
    line = citation_line(cite(title="word " * 100, quote="quote " * 200))
    title, quote = line.split("\n")
    assert len(title) < 200 and title.count("…") == 1
    assert len(quote) < 260 and quote.endswith("…”")


# ---- answers -------------------------------------------------------------------------------


def test_answer_blocks_exactly() -> None:
    answer = Answer(
        answer="Over 121,000 people fled <!channel>. [1]",
        refused=False,
        engine="extractive",
        citations=[cite(url=LINK)],
        citations_verified=1,
    )
    assert answer_blocks(answer) == [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Over 121,000 people fled &lt;!channel&gt;. [1]",
                "verbatim": True,
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Sources*\n*[1]* <{SLACK_LINK}|"
                "Title> — Wire · 2024-08-10\n>“Quoted words.”",
                "verbatim": True,
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": ":mag: Answered by the extractive engine: sentences quoted from the "
                    "articles · 1 citation checked against the source text",
                    "verbatim": True,
                }
            ],
        },
    ]


def test_refusal_blocks_say_plainly_the_sources_dont_cover_it() -> None:
    answer = Answer(answer="The sources don't say.", refused=True, engine="llm")
    blocks = answer_blocks(answer, llm_model="gpt-4o-mini")
    assert texts(blocks) == [
        REFUSAL,
        ":robot_face: Answered by the LLM engine (gpt-4o-mini) · "
        "0 citations checked against the source text",
    ]


def test_engine_line_hides_the_fallback_reason() -> None:
    text = engine_text("extractive", "llm_unavailable: http://10.0.0.5:8000 refused", 2)
    assert "LLM was unavailable" in text and "10.0.0.5" not in text
    assert text.endswith("2 citations checked against the source text")


def test_a_long_answer_is_split_into_sections_and_messages() -> None:
    sentence = "Officials said <b>&</b> 1,000 square kilometres were taken. [1] "
    answer = Answer(
        answer=sentence * 300,  # ~19,000 characters before escaping
        refused=False,
        engine="extractive",
        citations=[cite(n) for n in range(1, 121)],
        citations_verified=120,
    )
    blocks = answer_blocks(answer)
    assert_safe(blocks)
    body = [t for t in texts(blocks) if not t.startswith(("*Sources*", "*[", ":mag:"))]
    assert len(body) > 6  # split, at sentence ends
    assert all(t.endswith("[1]") for t in body)
    assert " ".join(body) == escape(answer.answer).strip()  # nothing lost or doubled

    messages = split_messages(blocks)
    assert len(messages) > 1
    assert [b for m in messages for b in m] == blocks
    assert all(len(m) <= MAX_BLOCKS for m in messages)
    assert all(sum(map(len, texts(m))) <= 12_000 for m in messages)


def test_split_text_never_cuts_an_entity_or_exceeds_the_limit() -> None:
    for text in [escape("&" * 5000), escape("<>" * 2000 + " tail"), "x" * 7001]:
        parts = split_text(text, 3000)
        assert all(len(p) <= 3000 for p in parts)
        assert "".join(parts).replace(" ", "") == text.replace(" ", "")
        assert not any(BROKEN_ENTITY.search(p) for p in parts)


def test_split_messages_can_trim_with_a_note() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}} for _ in range(260)]
    messages = split_messages(blocks, max_messages=4)
    assert len(messages) == 4 and all(len(m) <= MAX_BLOCKS for m in messages)
    assert messages[-1][-1]["elements"][0]["text"] == TRIMMED
    assert split_messages([]) == [[]]


# ---- summaries and briefings -----------------------------------------------------------------


def test_summary_blocks_escape_points_differences_and_balance() -> None:
    summary = Summary(
        topic="<!here> Kursk",
        engine="llm",
        points=[Point(text="Wire reports: “<@U1> said so.”", citations=[1])],
        differences=[
            Difference(
                topic="Casualties <x>",
                sides=[
                    Point(text="A says 10 & more.", citations=[1]),
                    Point(text="B says 20.", citations=[2]),
                ],
            )
        ],
        citations=[cite(1), cite(2, source="<!channel>")],
        balance=[
            SourceShare(article_id="a1", title="T", source="Wire", citations=1, share=0.5),
            SourceShare(article_id="a2", title="<U>", source=None, citations=1, share=0.5),
        ],
        citations_verified=2,
    )
    blocks = summary_blocks(summary, llm_model="m")
    assert_safe(blocks)
    got = texts(blocks)
    assert got[0] == "*Summary: &lt;!here&gt; Kursk*\n• Wire reports: “&lt;@U1&gt; said so.” [1]"
    assert got[1] == (
        "*Where sources differ*\n• *Casualties &lt;x&gt;*\n"
        "      • A says 10 &amp; more. [1]\n      • B says 20. [2]"
    )
    assert got[2] == ":scales: Share of citations: Wire 50% · &lt;U&gt; 50%"
    assert got[3].startswith("*Sources*\n*[1]* *Title* — Wire") and "&lt;!channel&gt;" in got[3]
    assert got[4].startswith(":robot_face: Answered by the LLM engine (m)")


def test_briefing_blocks_have_every_part() -> None:
    briefing = Briefing(
        title="Briefing: <Kursk>",
        topic="Kursk",
        as_of="2024-08-15",
        engine="extractive",
        bottom_line=[Point(text="Bottom.", citations=[1])],
        developments=[Development(text="Dev.", citations=[1], date="2024-08-10")],
        perspectives=[Perspective(actor="Kyiv", points=[Point(text="View.", citations=[1])])],
        open_questions=[Point(text="What next?", citations=[1])],
        citations=[cite()],
        citations_verified=4,
    )
    blocks = briefing_blocks(briefing)
    assert_safe(blocks)
    assert texts(blocks)[:5] == [
        "*Briefing: &lt;Kursk&gt;*\n_as of 2024-08-15_",
        "*Bottom line*\n• Bottom. [1]",
        "*Key developments*\n• *2024-08-10* — Dev. [1]",
        "*Perspectives*\n• *Kyiv*\n      • View. [1]",
        "*Open questions / what to watch*\n• What next? [1]",
    ]


# ---- thread history --------------------------------------------------------------------------


def test_slack_markup_to_plain_text() -> None:
    text = "<@UBOT> how big is <https://x.org/a?b=1&amp;c=2|the area> &lt;km&gt; <@U2> <#C1|news>"
    assert slack_to_plain(text, "UBOT") == "how big is the area <km> @U2 #news"
    assert slack_to_plain("<!here> <https://x.org>", "UBOT") == "@here https://x.org"


def test_thread_history_roles_order_and_cutoff() -> None:
    messages = [
        {"user": "U1", "text": "<@UBOT> first question", "ts": "100.000001"},
        {"user": "UBOT", "bot_id": "B1", "text": WORKING, "ts": "100.000002"},
        {
            "bot_id": "B1",
            "subtype": "bot_message",
            "text": "first answer &amp; more [1]",
            "ts": "101.5",
        },
        {"bot_id": "BOTHER", "subtype": "bot_message", "text": "other bot", "ts": "102"},
        {"user": "U2", "subtype": "channel_join", "text": "joined", "ts": "103"},
        {"user": "U2", "text": "a colleague's aside", "ts": "104"},
        {"user": "U1", "text": "<@UBOT> the follow-up", "ts": "105"},
        {"user": "U1", "text": "later", "ts": "106"},
    ]
    history = thread_history(messages, bot_user_id="UBOT", bot_id="B1", before_ts="105")
    assert history == [
        Message("user", "first question"),
        Message("assistant", "first answer & more [1]"),
        Message("user", "a colleague's aside"),
    ]
    last = thread_history(messages, bot_user_id="UBOT", bot_id="B1", before_ts="105", limit=1)
    assert last == [Message("user", "a colleague's aside")]
    assert bot_in_thread(messages, "UBOT", "B1")
    assert not bot_in_thread(messages[5:6], "UBOT", "B1")


def test_timestamps_compare_exactly() -> None:
    assert ts_key("1700000000.000010") > ts_key("1700000000.000009")
    assert ts_key("1700000000.1") < ts_key("1700000000.2")


# ---- manifest ----------------------------------------------------------------------------------


def test_manifest_declares_what_the_bot_uses() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/ask", "/summarize", "/brief", "/stories"]
    assert {c["url"] for c in commands} == {"https://YOUR-HOST/slack/commands"}
    events = manifest["settings"]["event_subscriptions"]
    assert events["request_url"] == "https://YOUR-HOST/slack/events"
    assert {"app_mention", "message.im", "message.channels"} <= set(events["bot_events"])
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {"app_mentions:read", "chat:write", "commands", "reactions:write", "im:history"}
    assert needed | {"channels:history", "groups:history"} <= scopes
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


@pytest.mark.parametrize("limit", [10, 100, 3000])
def test_split_text_prefers_sentence_ends(limit: int) -> None:
    text = " ".join(f"Sentence number {i} ends here." for i in range(400))
    parts = split_text(text, limit)
    assert all(len(p) <= limit for p in parts)
    if limit >= 100:
        assert all(p.endswith("here.") for p in parts)
    assert " ".join(parts) == text
