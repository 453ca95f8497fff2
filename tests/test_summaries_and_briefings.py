"""Neutral multi-source summaries and briefings: coverage, balance, attribution, dates."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai._base_client
import pytest
import respx

from service.brief import BriefingService
from service.context import Newsdesk
from service.errors import UnknownArticle
from service.models import Briefing, Citation, Difference, Point, Summary
from service.neutrality import attributed_quote, loaded_terms_in_own_voice
from service.render import briefing_markdown, md_escape, summary_markdown
from service.requests import BriefingBody, SummaryBody
from service.summarize import SummaryService
from service.verify import DIFFERENCE_TOPIC
from tests.conftest import SEEDS, HashingEmbedder
from tests.llm_mock import BASE_URL, CHAT_URL, completion
from vectorstore.ingest import Article, make_article, read_paths


def verified(nd: Newsdesk, citations: list) -> bool:
    return all(
        nd.store.get_article(c.article_id).text[c.start : c.end] == c.quote for c in citations
    )


# ---- reading the Markdown back -----------------------------------------------------------
# Content is escaped onto a single line, so blank lines only ever separate sections.

NO_DIFFERENCES = "- No disagreement between the sources was detected."


def blocks(md: str) -> list[list[str]]:
    """The Markdown's blank-line-separated blocks, each a list of lines."""
    return [block.split("\n") for block in md.split("\n\n")]


def section(md: str, heading: str) -> list[str]:
    """The lines under ``heading`` up to the next blank line; the heading appears once."""
    found = [b[1:] for b in blocks(md) if b[0] == heading]
    assert len(found) == 1, (heading, md)
    return found[0]


def markers(numbers: list[int]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def bullet(p: Point, indent: str = "") -> str:
    """A point as a list item: its text shown as text, then its citation markers."""
    return f"{indent}- {md_escape(p.text)} {markers(p.citations)}"


def difference_lines(differences: list[Difference]) -> list[str]:
    lines: list[str] = []
    for d in differences:
        lines.append(f"- **{md_escape(d.topic)}**")
        lines += [bullet(side, "  ") for side in d.sides]
    return lines


def assert_sources_block(md: str, citations: list[Citation]) -> None:
    """Every citation listed once, in number order, with its article and span."""
    lines = section(md, "Sources:")
    assert len(lines) == 2 * len(citations)
    for c, line in zip(citations, lines[::2], strict=True):
        assert line.startswith(f"[{c.n}] ") and line.endswith(
            f" — article {c.article_id}, chars {c.start}–{c.end}"
        ), (c, line)


def cited_everywhere(result: Summary | Briefing) -> set[int]:
    """Every citation number a point, development, perspective or side refers to."""
    points: list[Point] = [*(side for d in result.differences for side in d.sides)]
    if isinstance(result, Summary):
        points += result.points
    else:
        points += [*result.bottom_line, *result.developments, *result.open_questions]
        points += [x for p in result.perspectives for x in p.points]
    return {n for p in points for n in p.citations}


def test_neutrality_check_finds_loaded_words_in_own_voice_only() -> None:
    assert loaded_terms_in_own_voice("Russian troops liberated the town.") == ["liberat"]
    assert loaded_terms_in_own_voice("Putin said troops had 'liberated' the town.") == []
    assert loaded_terms_in_own_voice("Kyiv calls it an “occupation”. Fighting went on.") == []
    assert loaded_terms_in_own_voice("The occupation continued. Kyiv said so.") == ["occupation"]


@pytest.mark.model
def test_extractive_summary_covers_every_seed_with_balanced_verified_citations(
    seeded: Newsdesk,
) -> None:
    s = SummaryService(seeded).summarize(SummaryBody())
    assert s.engine == "extractive" and s.points
    assert all(p.citations for p in s.points)
    assert {c.article_id for c in s.citations} == {a for a, _ in seeded.store.iter_article_meta()}
    assert verified(seeded, s.citations)
    assert abs(sum(b.share for b in s.balance) - 1) < 1e-3
    assert max(b.share for b in s.balance) <= 0.5
    for p in s.points + [side for d in s.differences for side in d.sides]:
        assert loaded_terms_in_own_voice(p.text) == [], p.text
    assert s.differences, "the seeds describe the same territory from opposite sides"
    for d in s.differences:
        assert len({s.citations[x.citations[0] - 1].article_id for x in d.sides}) >= 2
    assert cited_everywhere(s) == {c.n for c in s.citations}
    # The Markdown holds each field's own content, in order, with its citation markers.
    md = summary_markdown(s)
    assert blocks(md)[1] == [bullet(p) for p in s.points]
    assert section(md, "## Where sources differ") == difference_lines(s.differences)
    assert_sources_block(md, s.citations)
    # With nothing to report, the sections say so instead of showing nothing.
    empty = summary_markdown(s.model_copy(update={"points": [], "differences": []}))
    assert blocks(empty)[1] == ["The sources don't say enough to summarise."]
    assert section(empty, "## Where sources differ") == [NO_DIFFERENCES]


@pytest.mark.model
def test_briefing_has_every_section_and_labels_undated_articles(seeded: Newsdesk) -> None:
    b = BriefingService(seeded).brief(BriefingBody(topic="the fighting in the Kursk region"))
    assert b.bottom_line and b.developments and b.perspectives and b.sources
    assert b.differences and b.open_questions
    assert all(d.date is None for d in b.developments)  # the seeds carry no dates
    assert verified(seeded, b.citations)
    assert cited_everywhere(b) == {c.n for c in b.citations}
    # Each section holds its own field's points, in order, with their citation markers.
    md = briefing_markdown(b)
    assert section(md, "## Bottom line") == [bullet(p) for p in b.bottom_line]
    assert section(md, "## Key developments") == [
        f"- **undated** — {md_escape(d.text)} {markers(d.citations)}" for d in b.developments
    ]
    assert section(md, "## Perspectives") == [
        line
        for p in b.perspectives
        for line in (f"- **{md_escape(p.actor)}**", *(bullet(x, "  ") for x in p.points))
    ]
    assert section(md, "## Where sources differ") == difference_lines(b.differences)
    assert section(md, "## Open questions / what to watch") == [bullet(p) for p in b.open_questions]
    assert section(md, "## Sources read") == [
        f"- {md_escape(s.title)} (source unknown, undated) — article {s.article_id}"
        for s in b.sources
    ]
    assert_sources_block(md, b.citations)
    # Empty sections keep their heading; only "where sources differ" says it found nothing.
    empty = briefing_markdown(
        b.model_copy(update={"perspectives": [], "differences": [], "open_questions": []})
    )
    assert section(empty, "## Perspectives") == []
    assert section(empty, "## Where sources differ") == [NO_DIFFERENCES]
    assert section(empty, "## Open questions / what to watch") == []
    everything = [
        *b.bottom_line,
        *b.developments,
        *b.open_questions,
        *(p for x in b.perspectives for p in x.points),
    ]
    assert all(loaded_terms_in_own_voice(p.text) == [] for p in everything)


def test_briefing_orders_developments_by_date_and_respects_as_of(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index(
        [
            make_article(
                "Flooding: the river rose two metres and officials evacuated 300 homes "
                "in Riverton on Monday.",
                article_id="b",
                published_at="2024-05-02",
                source="Gazette",
            ),
            make_article(
                "Flooding: heavy rain began and the river rose one metre in Riverton, "
                "officials said.",
                article_id="a",
                published_at="2024-05-01",
                source="Herald",
            ),
            make_article(
                "Flooding: the river receded and 200 residents returned to Riverton "
                "homes, officials said.",
                article_id="c",
                published_at="2024-05-09",
                source="Tribune",
            ),
        ]
    )
    b = BriefingService(newsdesk).brief(BriefingBody(topic="Riverton flooding"))
    dates = [d.date for d in b.developments]
    assert dates == sorted(dates) and dates[0] == "2024-05-01"
    early = BriefingService(newsdesk).brief(
        BriefingBody(topic="Riverton flooding", as_of="2024-05-03")
    )
    assert {s.article_id for s in early.sources} == {"a", "b"}


# ---- where sources differ ------------------------------------------------------------

GAZETTE_FIGURE = (
    "Officials said 300 homes were evacuated in Riverton on Monday after the river burst its banks."
)
HERALD_FIGURE = (
    "Only 120 homes were evacuated in Riverton on Monday, the mayor said, as water reached "
    "the old bridge."
)


def flood_articles(herald_figure: str) -> list[Article]:
    """Three outlets on one flood; the Gazette and the Herald each give a count of homes."""
    return [
        make_article(
            f"Riverton flood forces evacuations\n\n{GAZETTE_FIGURE} Rescue crews worked "
            "through the night to reach stranded families.",
            article_id="gazette",
            source="Gazette",
        ),
        make_article(
            f"Mayor defends flood response\n\n{herald_figure} Schools across the district "
            "stayed closed until Wednesday.",
            article_id="herald",
            source="Herald",
        ),
        make_article(
            "Riverton waters recede\n\nThe river receded on Friday and residents began "
            "returning to Riverton, the council said. Volunteers cleared mud from the streets.",
            article_id="tribune",
            source="Tribune",
        ),
    ]


@pytest.fixture(params=["hashing", pytest.param("real", marks=pytest.mark.model)])
def desk(request: pytest.FixtureRequest, make_newsdesk: Callable[..., Newsdesk]) -> Newsdesk:
    """An empty store on the fast hashing embedder, and on the real model."""
    return make_newsdesk(
        request.getfixturevalue("real_embedder") if request.param == "real" else None
    )


def summary_and_briefing(nd: Newsdesk) -> list[tuple[Summary | Briefing, str]]:
    s = SummaryService(nd).summarize(SummaryBody(topic="Riverton flooding"))
    b = BriefingService(nd).brief(BriefingBody(topic="Riverton flooding"))
    assert s.engine == b.engine == "extractive"
    outlets = {"gazette", "herald", "tribune"}
    assert {c.article_id for c in s.citations} == {x.article_id for x in b.sources} == outlets
    return [(s, summary_markdown(s)), (b, briefing_markdown(b))]


def test_extractive_engine_shows_where_outlets_give_different_figures(desk: Newsdesk) -> None:
    desk.indexer.index(flood_articles(HERALD_FIGURE))
    for result, md in summary_and_briefing(desk):
        assert len(result.differences) == 1, result.differences
        difference = result.differences[0]
        assert "home" in difference.topic
        by_n = {c.n: c for c in result.citations}
        sides = [by_n[n] for side in difference.sides for n in side.citations]
        # One side per outlet, each the outlet's own sentence with its figure, verbatim.
        assert sorted((c.article_id, c.quote) for c in sides) == [
            ("gazette", GAZETTE_FIGURE),
            ("herald", HERALD_FIGURE),
        ]
        for side, c in zip(difference.sides, sides, strict=True):
            assert side.text == attributed_quote(c.title, c.source, c.quote)
        assert verified(desk, result.citations)
        assert section(md, "## Where sources differ") == difference_lines(result.differences)


def test_outlets_giving_the_same_figure_do_not_differ(desk: Newsdesk) -> None:
    desk.indexer.index(flood_articles(HERALD_FIGURE.replace("120", "300")))
    for result, md in summary_and_briefing(desk):
        assert result.differences == []
        assert section(md, "## Where sources differ") == [NO_DIFFERENCES]


def test_summary_of_unknown_articles_is_a_clear_error(newsdesk: Newsdesk) -> None:
    with pytest.raises(UnknownArticle, match="unknown article id"):
        SummaryService(newsdesk).summarize(SummaryBody(article_ids=["nope"]))


# ---- LLM path ------------------------------------------------------------------------


@pytest.fixture
def llm_nd(settings, monkeypatch) -> Iterator[Newsdesk]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(openai._base_client.time, "sleep", lambda _s: None)
    s = settings.model_copy(update={"llm_base_url": BASE_URL, "llm_max_retries": 0})
    nd = Newsdesk(s, embedder=HashingEmbedder(), llm_http_client=httpx.Client())
    nd.indexer.index(read_paths([SEEDS]))
    with respx.mock(assert_all_called=False) as router:
        nd.router = router  # type: ignore[attr-defined]
        yield nd


LIBERATION = (
    "These victories, he claimed, are part of a broader autumn offensive that has already "
    "resulted in the liberation of 87 inhabited localities, a figure that underscores the "
    "scale of military activity and its impact on the ground."
)
SEIZED = (
    "The ongoing conflict between Ukraine and Russia has reached a significant turning point, "
    "with Ukraine’s military announcing that it has seized control of 1,000 square kilometers "
    "of previously Russian-held territory."
)


def test_llm_summary_keeps_verified_points_and_neutralises_loaded_voice(llm_nd) -> None:  # type: ignore[no-untyped-def]
    llm_nd.router.post(CHAT_URL).mock(
        return_value=completion(
            {
                "points": [
                    # loaded word in the model's own voice: replaced by the attributed quote
                    {
                        "text": "The offensive liberated 87 inhabited localities.",
                        "quotes": [{"passage": 1, "quote": LIBERATION}],
                    },
                    {
                        "text": "Ukraine says it seized 1,000 square kilometers.",
                        "quotes": [{"passage": 2, "quote": SEIZED}],
                    },
                    {
                        "text": "Invented.",
                        "quotes": [{"passage": 1, "quote": "No such words here at all."}],
                    },
                ],
                "differences": [
                    {
                        "topic": "territory",
                        "sides": [
                            {
                                "text": "The offensive took 87 inhabited localities, he claimed.",
                                "quotes": [{"passage": 1, "quote": LIBERATION}],
                            },
                            {
                                "text": "Ukraine seized 1,000 square kilometers of territory.",
                                "quotes": [{"passage": 2, "quote": SEIZED}],
                            },
                        ],
                    },
                    {
                        "topic": "one-sided",
                        "sides": [
                            {
                                "text": "Same article twice.",
                                "quotes": [{"passage": 2, "quote": SEIZED}],
                            },
                        ],
                    },
                ],
            }
        )
    )
    s = SummaryService(llm_nd).summarize(SummaryBody(topic="territory"))
    assert s.engine == "llm"
    assert len(s.points) == 2 and s.claims_dropped >= 2 and s.citations_rejected == 1
    assert "reports: “" in s.points[0].text and loaded_terms_in_own_voice(s.points[0].text) == []
    assert [d.topic for d in s.differences] == ["territory"]
    assert verified(llm_nd, s.citations)


def test_llm_briefing_never_keeps_an_invented_date(llm_nd) -> None:  # type: ignore[no-untyped-def]
    llm_nd.router.post(CHAT_URL).mock(
        return_value=completion(
            {
                "title": "Kursk",
                "bottom_line": [
                    {"text": "Ukraine reports gains.", "quotes": [{"passage": 1, "quote": SEIZED}]}
                ],
                "developments": [
                    {
                        "date": "2024-08-06",
                        "text": "Ukraine seized territory.",
                        "quotes": [{"passage": 1, "quote": SEIZED}],
                    }
                ],
            }
        )
    )
    b = BriefingService(llm_nd).brief(BriefingBody(topic="Ukraine seized territory"))
    assert b.engine == "llm" and b.developments
    assert b.developments[0].date is None  # the seeds are undated: the model's date is dropped


def test_llm_failure_falls_back_for_summaries(llm_nd) -> None:  # type: ignore[no-untyped-def]
    llm_nd.router.post(CHAT_URL).mock(return_value=httpx.Response(503))
    s = SummaryService(llm_nd).summarize(SummaryBody())
    assert s.engine == "extractive" and s.fallback_reason and s.points


# ---- model-written labels and refusals (issue 13) ------------------------------------------
# A title, an actor and a difference's topic are the model's words as much as a claim is:
# each is shown only if the quotes it stands over bear it out.

GERASIMOV = (
    "This stance was further reinforced by General Gerasimov, who revealed the capture of "
    "over 400 Ukrainian troops."
)


def claim(text: str, quote: str) -> dict[str, object]:
    return {"text": text, "quotes": [{"passage": 1, "quote": quote}]}


TERRITORY_DIFFERENCE = {
    "topic": "Chinese mediation of the talks",
    "sides": [
        claim("The offensive took 87 inhabited localities, he claimed.", LIBERATION),
        claim("Ukraine seized 1,000 square kilometers of territory.", SEIZED),
    ],
}


def test_llm_briefing_labels_its_quotes_do_not_bear_out_are_not_shown(llm_nd) -> None:  # type: ignore[no-untyped-def]
    seized = claim("Ukraine says it seized 1,000 square kilometers.", SEIZED)
    llm_nd.router.post(CHAT_URL).mock(
        return_value=completion(
            {
                "title": "Belarus enters the war",
                "bottom_line": [seized],
                "developments": [seized],
                "perspectives": [
                    {
                        "actor": "NATO",
                        "points": [claim("Over 400 Ukrainian troops were captured.", GERASIMOV)],
                    },
                    {"actor": "Ukraine’s military", "points": [seized]},
                ],
                "differences": [TERRITORY_DIFFERENCE],
            }
        )
    )
    b = BriefingService(llm_nd).brief(BriefingBody(topic="the fighting in Kursk"))
    assert b.engine == "llm" and not b.refused
    # the title is replaced, the unsupported actor's perspective dropped with its point,
    # the topic replaced by a neutral one; the supported actor and the sides stay
    assert b.title == "Briefing: the fighting in Kursk"
    assert [p.actor for p in b.perspectives] == ["Ukraine’s military"]
    assert [d.topic for d in b.differences] == [DIFFERENCE_TOPIC]
    assert len(b.differences[0].sides) == 2
    assert b.claims_dropped == 1
    dumped = b.model_dump_json()
    assert "Belarus" not in dumped and "NATO" not in dumped and "Chinese" not in dumped


def test_llm_briefing_with_supported_labels_keeps_them(llm_nd) -> None:  # type: ignore[no-untyped-def]
    # The counterpart of the test above: the labels are dropped for what they say, not always.
    seized = claim("Ukraine says it seized 1,000 square kilometers.", SEIZED)
    difference = {**TERRITORY_DIFFERENCE, "topic": "Territory taken"}
    llm_nd.router.post(CHAT_URL).mock(
        return_value=completion(
            {
                "title": "Ukraine seizes territory",
                "bottom_line": [seized],
                "developments": [],
                "perspectives": [{"actor": "Ukraine’s military", "points": [seized]}],
                "differences": [difference],
            }
        )
    )
    b = BriefingService(llm_nd).brief(BriefingBody(topic="the fighting in Kursk"))
    assert b.engine == "llm" and not b.refused
    assert b.title == "Ukraine seizes territory"
    assert [p.actor for p in b.perspectives] == ["Ukraine’s military"]
    assert [d.topic for d in b.differences] == ["Territory taken"]


# What a refused result must not show, whatever else the model wrote and however well it
# checked: these strings are the model's.
REFUSED_MODEL_TEXT = (
    "Ukraine seizes 1,000 square kilometers",
    "Ukraine’s military command",
    "Chinese mediation of the talks",
    "Ukraine seized 1,000 square kilometers of territory.",
    "The offensive took 87 inhabited localities, he claimed.",
    "Will the offensive continue past 87 localities?",
)
INVENTED = claim("Kursk fell overnight.", "No such words are in any article at all.")


def test_llm_refused_briefing_shows_no_model_written_text(llm_nd) -> None:  # type: ignore[no-untyped-def]
    llm_nd.router.post(CHAT_URL).mock(
        return_value=completion(
            {
                "title": "Ukraine seizes 1,000 square kilometers",
                "bottom_line": [INVENTED],
                "developments": [],
                # all of these would verify on their own
                "perspectives": [
                    {
                        "actor": "Ukraine’s military command",
                        "points": [claim("Ukraine seized 1,000 square kilometers.", SEIZED)],
                    }
                ],
                "differences": [TERRITORY_DIFFERENCE],
                "open_questions": [
                    claim("Will the offensive continue past 87 localities?", LIBERATION)
                ],
            }
        )
    )
    b = BriefingService(llm_nd).brief(BriefingBody(topic="the fighting in Kursk"))
    assert b.engine == "llm" and b.refused
    assert b.title == "Briefing: the fighting in Kursk"
    assert (b.bottom_line, b.developments, b.perspectives) == ([], [], [])
    assert (b.differences, b.open_questions, b.citations, b.balance) == ([], [], [], [])
    dumped = b.model_dump_json()
    assert not [t for t in REFUSED_MODEL_TEXT if t in dumped]
    assert b.citations_rejected == 1  # the counts still say what was checked


def test_llm_refused_summary_shows_no_model_written_text(llm_nd) -> None:  # type: ignore[no-untyped-def]
    llm_nd.router.post(CHAT_URL).mock(
        return_value=completion({"points": [INVENTED], "differences": [TERRITORY_DIFFERENCE]})
    )
    s = SummaryService(llm_nd).summarize(SummaryBody(topic="territory"))
    assert s.engine == "llm" and s.refused
    assert (s.points, s.differences, s.citations, s.balance) == ([], [], [], [])
    dumped = s.model_dump_json()
    assert not [t for t in REFUSED_MODEL_TEXT if t in dumped]
    assert s.citations_rejected == 1


def test_llm_dropped_perspective_and_difference_leave_no_citation_behind(llm_nd) -> None:  # type: ignore[no-untyped-def]
    seized = claim("Ukraine says it seized 1,000 square kilometers.", SEIZED)
    captured = claim("Over 400 Ukrainian troops were captured.", GERASIMOV)
    llm_nd.router.post(CHAT_URL).mock(
        return_value=completion(
            {
                "bottom_line": [seized],
                "developments": [],
                # dropped: an actor its quote doesn't name; cited nowhere else
                "perspectives": [{"actor": "NATO", "points": [captured]}],
                # dropped: one side only
                "differences": [{"topic": "Prisoners", "sides": [captured]}],
                # cited after the drops: numbered as if they never happened
                "open_questions": [
                    claim("Will the offensive continue past 87 localities?", LIBERATION)
                ],
            }
        )
    )
    b = BriefingService(llm_nd).brief(BriefingBody(topic="the fighting in Kursk"))
    assert b.engine == "llm" and not b.refused
    assert (b.perspectives, b.differences) == ([], [])
    assert [c.quote for c in b.citations] == [SEIZED, LIBERATION]
    assert [c.n for c in b.citations] == [1, 2]
    assert [p.citations for p in b.open_questions] == [[2]]
    assert cited_everywhere(b) == {1, 2}
    assert sum(s.citations for s in b.balance) == 2
    assert b.claims_dropped == 2
    md = briefing_markdown(b)
    assert "400" not in md
    assert_sources_block(md, b.citations)
