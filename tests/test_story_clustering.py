"""Articles are grouped into stories as they are written: one event across outlets is one
story with a stable id; merges keep the older id and splits are recorded."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from service.context import Newsdesk
from service.settings import Settings
from tests.test_revisions_and_syndication import WIRE
from vectorstore import stories
from vectorstore.ingest import make_article, published_timestamp

# Two outlets' own reports of one event, in their own words.
LANDSLIDE_AP = (
    "Rescue teams in Montara province worked through the night after a landslide buried a "
    "stretch of the Coastal Highway on Tuesday, officials said. At least twelve vehicles were "
    "caught, and Governor Elena Ruiz said search dogs and heavy machinery had been sent from "
    "the capital. Residents of two nearby villages were moved to a school gymnasium as rain "
    "continued to fall, and forecasters warned that more slides were possible."
)
LANDSLIDE_REUTERS = (
    "A landslide closed the Coastal Highway in Montara on Tuesday night and trapped about a "
    "dozen cars, according to Governor Elena Ruiz, who dispatched search dogs and excavators. "
    "Villagers spent the night in a school while rain kept falling over Montara; more slides "
    "may follow, meteorologists cautioned, and engineers must check the hillside first."
)
# Another event of the same days.
BUDGET = (
    "The parliament of Velmar approved Finance Minister Otto Grant's budget on Wednesday by "
    "a narrow margin, after opposition parties walked out of the chamber in protest at a "
    "planned rise in fuel duty. Grant said the budget would cut the deficit to three percent "
    "within two years, while the opposition leader called it a tax on commuters."
)
# A wire story for copies: WIRE, shared with tests/test_revisions_and_syndication.py.

# For the mechanics (merges, filters, threads) the hashing embedder and explicit constants
# make the similarities exact: texts sharing words are near, texts sharing none are not.
MECHANICS = {
    "story_join_threshold": 0.5,
    "story_merge_threshold": 0.6,
    "story_term_weight": 0.0,
    "story_min_chars": 0,
}
ALPHA = "alpha bravo charlie delta echo foxtrot golf hotel india juliet"
KILO = "kilo lima mike november oscar papa quebec romeo sierra tango"
UNIFORM = "uniform victor whiskey xray yankee zulu amber basalt cobalt dune"


def _index(nd: Newsdesk, text: str, aid: str, source: str | None, when: str | None) -> None:
    nd.indexer.index([make_article(text, article_id=aid, source=source, published_at=when)])


@pytest.mark.model
def test_reports_of_one_event_share_a_story_and_another_event_does_not(
    make_newsdesk: Callable[..., Newsdesk], real_embedder: object
) -> None:
    nd = make_newsdesk(real_embedder)
    _index(nd, LANDSLIDE_AP, "ap", "AP", "2026-03-03T08:00:00Z")
    _index(nd, BUDGET, "budget", "AP", "2026-03-04T09:00:00Z")
    _index(nd, LANDSLIDE_REUTERS, "reuters", "Reuters", "2026-03-03T20:00:00Z")
    got = nd.store.story_ids_of(["ap", "reuters", "budget"])
    assert got["ap"] == got["reuters"]
    assert got["budget"] != got["ap"]
    story = nd.store.get_story(got["ap"])
    assert story is not None
    assert story.article_ids == ("ap", "reuters")  # oldest first
    assert story.outlets == ("AP", "Reuters")
    assert story.first_seen == "2026-03-03T08:00:00+00:00"
    assert story.last_seen == "2026-03-03T20:00:00+00:00"


@pytest.mark.model
def test_the_same_event_reported_weeks_apart_is_two_stories(
    make_newsdesk: Callable[..., Newsdesk], real_embedder: object, settings: Settings
) -> None:
    nd = make_newsdesk(real_embedder)
    _index(nd, LANDSLIDE_AP, "march", "AP", "2026-03-03T08:00:00Z")
    _index(nd, LANDSLIDE_REUTERS, "april", "Reuters", "2026-04-10T08:00:00Z")
    got = nd.store.story_ids_of(["march", "april"])
    assert got["march"] != got["april"]
    # The same two reports a day apart are one story: it is the time that separates them.
    other = Newsdesk(
        settings.model_copy(update={"data_dir": settings.data_dir / "other"}),
        embedder=real_embedder,  # type: ignore[arg-type]
    )
    _index(other, LANDSLIDE_AP, "march", "AP", "2026-03-03T08:00:00Z")
    _index(other, LANDSLIDE_REUTERS, "april", "Reuters", "2026-03-04T08:00:00Z")
    got = other.store.story_ids_of(["march", "april"])
    assert got["march"] == got["april"]


def test_a_syndicated_copy_joins_its_originals_story_whatever_the_threshold(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    # A join threshold nothing reaches: only the copy rule can put two articles together.
    nd = make_newsdesk(story_join_threshold=5.0, story_merge_threshold=5.0)
    _index(nd, WIRE, "wire", "Wire", "2026-03-03T08:00:00Z")
    copy = "Herald | Latest news. " + WIRE.replace("twelve", "TWELVE") + " Copyright Herald."
    _index(nd, copy, "herald", "Herald", "2026-03-03T09:00:00Z")
    _index(nd, BUDGET, "budget", "Herald", "2026-03-03T09:00:00Z")
    assert nd.store.get_article("herald").syndication_group == "wire"  # type: ignore[union-attr]
    got = nd.store.story_ids_of(["wire", "herald", "budget"])
    assert got["herald"] == got["wire"] != got["budget"]
    # The story counts two articles but one text.
    record = nd.store._story_records([got["wire"]])[got["wire"]]
    assert (record["articles"], record["texts"]) == (2, 1)


@pytest.mark.parametrize("links", [1, 3])
def test_links_decide_whether_fitting_one_member_of_a_story_is_enough(
    make_newsdesk: Callable[..., Newsdesk], links: int
) -> None:
    """A report of another event that resembles one member (a piece mentioning both
    events) joins under single link, and starts its own story when it must fit both."""
    nd = make_newsdesk(**MECHANICS, story_links=links)
    _index(nd, ALPHA, "a1", "AP", "2026-03-03T08:00:00Z")
    _index(nd, f"{ALPHA} {UNIFORM}", "a2", "Reuters", "2026-03-03T09:00:00Z")
    _index(nd, UNIFORM, "u1", "AFP", "2026-03-03T10:00:00Z")
    got = nd.store.story_ids_of(["a1", "a2", "u1"])
    assert got["a1"] == got["a2"]
    assert (got["u1"] == got["a1"]) is (links == 1)
    # A report that fits every member joins either way.
    _index(nd, f"{ALPHA} {UNIFORM} amber", "a3", "BBC", "2026-03-03T11:00:00Z")
    assert nd.store.story_ids_of(["a3"])["a3"] == got["a1"]


def _neighbour(
    aid: str, story: str, cosine: float, texts: int, group: str | None = None
) -> stories.Neighbour:
    return stories.Neighbour(aid, cosine, {}, story, group, story_texts=texts)


def test_a_story_scores_by_its_links_th_best_fitting_member() -> None:
    # Five texts: the third-best fit counts; a member the neighbours do not include fits
    # worse than all of them.
    big = [_neighbour(f"b{i}", "big", c, 5) for i, c in enumerate([0.9, 0.8, 0.7, 0.2])]
    assert stories.story_scores({}, big, 0.0, 3) == {"big": pytest.approx(0.7)}
    assert stories.story_scores({}, big[:2], 0.0, 3) == {"big": float("-inf")}
    # Two texts: both must fit.
    small = [_neighbour("s1", "small", 0.9, 2), _neighbour("s2", "small", 0.3, 2)]
    assert stories.story_scores({}, small, 0.0, 3) == {"small": pytest.approx(0.3)}
    decision = stories.decide(
        {}, big + small, join_threshold=0.5, merge_threshold=9.0, term_weight=0.0, links=3
    )
    assert decision == stories.Decision("big", ())


def test_copies_of_one_text_are_one_member_of_a_story() -> None:
    # The wire text and its copy are one text: a story of them needs one fit, counted once.
    wire = [
        _neighbour("wire", "w", 0.8, 1),
        _neighbour("copy", "w", 0.8, 1, group="wire"),
    ]
    assert stories.story_scores({}, wire, 0.0, 3) == {"w": pytest.approx(0.8)}
    # A copy cannot stand in for the other text of a two-text story.
    two = [
        _neighbour("wire", "t", 0.8, 2),
        _neighbour("copy", "t", 0.8, 2, group="wire"),
        _neighbour("own", "t", 0.1, 2),
    ]
    assert stories.story_scores({}, two, 0.0, 3) == {"t": pytest.approx(0.1)}


def test_a_story_keeps_its_id_as_it_grows(make_newsdesk: Callable[..., Newsdesk]) -> None:
    nd = make_newsdesk(**MECHANICS)
    _index(nd, ALPHA, "a1", "AP", "2026-03-03T08:00:00Z")
    first = nd.store.story_ids_of(["a1"])["a1"]
    assert first.startswith("story-")
    for i, when in enumerate(["2026-03-03T10:00:00Z", "2026-03-04T08:00:00Z"], start=2):
        _index(nd, ALPHA + f" update{i}", f"a{i}", "Reuters", when)
        assert nd.store.story_ids_of([f"a{i}"])[f"a{i}"] == first
    story = nd.store.get_story(first)
    assert story is not None and story.id == first
    assert story.article_ids == ("a1", "a2", "a3") and story.aliases == ()


def test_an_article_linking_two_stories_merges_them_into_the_older(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(**MECHANICS)
    _index(nd, ALPHA, "alpha", "AP", "2026-03-03T08:00:00Z")
    _index(nd, KILO, "kilo", "Reuters", "2026-03-03T09:00:00Z")
    older, younger = nd.store.story_ids_of(["alpha", "kilo"]).values()
    assert older != younger
    _index(nd, f"{ALPHA} {KILO}", "both", "AFP", "2026-03-03T10:00:00Z")
    assert set(nd.store.story_ids_of(["alpha", "kilo", "both"]).values()) == {older}
    story = nd.store.get_story(younger)  # the alias finds the story it became
    assert story is not None and story.id == older
    assert story.aliases == (younger,)
    assert sorted(story.article_ids) == ["alpha", "both", "kilo"]
    assert [(e.kind, e.story_ids) for e in story.events] == [("merge", (older, younger))]
    assert [s.id for s in nd.store.list_stories()] == [older]


def test_a_split_is_recorded_on_both_stories(make_newsdesk: Callable[..., Newsdesk]) -> None:
    nd = make_newsdesk(**MECHANICS)
    for i in range(3):
        _index(nd, ALPHA + f" part{i}", f"a{i}", "AP", f"2026-03-03T0{i}:00:00Z")
    sid = nd.store.story_ids_of(["a0"])["a0"]
    new = nd.store.split_story(sid, ["a2"])
    assert new.id != sid and new.article_ids == ("a2",)
    old = nd.store.get_story(sid)
    assert old is not None and old.article_ids == ("a0", "a1")
    for story in (old, new):
        assert [(e.kind, e.story_ids, e.article_ids) for e in story.events] == [
            ("split", (sid, new.id), ("a2",))
        ]
    assert nd.store.story_ids_of(["a2"]) == {"a2": new.id}
    # A later report close to both does not undo the split by hand.
    _index(nd, ALPHA + " part9", "a9", "AP", "2026-03-03T05:00:00Z")
    assert len({nd.store.story_ids_of(["a0", "a2", "a9"])[a] for a in ("a0", "a2")}) == 2
    with pytest.raises(KeyError):
        nd.store.split_story("story-unknown", ["a0"])
    with pytest.raises(ValueError):
        nd.store.split_story(sid, ["not-a-member"])
    with pytest.raises(ValueError):
        nd.store.split_story(sid, list(nd.store.get_story(sid).article_ids))  # type: ignore[union-attr]


def test_list_stories_filters_and_orders_by_latest_development(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(**MECHANICS)
    _index(nd, ALPHA, "a-ap", "AP", "2026-03-01T08:00:00Z")
    _index(nd, ALPHA + " more", "a-bbc", "BBC News", "2026-03-02T08:00:00Z")
    _index(nd, KILO, "k-ap", "AP", "2026-03-05T08:00:00Z")
    _index(nd, UNIFORM, "u-none", None, "2026-03-03T08:00:00Z")
    ids = nd.store.story_ids_of(["a-ap", "k-ap", "u-none"])
    a, k, u = ids["a-ap"], ids["k-ap"], ids["u-none"]
    assert [s.id for s in nd.store.list_stories()] == [k, u, a]
    assert [s.id for s in nd.store.list_stories(limit=2)] == [k, u]
    assert [s.id for s in nd.store.list_stories(min_outlets=2)] == [a]
    assert [s.id for s in nd.store.list_stories(outlets=["bbc  news"])] == [a]
    assert [s.id for s in nd.store.list_stories(outlets=["AP"])] == [k, a]
    day = 86400.0
    march3 = float(published_timestamp("2026-03-03T00:00:00Z") or 0)
    assert [s.id for s in nd.store.list_stories(since_ts=march3)] == [k, u]
    assert [s.id for s in nd.store.list_stories(until_ts=march3)] == [a]
    # A story overlapping the range counts, though it started before it.
    assert [s.id for s in nd.store.list_stories(since_ts=march3 - day, until_ts=march3)] == [a]
    assert [s.id for s in nd.store.list_stories(ids=[u, a])] == [u, a]
    assert nd.store.get_story(u).outlets == ()  # type: ignore[union-attr]


def test_revisions_keep_their_story_unless_the_text_moved(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(**MECHANICS)
    _index(nd, ALPHA, "a1", "AP", "2026-03-03T08:00:00Z")
    _index(nd, ALPHA + " extra", "a2", "AP", "2026-03-03T09:00:00Z")
    _index(nd, KILO, "k1", "AP", "2026-03-03T09:00:00Z")
    sid = nd.store.story_ids_of(["a2"])["a2"]
    _index(nd, ALPHA + " corrected", "a2", "AP", "2026-03-03T09:00:00Z")
    assert nd.store.story_ids_of(["a2"])["a2"] == sid
    # Nearer now to the other story, but still close enough to its own: it stays.
    _index(nd, f"{ALPHA} {KILO} lima mike november", "a2", "AP", "2026-03-03T09:00:00Z")
    assert nd.store.story_ids_of(["a2", "k1"]) == {
        "a2": sid,
        "k1": nd.store.story_ids_of(["k1"])["k1"],
    }
    assert nd.store.story_ids_of(["k1"])["k1"] != sid
    _index(nd, KILO, "a2", "AP", "2026-03-03T09:00:00Z")  # now about something else
    assert nd.store.story_ids_of(["a2"])["a2"] != sid
    assert nd.store.get_story(sid).article_ids == ("a1",)  # type: ignore[union-attr]
    assert nd.store.delete_article("a1")
    assert nd.store.get_story(sid) is None
    # a2 now reports k1's event.
    assert [s.article_ids for s in nd.store.list_stories()] == [("a2", "k1")]


def test_concurrent_writers_converge(make_newsdesk: Callable[..., Newsdesk]) -> None:
    nd = make_newsdesk(**MECHANICS)
    rng = random.Random(5)
    events = {"alpha": ALPHA.split(), "kilo": KILO.split()}
    jobs = []
    for name, words in events.items():
        for i in range(4):
            text = " ".join(rng.sample(words, 8)) + f" {name}{i}"
            jobs.append((text, f"{name}-{i}"))
    rng.shuffle(jobs)
    barrier = threading.Barrier(len(jobs))

    def write(text: str, aid: str) -> None:
        barrier.wait()
        _index(nd, text, aid, aid.split("-")[0], "2026-03-03T08:00:00Z")

    threads = [threading.Thread(target=write, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = nd.store.story_ids_of([aid for _, aid in jobs])
    assert len(got) == len(jobs)  # every article has a story
    for name in events:
        assert len({got[f"{name}-{i}"] for i in range(4)}) == 1
    assert got["alpha-0"] != got["kilo-0"]
    listed = nd.store.list_stories()
    assert sorted(len(s.article_ids) for s in listed) == [4, 4]
    for story in listed:
        assert nd.store.get_story(story.id) == story


def test_two_writers_that_miss_each_other_still_end_in_one_story(
    make_newsdesk: Callable[..., Newsdesk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst interleaving, forced: writer A looks for neighbours before B's report is
    stored, then waits while B stores and places its report; each starts a story."""
    nd = make_newsdesk(**MECHANICS)
    store = nd.store
    looked, b_done = threading.Event(), threading.Event()
    original = store._story_neighbours

    def neighbours_then_wait(*args: object) -> list:
        found = original(*args)  # type: ignore[arg-type]
        if args[-1] == "a" and not looked.is_set():
            looked.set()
            assert b_done.wait(60)
        return found

    monkeypatch.setattr(store, "_story_neighbours", neighbours_then_wait)
    writer = threading.Thread(target=_index, args=(nd, ALPHA, "a", "AP", "2026-03-03T08:00:00Z"))
    writer.start()
    assert looked.wait(60)
    _index(nd, ALPHA + " more", "b", "Reuters", "2026-03-03T08:30:00Z")
    b_done.set()
    writer.join()
    got = store.story_ids_of(["a", "b"])
    assert got["a"] == got["b"]
    story = store.get_story(got["a"])
    assert story is not None and [e.kind for e in story.events] == ["merge"]


def test_a_text_too_short_to_place_is_a_story_of_its_own(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(**{**MECHANICS, "story_min_chars": 300})
    boilerplate = "Tweet with a location. You can add location information to your Tweets."
    long_alpha = " ".join([ALPHA] * 6)
    _index(nd, long_alpha, "long", "AP", "2026-03-03T08:00:00Z")
    _index(nd, long_alpha + " more", "long2", "AP", "2026-03-03T08:00:00Z")
    _index(nd, boilerplate, "t1", "X", "2026-03-03T08:00:00Z")
    _index(nd, boilerplate, "t2", "Y", "2026-03-03T08:00:00Z")
    _index(nd, ALPHA, "short-alpha", "Z", "2026-03-03T08:00:00Z")
    got = nd.store.story_ids_of(["long", "long2", "t1", "t2", "short-alpha"])
    assert got["long"] == got["long2"]
    assert len({got["long"], got["t1"], got["t2"], got["short-alpha"]}) == 4


def test_articles_left_without_a_story_are_placed_afterwards(
    make_newsdesk: Callable[..., Newsdesk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written before stories existed, or a writer that died between an article's
    record and its placement, leaves articles with no story; placing them afterwards
    groups them as their writes would have."""
    nd = make_newsdesk(**MECHANICS)
    _index(nd, ALPHA, "a1", "AP", "2026-03-03T08:00:00Z")
    with monkeypatch.context() as m:
        m.setattr(nd.store, "_assign_stories", lambda *args: None)
        _index(nd, ALPHA + " more", "a2", "Reuters", "2026-03-03T09:00:00Z")
        _index(nd, KILO, "k1", "AP", None)
        _index(nd, KILO + " more", "k2", "AFP", None)
    assert set(nd.store.story_ids_of(["a1", "a2", "k1", "k2"])) == {"a1"}
    stored_by = time.time()
    time.sleep(0.01)
    assert nd.store.place_unplaced_articles(batch=2) == 3
    got = nd.store.story_ids_of(["a1", "a2", "k1", "k2"])
    assert got["a1"] == got["a2"] != got["k1"] == got["k2"]
    # Undated: placed at when it was stored, not when it was placed.
    k1 = nd.store.article_meta(["k1"])["k1"]
    assert k1["story_ts"] < stored_by
    story = nd.store.get_story(got["a1"])
    assert story is not None and sorted(story.article_ids) == ["a1", "a2"]
    assert nd.store._story_records([got["a1"]])[got["a1"]]["articles"] == 2
    assert nd.store.place_unplaced_articles() == 0


class _Counting:
    """A collection whose calls of one method are counted, the rest passed through."""

    def __init__(self, inner: object, method: str) -> None:
        self.inner, self.method, self.calls = inner, method, 0

    def __getattr__(self, name: str) -> object:
        if name == self.method:
            self.calls += 1
        return getattr(self.inner, name)


def test_a_new_story_record_is_written_once_as_a_refresh_would_write_it(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(**MECHANICS)
    stories_col = _Counting(nd.store._story_collection(), "upsert")
    nd.store._stories = stories_col
    _index(nd, ALPHA, "a1", "AP", "2026-03-03T08:00:00Z")
    assert stories_col.calls == 1
    sid = nd.store.story_ids_of(["a1"])["a1"]
    written = nd.store._story_records([sid])[sid]
    nd.store._refresh_story(sid)
    assert nd.store._story_records([sid])[sid] == written
    assert written["articles"] == 1 and written["outlets"] == '["AP"]'
    assert written["first_ts"] == written["last_ts"] == published_timestamp("2026-03-03T08:00:00Z")


def test_the_second_look_scores_only_stories_placed_since_the_first(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(**MECHANICS)
    _index(nd, ALPHA, "a1", "AP", "2026-03-03T08:00:00Z")
    got = nd.store.articles.get(ids=["a1"], include=["embeddings", "metadatas"])
    vector = got["embeddings"][0]
    ts = got["metadatas"][0]["story_ts"]
    first = nd.store._story_neighbours(vector, vector[None, :], ts, "probe")
    assert [n.article_id for n in first] == ["a1"]
    chunks = _Counting(nd.store.chunks, "get")
    nd.store.chunks = chunks
    assert nd.store._later_neighbours(vector, vector[None, :], ts, "probe", {"a1"}) == []
    assert chunks.calls == 0  # a neighbour already scored is not read again
    later = nd.store._later_neighbours(vector, vector[None, :], ts, "probe", set())
    assert later == first


class _Recording:
    """A collection whose `get` calls are recorded, the rest passed through."""

    def __init__(self, inner: object) -> None:
        self.inner, self.gets = inner, []

    def get(self, **kwargs: object) -> object:
        self.gets.append(kwargs)
        return self.inner.get(**kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_neighbour_chunks_read_by_id_are_those_the_filter_finds(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(**MECHANICS)
    long_text = " ".join(f"{ALPHA} part{i} {KILO}" for i in range(40))
    _index(nd, long_text, "a1", "AP", "2026-03-03T08:00:00Z")
    got = nd.store.articles.get(ids=["a1"], include=["embeddings", "metadatas"])
    vector, meta = got["embeddings"][0], got["metadatas"][0]
    assert meta["chunks"] > 1
    mine = vector[None, :]
    chunks = _Recording(nd.store.chunks)
    nd.store.chunks = chunks
    by_id = nd.store._story_neighbours(vector, mine, meta["story_ts"], "probe")
    assert [sorted(g) for g in chunks.gets] == [["ids", "include"]]
    # A count that does not match the chunks found: read through the filter, as before.
    nd.store.articles.update(ids=["a1"], metadatas=[{"chunks": meta["chunks"] + 1}])
    chunks.gets.clear()
    filtered = nd.store._story_neighbours(vector, mine, meta["story_ts"], "probe")
    assert [sorted(g) for g in chunks.gets] == [["ids", "include"], ["include", "where"]]
    assert filtered == by_id
