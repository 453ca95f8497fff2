"""An article keeps its id through edits, with every earlier text readable; copies of one
story from several outlets are grouped at ingest."""

from __future__ import annotations

import random
import threading

from service.context import Newsdesk
from vectorstore.ingest import make_article
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
