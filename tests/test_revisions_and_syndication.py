"""An article keeps its id through edits, with every earlier text readable; copies of one
story from several outlets are grouped at ingest."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from service.answer import AnswerService
from service.brief import BriefingService
from service.context import Newsdesk
from service.render import briefing_markdown
from service.requests import AskBody, BriefingBody, SummaryBody
from service.summarize import SummaryService
from vectorstore.ingest import make_article, read_paths
from vectorstore.syndication import signature

TRAM = "The city council said on Monday that the new tram line will open in {year}, after delays."
WIRE = (
    "Rescue teams in the mountain province worked through the night after a landslide buried "
    "a stretch of highway on Tuesday, officials said. At least twelve vehicles were caught, "
    "and the regional governor said search dogs and heavy machinery had been sent from the "
    "capital. Residents of two nearby villages were moved to a school gymnasium as rain "
    "continued to fall, and forecasters warned that more slides were possible through "
    "Thursday. The highway, the main route between the coast and the interior, will stay "
    "closed until engineers have inspected the slope, a transport ministry spokesman said."
)


def test_an_edited_article_is_a_new_revision_of_the_same_id(newsdesk: Newsdesk) -> None:
    store = newsdesk.store
    newsdesk.indexer.index([make_article(TRAM.format(year=2027), article_id="tram")])
    newsdesk.indexer.index([make_article(TRAM.format(year=2028), article_id="tram")])
    current = store.get_article("tram")
    assert current is not None
    assert current.revision == 2 and "2028" in current.text and current.updated_at
    assert store.count_articles() == 1
    assert [r.revision for r in store.revisions("tram")] == [1, 2]
    first = store.get_revision("tram", 1)
    assert first is not None and "2027" in first.text and first.revision == 1
    # only the current text is searchable
    chunks = [c for c in store.iter_chunks() if c.article_id == "tram"]
    assert chunks and all("2028" in c.text for c in chunks)
    assert store.get_revision("tram", 3) is None


def test_the_same_text_again_is_not_a_revision(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index([make_article(TRAM.format(year=2027), article_id="tram")])
    newsdesk.indexer.index([make_article(TRAM.format(year=2027), article_id="tram")])
    current = newsdesk.store.get_article("tram")
    assert current is not None and current.revision == 1 and current.updated_at is None
    assert [r.revision for r in newsdesk.store.revisions("tram")] == [1]


def test_deleting_an_article_deletes_its_revisions(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index([make_article(TRAM.format(year=2027), article_id="tram")])
    newsdesk.indexer.index([make_article(TRAM.format(year=2028), article_id="tram")])
    assert newsdesk.store.delete_article("tram")
    assert newsdesk.store.revisions("tram") == []
    assert newsdesk.store.get_revision("tram", 1) is None


def _boilerplated(text: str, outlet: str, rng: random.Random) -> str:
    """A wire story as another outlet runs it: its own furniture, a word or two changed."""
    words = text.split()
    for _ in range(3):
        i = rng.randrange(len(words))
        words[i] = words[i].upper()
    return (
        f"{outlet} | Latest news. Sign up for our newsletter. "
        + " ".join(words)
        + f" Copyright {outlet}. All rights reserved. Related: more stories from {outlet}."
    )


def test_syndicated_copies_join_the_first_copys_group(newsdesk: Newsdesk) -> None:
    rng = random.Random(3)
    newsdesk.indexer.index([make_article(WIRE, article_id="wire", source="Wire")])
    copies = [
        make_article(_boilerplated(WIRE, name, rng), article_id=name.lower(), source=name)
        for name in ("Herald", "Gazette")
    ]
    newsdesk.indexer.index(copies)
    # the same event in other words is not a copy
    own_words = (
        "A landslide closed the main coast highway on Tuesday night and trapped about a dozen "
        "cars, according to the province's governor, who dispatched search dogs. Villagers "
        "spent the night in a school while rain kept falling; more slides may follow, "
        "meteorologists cautioned, and engineers must check the hillside before reopening."
    )
    newsdesk.indexer.index([make_article(own_words, article_id="own", source="Times")])
    store = newsdesk.store
    arts = store.get_articles(["wire", "herald", "gazette", "own"])
    assert arts["wire"].syndication_group is None
    assert arts["herald"].syndication_group == "wire"
    assert arts["gazette"].syndication_group == "wire"
    assert arts["own"].syndication_group is None
    assert sorted(store.syndicated_copies(["wire"])["wire"]) == ["gazette", "herald", "wire"]


def test_short_texts_have_no_signature() -> None:
    assert signature("Too short to compare.") is None
    sig = signature(WIRE)
    assert sig is not None and sig.jaccard(sig) == 1.0


def test_concurrent_revisions_keep_every_text(newsdesk: Newsdesk) -> None:
    years = range(2030, 2036)
    threads = [
        threading.Thread(
            target=newsdesk.indexer.index,
            args=([make_article(TRAM.format(year=y), article_id="tram")],),
        )
        for y in years
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = newsdesk.store
    texts = {store.get_revision("tram", r.revision).text for r in store.revisions("tram")}  # type: ignore[union-attr]
    current = store.get_article("tram")
    assert current is not None and current.text in texts
    assert len(store.revisions("tram")) == len(years)


def test_an_edited_file_answers_from_its_new_revision(
    make_newsdesk: Callable[..., Newsdesk], real_embedder: object, tmp_path: Path
) -> None:
    """The tram example: a file edited after ingest answers with its new text, cited to
    revision 2, and the first text stays readable."""
    nd = make_newsdesk(real_embedder)
    tram = tmp_path / "tram.txt"
    tram.write_text(TRAM.format(year=2027) + " The route links the station and the port.")
    nd.indexer.index(read_paths([tram]))
    tram.write_text(TRAM.format(year=2028) + " The route links the station and the port.")
    nd.indexer.index(read_paths([tram]))
    assert nd.store.count_articles() == 1
    answer = AnswerService(nd).answer(AskBody(question="When will the tram open?"))
    assert not answer.refused
    quotes = " ".join(c.quote for c in answer.citations)
    assert "2028" in quotes and "2027" not in quotes + answer.answer
    assert {c.revision for c in answer.citations} == {2}
    (only,) = {c.article_id for c in answer.citations}
    assert [r.revision for r in nd.store.revisions(only)] == [1, 2]


def test_the_same_url_with_new_text_is_a_revision(newsdesk: Newsdesk) -> None:
    url = "https://News.example/city/tram?utm_source=feed#top"
    newsdesk.indexer.index([make_article(TRAM.format(year=2027), url=url)])
    newsdesk.indexer.index(
        [make_article(TRAM.format(year=2028), url="https://news.example/city/tram")]
    )
    (only,) = [aid for aid, _ in newsdesk.store.iter_article_meta()]
    article = newsdesk.store.get_article(only)
    assert article is not None and article.revision == 2 and "2028" in article.text


def test_two_files_with_one_text_stay_two_files_when_one_is_edited(
    newsdesk: Newsdesk, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(TRAM.format(year=2027))
    b.write_text(TRAM.format(year=2027))
    newsdesk.indexer.index(read_paths([a, b]))
    b.write_text(TRAM.format(year=2029))
    newsdesk.indexer.index(read_paths([b]))
    texts = sorted(
        art.text
        for art in newsdesk.store.get_articles(
            [aid for aid, _ in newsdesk.store.iter_article_meta()]
        ).values()
    )
    assert len(texts) == 2 and "2027" in texts[0] and "2029" in texts[1]


def test_the_api_serves_every_revision_and_its_spans(client: TestClient, nd: Newsdesk) -> None:
    for year in (2027, 2028):
        r = client.post("/v1/articles", json={"id": "tram", "text": TRAM.format(year=year)})
        assert r.status_code in (200, 201), r.text
    current = client.get("/v1/articles/tram").json()
    assert current["revision"] == 2 and "2028" in current["text"] and current["updated_at"]
    first = client.get("/v1/articles/tram", params={"revision": 1}).json()
    assert "2027" in first["text"] and first["revision"] == 1
    revs = client.get("/v1/articles/tram/revisions").json()["items"]
    assert [(r["revision"], r["current"]) for r in revs] == [(1, False), (2, True)]
    start = TRAM.index("{year}")
    span = client.get(
        "/v1/articles/tram/spans", params={"start": start, "end": start + 4, "revision": 1}
    ).json()
    assert span["text"] == "2027" and span["revision"] == 1
    missing = client.get("/v1/articles/tram", params={"revision": 3})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_an_uploaded_file_twice_is_one_article(client: TestClient) -> None:
    """An upload is no file of ours to follow: the second copy of a text is unchanged, not
    a second article (its temporary path must not become an identity)."""
    files = {"file": ("tram.txt", TRAM.format(year=2027).encode(), "text/plain")}
    assert client.post("/v1/articles", files=files).json()["added"] == 1
    again = client.post("/v1/articles", files=files).json()
    assert again["unchanged"] == 1 and again["added"] == 0


def test_copies_count_once_in_a_summary_and_a_briefing(
    make_newsdesk: Callable[..., Newsdesk], real_embedder: object
) -> None:
    nd = make_newsdesk(real_embedder)
    rng = random.Random(5)
    nd.indexer.index([make_article(WIRE, article_id="wire", source="Wire")])
    nd.indexer.index(
        [
            make_article(_boilerplated(WIRE, name, rng), article_id=name.lower(), source=name)
            for name in ("Herald", "Gazette")
        ]
    )
    summary = SummaryService(nd).summarize(SummaryBody(topic="landslide on the highway"))
    assert not summary.refused
    cited = {c.article_id for c in summary.citations}
    assert len(cited) == 1, cited
    (share,) = summary.balance
    outlets = {"Wire", "Herald", "Gazette"}
    assert {share.source, *share.also_published_by} == outlets
    briefing = BriefingService(nd).brief(BriefingBody(topic="landslide on the highway"))
    assert len(briefing.sources) == 1
    assert {briefing.sources[0].source, *briefing.sources[0].also_published_by} == outlets
    assert "also published by" in briefing_markdown(briefing)


def test_an_outlets_own_modified_time_is_the_updated_at(newsdesk: Newsdesk) -> None:
    """A page that says it was modified after publication says so from its first revision;
    a changed text takes the outlet's time, not the time we noticed it."""
    first = make_article(
        TRAM.format(year=2027),
        article_id="tram",
        published_at="2024-05-01T08:00:00+00:00",
        updated_at="2024-05-01T12:30:00+00:00",
    )
    newsdesk.indexer.index([first])
    stored = newsdesk.store.get_article("tram")
    assert stored is not None and stored.updated_at == "2024-05-01T12:30:00+00:00"
    second = make_article(
        TRAM.format(year=2028), article_id="tram", updated_at="2024-05-03T09:00:00+00:00"
    )
    newsdesk.indexer.index([second])
    stored = newsdesk.store.get_article("tram")
    assert stored is not None and stored.revision == 2
    assert stored.updated_at == "2024-05-03T09:00:00+00:00"
