"""Neutral multi-source summaries and briefings: coverage, balance, attribution, dates."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai._base_client
import pytest
import respx

from service.brief import BriefingService, BriefRequest
from service.context import Newsdesk
from service.neutrality import loaded_terms_in_own_voice
from service.render import briefing_markdown, summary_markdown
from service.summarize import NothingToSummarize, SummaryRequest, SummaryService
from tests.conftest import SEEDS, HashingEmbedder
from tests.llm_mock import BASE_URL, CHAT_URL, completion
from vectorstore.ingest import make_article, read_paths


def verified(nd: Newsdesk, citations: list) -> bool:
    return all(
        nd.store.get_article(c.article_id).text[c.start : c.end] == c.quote for c in citations
    )


def test_neutrality_check_finds_loaded_words_in_own_voice_only() -> None:
    assert loaded_terms_in_own_voice("Russian troops liberated the town.") == ["liberat"]
    assert loaded_terms_in_own_voice("Putin said troops had 'liberated' the town.") == []
    assert loaded_terms_in_own_voice("Kyiv calls it an “occupation”. Fighting went on.") == []
    assert loaded_terms_in_own_voice("The occupation continued. Kyiv said so.") == ["occupation"]


@pytest.mark.model
def test_extractive_summary_covers_every_seed_with_balanced_verified_citations(
    seeded: Newsdesk,
) -> None:
    s = SummaryService(seeded).summarize(SummaryRequest())
    assert s.engine == "extractive" and s.points
    assert all(p.citations for p in s.points)
    assert {c.article_id for c in s.citations} == {a for a, _ in seeded.store.iter_article_meta()}
    assert verified(seeded, s.citations)
    assert abs(sum(b.share for b in s.balance) - 1) < 1e-3
    assert max(b.share for b in s.balance) <= 0.5
    for p in s.points + [side for d in s.differences for side in d.sides]:
        assert loaded_terms_in_own_voice(p.text) == [], p.text
    for d in s.differences:
        assert len({s.citations[x.citations[0] - 1].article_id for x in d.sides}) >= 2
    assert "## Where sources differ" in summary_markdown(s)


@pytest.mark.model
def test_briefing_has_every_section_and_labels_undated_articles(seeded: Newsdesk) -> None:
    b = BriefingService(seeded).brief(BriefRequest(topic="the fighting in the Kursk region"))
    assert b.bottom_line and b.developments and b.perspectives and b.sources
    assert all(d.date is None for d in b.developments)  # the seeds carry no dates
    assert verified(seeded, b.citations)
    md = briefing_markdown(b)
    for heading in (
        "## Bottom line",
        "## Key developments",
        "## Perspectives",
        "## Where sources differ",
        "## Open questions",
        "## Sources read",
    ):
        assert heading in md
    assert "**undated**" in md
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
    b = BriefingService(newsdesk).brief(BriefRequest(topic="Riverton flooding"))
    dates = [d.date for d in b.developments]
    assert dates == sorted(dates) and dates[0] == "2024-05-01"
    early = BriefingService(newsdesk).brief(
        BriefRequest(topic="Riverton flooding", as_of="2024-05-03")
    )
    assert {s.article_id for s in early.sources} == {"a", "b"}


def test_summary_of_unknown_articles_is_a_clear_error(newsdesk: Newsdesk) -> None:
    with pytest.raises(NothingToSummarize, match="unknown article id"):
        SummaryService(newsdesk).summarize(SummaryRequest(article_ids=["nope"]))


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
                        "text": "Russia liberated 87 localities.",
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
                                "text": "Russia reports gains.",
                                "quotes": [{"passage": 1, "quote": LIBERATION}],
                            },
                            {
                                "text": "Ukraine reports gains.",
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
    s = SummaryService(llm_nd).summarize(SummaryRequest(topic="territory"))
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
    b = BriefingService(llm_nd).brief(BriefRequest(topic="Ukraine seized territory"))
    assert b.engine == "llm" and b.developments
    assert b.developments[0].date is None  # the seeds are undated: the model's date is dropped


def test_llm_failure_falls_back_for_summaries(llm_nd) -> None:  # type: ignore[no-untyped-def]
    llm_nd.router.post(CHAT_URL).mock(return_value=httpx.Response(503))
    s = SummaryService(llm_nd).summarize(SummaryRequest())
    assert s.engine == "extractive" and s.fallback_reason and s.points
