"""The extractive engine answers from evidence (several articles, labelled, the agreed name
first, no verdicts it cannot check) and refuses, with one rule for answers, summaries and
briefings, when the stored articles do not cover what is asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.answer import REFUSAL, AnswerService
from service.api import create_app
from service.context import Newsdesk
from service.engines.extractive.answers import COMPARE_YOURSELF
from service.engines.extractive.scoring import forms_by_stem, lexical_coverage
from service.engines.extractive.terms import term_forms
from service.requests import AskBody
from tests.conftest import SEEDS, SHARED_EVAL
from vectorstore.ingest import make_article, read_paths
from vectorstore.retrieve import mentioned_days

OFF_TOPIC = ["asdfghjkl qwertyuiop", "Mars colony water supply", "What is the capital of Mongolia?"]


def exact(nd: Newsdesk, citations: list) -> bool:
    return all(
        nd.store.get_article(c.article_id).text[c.start : c.end] == c.quote for c in citations
    )


# ---- words, not stems -----------------------------------------------------------------


def coverage(question: str, sentence: str) -> float:
    return lexical_coverage(term_forms(question), forms_by_stem(sentence), {})


def test_a_shared_stem_is_not_a_shared_word() -> None:
    assert coverage("capital", "Russia capitalized on the confusion.") == 0.0
    assert coverage("organ", "The organization met on Monday.") == 0.0


def test_inflections_still_match() -> None:
    assert coverage("Riverton flooding", "The Riverton flood forced evacuations.") == 1.0
    assert coverage("captured troops", "Ukraine captured 400 troops.") == 1.0
    assert coverage("fled", "Thousands are fleeing the region.") == 1.0


def test_dates_a_question_names() -> None:
    q = "Did The Verge on 2023-11-24 and Wired on November 25th, 2023 agree, or on Feb 30, 2023?"
    assert mentioned_days(q) == ["2023-11-24", "2023-11-25"]
    assert mentioned_days("What happened on February 30, 2023?") == []


# ---- refusals: off-topic questions, summaries and briefings -----------------------------


@pytest.fixture
def api(seeded: Newsdesk) -> Iterator[TestClient]:
    with TestClient(create_app(newsdesk=seeded), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.model
@pytest.mark.parametrize("topic", OFF_TOPIC)
def test_an_off_topic_briefing_or_summary_is_refused_as_no_coverage(
    api: TestClient, topic: str
) -> None:
    b = api.post("/v1/briefings", json={"topic": topic})
    assert b.status_code == 200, b.text
    briefing = b.json()
    assert briefing["refused"] is True
    assert briefing["title"] == f"No coverage of “{topic}” in the stored articles"
    assert briefing["citations"] == [] and briefing["sources"] == []
    assert briefing["bottom_line"] == briefing["developments"] == []
    md = api.post("/v1/briefings", json={"topic": topic, "format": "markdown"})
    assert md.status_code == 200 and "No coverage of" in md.text
    s = api.post("/v1/summaries", json={"topic": topic})
    assert s.status_code == 200, s.text
    assert s.json()["refused"] is True and s.json()["points"] == []
    a = api.post("/v1/ask", json={"question": topic})
    assert a.status_code == 200 and a.json()["refused"] is True
    assert a.json()["answer"] == REFUSAL


@pytest.mark.model
def test_a_covered_topic_is_still_briefed(api: TestClient) -> None:
    b = api.post("/v1/briefings", json={"topic": "Kursk evacuations"}).json()
    s = api.post("/v1/summaries", json={"topic": "Kursk evacuations"}).json()
    assert not b["refused"] and b["bottom_line"] and b["sources"]
    assert not s["refused"] and s["points"]


@pytest.mark.model
def test_a_stem_match_alone_does_not_answer(make_newsdesk, real_embedder) -> None:  # type: ignore[no-untyped-def]
    # Its own store: the session's seeded store is shared read-only.
    nd = make_newsdesk(real_embedder)
    nd.indexer.index(read_paths([SEEDS]))
    nd.indexer.index(
        [
            make_article(
                "Russia capitalized on the confusion along the border to press its advance, "
                "military analysts said on Thursday.",
                article_id="analysis",
                source="Wire",
            )
        ]
    )
    a = AnswerService(nd).answer(AskBody("What is the capital of Mongolia?"))
    assert a.refused and a.answer == REFUSAL and a.citations == []


# ---- answers from several articles ----------------------------------------------------

PORT = [
    (
        "gazette",
        "Gazette",
        "2024-05-02",
        "Orla Vance was named director of the Velmar port authority on Thursday, replacing "
        "a director who had served for a decade.",
    ),
    (
        "herald",
        "Herald",
        "2024-05-02",
        "The Velmar port authority's board chose Orla Vance, a former customs chief, to run "
        "the port from June.",
    ),
    (
        "tribune",
        "Tribune",
        "2024-05-03",
        "Dock workers at Velmar welcomed the appointment of Orla Vance, saying the port "
        "authority needed a leader who knew customs work.",
    ),
    (
        "ledger",
        "Ledger",
        "2024-04-20",
        "Container traffic through Velmar rose by 8 percent in the first quarter, the port "
        "authority said.",
    ),
]


@pytest.fixture
def port(make_newsdesk, real_embedder) -> Newsdesk:  # type: ignore[no-untyped-def]
    nd = make_newsdesk(real_embedder)
    nd.indexer.index(
        [
            make_article(text, article_id=aid, source=src, published_at=day)
            for aid, src, day, text in PORT
        ]
    )
    return nd


@pytest.mark.model
def test_who_question_leads_with_the_name_the_quotes_agree_on(port: Newsdesk) -> None:
    a = AnswerService(port).answer(AskBody("Who will lead the Velmar port authority?"))
    assert not a.refused
    assert a.answer.startswith("Orla Vance [")
    lead = a.answer.split(" ", 2)[2].split(" ", 1)[0]  # the lead's citation markers
    cited = [int(n) for n in lead.strip("[]").split("][")]
    assert len({a.citations[n - 1].article_id for n in cited}) >= 2
    assert all("Orla Vance" in a.citations[n - 1].quote for n in cited)
    # Quotes from different articles, each labelled with its outlet and date.
    assert len({c.article_id for c in a.citations}) == len(a.citations) >= 2
    for c in a.citations:
        assert f"{c.source} ({c.published_at[:10]}): “{c.quote}”" in a.answer
    assert exact(port, a.citations)


@pytest.mark.model
def test_yes_no_question_gets_statements_side_by_side_not_a_verdict(port: Newsdesk) -> None:
    a = AnswerService(port).answer(
        AskBody("Did the Gazette and the Herald agree on who will run the Velmar port?")
    )
    assert not a.refused
    assert a.answer.startswith(COMPARE_YOURSELF)
    assert {"gazette", "herald"} <= {c.article_id for c in a.citations}
    words = a.answer.replace(COMPARE_YOURSELF, "").lower().split()
    assert "yes" not in words and "no" not in words
    assert exact(port, a.citations)


@pytest.mark.model
def test_a_named_day_scopes_the_evidence(port: Newsdesk) -> None:
    # Twenty reports in the same words on other days crowd the dated one out of a search
    # that treats "April 20, 2024" as mere words.
    port.indexer.index(
        [
            make_article(
                f"Container traffic through Velmar rose by {k} percent in the first quarter, "
                "the port authority said.",
                article_id=f"weekly{k}",
                source="Ledger",
                published_at=f"2024-03-{k:02d}",
            )
            for k in range(10, 30)
        ]
    )
    a = AnswerService(port).answer(
        AskBody(
            "How much did container traffic through Velmar rise, as reported on April 20, 2024?"
        )
    )
    assert not a.refused
    assert "ledger" in {c.article_id for c in a.citations}, a.answer
    assert "Ledger (2024-04-20): “Container traffic through Velmar rose by 8 percent" in a.answer


@pytest.mark.model
def test_the_issues_youtube_question_is_answered(make_newsdesk, real_embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = SHARED_EVAL / "multihop_corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"{corpus} is not in this checkout's workplace")
    nd = make_newsdesk(real_embedder)
    nd.indexer.index(read_paths([corpus]))
    a = AnswerService(nd).answer(
        AskBody(
            "Which platform is at the center of discussions in articles from Music Business "
            "Worldwide, Polygon, and FOX News - Health, concerning the policing of AI-driven "
            'voice replication, the debate over "reaction" content, and being the most used '
            "app overnight by young people?"
        )
    )
    assert not a.refused
    assert a.answer.startswith("YouTube [")
    assert exact(nd, a.citations)
