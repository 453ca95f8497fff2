"""A story's coverage and framing table, measured from the text, and the story service on
constructed stories with known differences: the summary cites every outlet (a syndicated
copy once, its outlet listed as also publishing it) and shows where the figures differ;
the timeline quotes each report's lead sentence as a verified span."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
import respx

from service.context import Newsdesk
from service.coverage import coverage_markdown, coverage_table
from service.neutrality import loaded_words, own_voice, voice_spans
from service.requests import StoryBriefingBody, StorySummaryBody
from service.settings import Settings
from service.stories import StoryService, UnknownStory
from tests.conftest import HashingEmbedder
from tests.llm_mock import BASE_URL, CHAT_URL, completion, sent_messages
from vectorstore.ingest import Article, make_article
from vectorstore.store import StoredArticle

# ---- the measures ------------------------------------------------------------------------

REPORT = (
    "Troops entered Marinka at dawn. “We have completed the liberation of the town,” "
    "the defence ministry said. The occupation of the town began on Monday. Ukraine's "
    "general staff called the assault an act of aggression."
)


def voices(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"own": [], "quoted": [], "attributed": []}
    for start, end, voice in voice_spans(text):
        if text[start:end].strip():
            out[voice].append(text[start:end].strip())
    return out


def test_each_character_is_quoted_attributed_or_own_voice() -> None:
    found = voices(REPORT)
    assert found["quoted"] == ["“We have completed the liberation of the town,”"]
    assert found["attributed"] == [
        "the defence ministry said.",
        "Ukraine's general staff called the assault an act of aggression.",
    ]
    assert found["own"] == [
        "Troops entered Marinka at dawn.",
        "The occupation of the town began on Monday.",
    ]
    # The spans cover the text exactly once.
    spans = voice_spans(REPORT)
    assert spans[0][0] == 0 and spans[-1][1] == len(REPORT)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_own_voice_spans_are_what_the_neutrality_check_reads() -> None:
    own = " ".join(REPORT[s:e] for s, e, v in voice_spans(REPORT) if v == "own")
    assert own.split() == own_voice(REPORT).split()


def test_a_headline_is_its_own_sentence() -> None:
    text = "Liberation of Marinka\n\nTroops entered the town, officials said."
    found = voices(text)
    # Without the line break ending it, "said" would make the headline attributed.
    assert found["own"] == ["Liberation of Marinka"]
    assert found["attributed"] == ["Troops entered the town, officials said."]


def test_loaded_words_are_whole_words_from_their_start() -> None:
    text = (
        "The occupied town, preoccupied with the regiment and its regimen of occupational "
        "drills, heard the Terrorists' threats."
    )
    assert loaded_words(text) == ["occupied", "terrorists"]


def stored(
    aid: str,
    text: str,
    source: str | None,
    published_at: str | None,
    group: str | None = None,
) -> StoredArticle:
    return StoredArticle(
        id=aid,
        text=text,
        title=text.split("\n", 1)[0],
        content_hash=aid,
        source=source,
        url=None,
        author=None,
        published_at=published_at,
        origin=None,
        chunks=1,
        syndication_group=group,
    )


KYIV_VIEW = (
    "Marinka falls\n\nThe occupation of Marinka is complete. “We will return,” a Ukrainian "
    "officer said."
)
MOSCOW_VIEW = (
    "Marinka taken\n\nTroops took Marinka on Monday. “The liberation of Marinka is a heroic "
    "feat,” the ministry said. Officials described the occupation claims as lies."
)


def test_the_table_measures_each_outlet_in_its_own_voice_and_in_quotes() -> None:
    articles = [
        stored("moscow", MOSCOW_VIEW, "Moscow Daily", "2024-03-09T08:00:00+00:00"),
        stored("kyiv", KYIV_VIEW, "Kyiv Post", "2024-03-09T06:00:00+00:00"),
        stored("wire", KYIV_VIEW, "Wire Copy", "2024-03-09T09:00:00+00:00", group="kyiv"),
        stored("blog", "Marinka\n\nA quiet day in the town, residents said.", None, None),
    ]
    table = coverage_table(articles)
    rows = {r.outlet: r for r in table.outlets}
    # Who covered it first comes first; undated outlets last.
    assert [r.outlet for r in table.outlets] == ["Kyiv Post", "Moscow Daily", "Wire Copy", None]
    assert rows["Kyiv Post"].first_covered == "2024-03-09T06:00:00+00:00"
    assert rows[None].first_covered is None
    # In its own voice the Kyiv outlet says "occupation"; the Moscow outlet's "liberation"
    # and "heroic" are the ministry's words, and its "occupation" is attributed.
    assert rows["Kyiv Post"].loaded_terms_own_voice == {"occupation": 1}
    assert rows["Moscow Daily"].loaded_terms_own_voice == {}
    assert rows["Moscow Daily"].loaded_terms_quoted == {"heroic": 1, "liberation": 1}
    assert rows["Moscow Daily"].loaded_terms_attributed == {"occupation": 1}
    # The copy ran the Kyiv outlet's text: the same measures, and counted as a copy.
    assert rows["Wire Copy"].copies == 1 and rows["Kyiv Post"].copies == 0
    assert rows["Wire Copy"].loaded_terms_own_voice == {"occupation": 1}
    for row in table.outlets:
        total = row.quoted_share + row.attributed_share + row.own_voice_share
        assert total == pytest.approx(1.0, abs=1e-3)
    # The shares are character counts: the Kyiv article's one quote, spaces not counted.
    quote = "“We will return,”"
    nonspace = sum(not c.isspace() for c in KYIV_VIEW)
    assert rows["Kyiv Post"].characters == nonspace
    expected = sum(not c.isspace() for c in quote) / nonspace
    assert rows["Kyiv Post"].quoted_share == pytest.approx(expected, abs=1e-4)


def test_the_markdown_table_has_a_row_per_outlet_with_untrusted_text_escaped() -> None:
    articles = [
        stored("a", KYIV_VIEW, "Kyiv | Post <b>", "2024-03-09"),
        stored("b", MOSCOW_VIEW, "Moscow Daily", None),
    ]
    md = coverage_markdown(coverage_table(articles)).splitlines()
    assert len(md) == 4
    assert md[2].startswith("| Kyiv \\| Post &lt;b&gt; | 1 | 2024-03-09 |")
    assert "| occupation |" in md[2]
    assert md[3].startswith("| Moscow Daily | 1 | undated |")
    assert md[3].endswith("| – | heroic, liberation, occupation |")


# ---- the story service on constructed stories ---------------------------------------------

GAZETTE = (
    "At least 12 people were killed when shells hit the central market in Dovra on "
    "Saturday, regional officials said."
)
HERALD = (
    "The shelling of the central market in Dovra on Saturday killed 31 people, according "
    "to doctors at the city hospital in Dovra."
)


def market_story(herald_figure: str = HERALD) -> list[Article]:
    """Three outlets on one shelling, a fourth running the Herald's text, and an unrelated
    article the next day."""
    herald_text = (
        f"Shelling kills dozens in Dovra\n\n{herald_figure} Schools near the market stayed closed."
    )
    return [
        make_article(
            f"Dovra market shelled\n\n{GAZETTE} Residents of Dovra described a night of "
            "explosions near the market.",
            article_id="gazette",
            source="Gazette",
            published_at="2024-03-09T10:00:00+00:00",
        ),
        make_article(
            herald_text,
            article_id="herald",
            source="Herald",
            published_at="2024-03-09T12:00:00+00:00",
        ),
        make_article(
            herald_text,
            article_id="courier",
            source="Courier",
            published_at="2024-03-09T13:00:00+00:00",
        ),
        make_article(
            "Dovra market attack\n\nShells struck the central market in Dovra on Saturday, "
            "wounding dozens, the Dovra regional governor said. Emergency crews searched "
            "the market in Dovra for survivors.",
            article_id="tribune",
            source="Tribune",
            published_at="2024-03-09T15:00:00+00:00",
        ),
        make_article(
            "Chess champion retains title\n\nThe world chess champion retained her title in "
            "Oslo on Sunday after a tense final game against the challenger from Peru.",
            article_id="chess",
            source="Gazette",
            published_at="2024-03-10T09:00:00+00:00",
        ),
    ]


MARKET = ["gazette", "herald", "courier", "tribune"]
# These constructed reports are a few sentences long, under the length from which an article
# is compared for stories at all (NEWSDESK_STORY_MIN_CHARS, tested in
# tests/test_story_clustering.py); here what matters is what a story is read as.
SHORT_REPORTS: dict[str, Any] = {"story_min_chars": 0}


@pytest.fixture(params=["hashing", pytest.param("real", marks=pytest.mark.model)])
def desk(request: pytest.FixtureRequest, make_newsdesk: Callable[..., Newsdesk]) -> Newsdesk:
    return make_newsdesk(
        request.getfixturevalue("real_embedder") if request.param == "real" else None,
        **SHORT_REPORTS,
    )


def market_story_id(nd: Newsdesk, herald_figure: str = HERALD) -> str:
    articles = market_story(herald_figure)
    # The copy comes after the original is stored, as syndication finds stored copies.
    nd.indexer.index([a for a in articles if a.id != "courier"])
    nd.indexer.index([a for a in articles if a.id == "courier"])
    of = nd.store.story_ids_of([*MARKET, "chess"])
    # What the rest of the test stands on: clustering put the four reports in one story.
    assert len({of[a] for a in MARKET}) == 1 and of["chess"] != of["gazette"], of
    assert nd.store.get_article("courier").syndication_group == "herald"  # type: ignore[union-attr]
    return of["gazette"]


def verified(nd: Newsdesk, citations: list) -> bool:
    texts = nd.store.get_articles([c.article_id for c in citations])
    return all(texts[c.article_id].text[c.start : c.end] == c.quote for c in citations)


def test_story_summary_cites_every_outlet_and_shows_the_different_figures(desk: Newsdesk) -> None:
    story_id = market_story_id(desk)
    summary = StoryService(desk).summary(story_id, StorySummaryBody())
    assert summary.story_id == story_id and not summary.refused
    cited = {c.article_id for c in summary.citations}
    # The copy is read once: the Herald's article stands for the Courier's.
    assert cited == {"gazette", "herald", "tribune"}
    assert summary.outlets_not_cited == []
    by_article = {b.article_id: b for b in summary.balance}
    assert by_article["herald"].also_published_by == ["Courier"]
    assert verified(desk, summary.citations)
    # Where sources differ: the Gazette's 12 dead against the Herald's 31, each verbatim.
    figures = [d for d in summary.differences if "people" in d.topic]
    assert len(figures) == 1, summary.differences
    by_n = {c.n: c for c in summary.citations}
    sides = sorted(by_n[n].quote for side in figures[0].sides for n in side.citations)
    assert sides == sorted([GAZETTE, HERALD])


def test_a_summary_too_short_for_every_outlet_says_which_it_left_out(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    newsdesk = make_newsdesk(**SHORT_REPORTS)
    # The same figure everywhere, so no difference cites what the points leave out.
    story_id = market_story_id(newsdesk, HERALD.replace("31", "12"))
    summary = StoryService(newsdesk).summary(story_id, StorySummaryBody(max_words=30))
    cited = {c.article_id for c in summary.citations}
    assert 0 < len(cited) < 3
    outlets = {"gazette": {"Gazette"}, "herald": {"Herald", "Courier"}, "tribune": {"Tribune"}}
    left_out = set().union(*(names for aid, names in outlets.items() if aid not in cited))
    assert summary.outlets_not_cited == sorted(left_out)


def test_story_reports_that_agree_on_the_figure_do_not_differ(desk: Newsdesk) -> None:
    story_id = market_story_id(desk, HERALD.replace("31", "12"))
    summary = StoryService(desk).summary(story_id, StorySummaryBody())
    assert not [d for d in summary.differences if "people" in d.topic]
    assert summary.outlets_not_cited == []


def test_story_briefing_reads_only_the_story(desk: Newsdesk) -> None:
    story_id = market_story_id(desk)
    briefing = StoryService(desk).briefing(story_id, StoryBriefingBody())
    assert {s.article_id for s in briefing.sources} == {"gazette", "herald", "tribune"}
    assert "chess" not in {c.article_id for c in briefing.citations}
    assert briefing.outlets_not_cited == []
    assert [d for d in briefing.differences if "people" in d.topic]
    # As of before the Tribune's report: it is not read, and its outlet is not cited.
    earlier = StoryService(desk).briefing(
        story_id, StoryBriefingBody(as_of="2024-03-09T12:30:00+00:00")
    )
    assert {s.article_id for s in earlier.sources} == {"gazette", "herald"}


def test_story_detail_has_outlets_timeline_and_coverage(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    newsdesk = make_newsdesk(**SHORT_REPORTS)
    story_id = market_story_id(newsdesk)
    detail = StoryService(newsdesk).detail(story_id)
    assert detail.outlets == ["Courier", "Gazette", "Herald", "Tribune"]
    assert detail.outlets_count == 4 and detail.articles == 4
    assert (detail.first_seen, detail.last_seen) == (
        "2024-03-09T10:00:00+00:00",
        "2024-03-09T15:00:00+00:00",
    )
    courier = next(g for g in detail.by_outlet if g.outlet == "Courier").articles[0]
    assert courier.copy_of == "herald"
    # One entry per report, in the order they appeared, the copy under its original.
    assert [(t.article_id, t.also_published_by) for t in detail.timeline] == [
        ("gazette", []),
        ("herald", ["Courier"]),
        ("tribune", []),
    ]
    by_n = {c.n: c for c in detail.citations}
    leads = [by_n[t.citations[0]].quote for t in detail.timeline]
    assert leads[:2] == [GAZETTE, HERALD]
    assert verified(newsdesk, detail.citations)
    assert [r.outlet for r in detail.coverage.outlets] == [
        "Gazette",
        "Herald",
        "Courier",
        "Tribune",
    ]


def test_an_unknown_story_is_a_clear_error(newsdesk: Newsdesk) -> None:
    with pytest.raises(UnknownStory, match="unknown story id: story-nope"):
        StoryService(newsdesk).detail("story-nope")


# ---- the LLM path: the same engine and checks, and an outlet left out is said --------------


def test_llm_story_summary_says_which_outlets_it_left_out(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai._base_client.time, "sleep", lambda _s: None)
    s = settings.model_copy(
        update={"llm_base_url": BASE_URL, "llm_max_retries": 0, **SHORT_REPORTS}
    )
    nd = Newsdesk(s, embedder=HashingEmbedder(), llm_http_client=httpx.Client())  # type: ignore[arg-type]
    story_id = market_story_id(nd)
    with respx.mock(assert_all_called=False) as router:
        route = router.post(CHAT_URL).mock(
            return_value=completion(
                {
                    "points": [
                        {
                            "text": "At least 12 people were killed at the market, officials said.",
                            "quotes": [{"passage": 1, "quote": GAZETTE}],
                        }
                    ],
                    "differences": [],
                }
            )
        )
        summary = StoryService(nd).summary(story_id, StorySummaryBody())
    assert summary.engine == "llm" and route.called
    # The model read the story's articles only, a copy once: three passages' articles.
    prompt = json.dumps(sent_messages(route))
    assert "Chess champion" not in prompt and "Courier" not in prompt
    assert all(name in prompt for name in ("Gazette", "Herald", "Tribune"))
    assert {c.article_id for c in summary.citations} == {"gazette"}
    assert summary.outlets_not_cited == ["Courier", "Herald", "Tribune"]
