"""Where sources differ, shown by the extractive engine on constructed pairs: different
casualty figures, opposite framings of one event, different dates; and two consistent
reports that must not be shown as differing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.brief import BriefingService
from service.context import Newsdesk
from service.models import Briefing, Summary
from service.requests import BriefingBody, SummaryBody
from service.summarize import SummaryService
from vectorstore.ingest import make_article

OTHER = (
    "Aid convoys reached the Dovra region on Sunday, carrying food and medicine for "
    "families displaced by the fighting, the Red Crescent said."
)

FIGURES = (
    "At least 12 people were killed when shells hit the central market in Dovra on "
    "Saturday, regional officials said.",
    "The shelling of the central market in Dovra on Saturday killed 31 people, according "
    "to doctors at the city hospital.",
)
FRAMINGS = (
    "Moscow's troops completed the liberation of Marinka after months of fighting, the "
    "Russian defence ministry said.",
    "Moscow's troops completed the occupation of Marinka after months of fighting, "
    "Ukraine's general staff said.",
)
DATES = (
    "The ceasefire between the government and the rebels in Dovra took effect on March 3, "
    "the interior ministry said.",
    "The ceasefire between the government and the rebels in Dovra took effect on March 5, "
    "rebel commanders said.",
)
CONSISTENT = (
    "At least 12 people were killed when shells hit the central market in Dovra on "
    "Saturday, regional officials said.",
    "Shells struck the central market in Dovra on Saturday, killing 12 people, doctors at "
    "the city hospital said.",
)


@pytest.fixture(params=["hashing", pytest.param("real", marks=pytest.mark.model)])
def desk(request: pytest.FixtureRequest, make_newsdesk: Callable[..., Newsdesk]) -> Newsdesk:
    return make_newsdesk(
        request.getfixturevalue("real_embedder") if request.param == "real" else None
    )


def ingest_pair(nd: Newsdesk, pair: tuple[str, str]) -> None:
    nd.indexer.index(
        [
            make_article(
                f"Report from Dovra\n\n{pair[0]} Residents described a night of explosions.",
                article_id="gazette",
                source="Gazette",
                published_at="2024-03-09",
            ),
            make_article(
                f"Dovra dispatch\n\n{pair[1]} Schools in the area stayed closed.",
                article_id="herald",
                source="Herald",
                published_at="2024-03-09",
            ),
            make_article(OTHER, article_id="tribune", source="Tribune"),
        ]
    )


def results(nd: Newsdesk, topic: str) -> list[Summary | Briefing]:
    s = SummaryService(nd).summarize(SummaryBody(topic=topic))
    b = BriefingService(nd).brief(BriefingBody(topic=topic))
    assert not s.refused and not b.refused
    return [s, b]


@pytest.mark.parametrize(
    "pair, topic, expected",
    [
        (FIGURES, "Dovra market shelling deaths", "figures for “people”"),
        (FRAMINGS, "Marinka fighting", "how control of territory is described"),
        (DATES, "Dovra ceasefire", "when it happened"),
    ],
    ids=["casualty figures", "opposite framings", "different dates"],
)
def test_the_pair_that_differs_is_found(
    desk: Newsdesk, pair: tuple[str, str], topic: str, expected: str
) -> None:
    ingest_pair(desk, pair)
    for result in results(desk, topic):
        assert [d.topic for d in result.differences] == [expected]
        by_n = {c.n: c for c in result.citations}
        sides = [by_n[n] for side in result.differences[0].sides for n in side.citations]
        assert sorted((c.article_id, c.quote) for c in sides) == [
            ("gazette", pair[0]),
            ("herald", pair[1]),
        ]
        for c in result.citations:
            assert desk.store.get_article(c.article_id).text[c.start : c.end] == c.quote


def test_two_consistent_reports_do_not_differ(desk: Newsdesk) -> None:
    ingest_pair(desk, CONSISTENT)
    for result in results(desk, "Dovra market shelling deaths"):
        assert result.differences == []
        # Both reports are there; they simply agree.
        assert {"gazette", "herald"} <= {c.article_id for c in result.citations}
