"""Stories: the articles of several outlets about one event (clustered as they are stored,
vectorstore/stories.py), read as one unit.

- list: recent stories, filtered by time, outlet, number of outlets and a text query;
- detail: the articles by outlet, first and last seen, a timeline of when each report
  first appeared with its lead sentence as a verified citation, and the coverage table
  (service/coverage.py);
- summary and briefing: the existing engines on the story's articles only, so "where
  sources differ" compares reports of the same event; syndicated copies are read once and
  their outlets listed as "also published by";
- a question that names a story ("what do outlets say about story story-ab12?") is
  answered from that story's articles (``story_scope``, used by service/answer.py).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import ClassVar

from service.articles import resolve_filters
from service.context import Newsdesk
from service.coverage import UNKNOWN_OUTLET, coverage_markdown, coverage_table
from service.engines.extractive.engine import sentence_point
from service.engines.extractive.sentences import article_sentences, is_prose
from service.engines.protocol import BriefJob, SummaryJob
from service.errors import InvalidRequest, NothingFound
from service.models import (
    Citation,
    OutletArticles,
    StoryArticle,
    StoryBriefing,
    StoryCard,
    StoryChange,
    StoryDetail,
    StoryList,
    StorySummary,
    TimelineEntry,
)
from service.render import md_escape, sources_block
from service.requests import (
    MAX_SUMMARY_WORDS,
    Filters,
    StoriesQuery,
    StoryBriefingBody,
    StorySummaryBody,
)
from service.summarize import MAX_POINTS
from service.syndicated import copy_group, note_copies, one_per_copy_group
from service.verify import CitationLedger
from vectorstore.ingest import published_timestamp
from vectorstore.store import ArticleFilter, StoredArticle
from vectorstore.stories import Story

# Articles a story's summary or briefing reads at most: one of each outlet first, so a
# long-running story still has every outlet read, then the rest oldest first. Twice what
# a topic summary reads (service/articles.py), since all of them are on the one event.
MAX_STORY_ARTICLES = 24
# A story summary's default length: enough for one point per outlet read, at least the
# topic summary's default.
WORDS_PER_ARTICLE = 40
DEFAULT_SUMMARY_WORDS = 250
# Passages of keyword search read per story listed, to find the stories a text query
# matches.
HITS_PER_STORY = 4
# Story ids a question may name before the first that is stored is used.
MAX_NAMED_STORIES = 3

_RELATIVE = re.compile(r"([0-9]{1,4})([mhdw])")
_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# "story story-ab12", "story:story-ab12", "story-ab12", "story ab12" in a question.
_STORY_ID = re.compile(r"\bstory-[A-Za-z0-9][A-Za-z0-9_-]*")
_STORY_WORD = re.compile(r"\bstory[:\s]+([A-Za-z0-9][A-Za-z0-9_-]*)", re.IGNORECASE)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class UnknownStory(NothingFound):
    """No story, nor alias of one, has this id."""

    code: ClassVar[str] = "unknown_story"

    def __init__(self, story_id: str) -> None:
        super().__init__(f"unknown story id: {story_id}")
        self.story_id = story_id


def when_timestamp(value: str, *, now: float, end_of_day: bool = False) -> float:
    """Seconds since the epoch of a StoriesQuery ``since``/``until``: a time ago ("24h")
    counted back from ``now``, else the ISO date (already normalised by the model). A
    bare date as an upper bound means the end of that day."""
    relative = _RELATIVE.fullmatch(value)
    if relative:
        return now - int(relative[1]) * _SECONDS[relative[2]]
    ts = published_timestamp(value)
    if ts is None:  # the model lets nothing else through
        raise ValueError(f"not a date: {value!r}")
    return float(ts + (86399 if end_of_day and _DAY.fullmatch(value) else 0))


def story_card(story: Story) -> StoryCard:
    return StoryCard(
        id=story.id,
        title=story.title,
        outlets=list(story.outlets),
        outlets_count=len(story.outlets),
        articles=len(story.article_ids),
        first_seen=story.first_seen,
        last_seen=story.last_seen,
        aliases=list(story.aliases),
    )


def _oldest_first(article: StoredArticle) -> tuple[bool, float]:
    ts = published_timestamp(article.published_at)
    return (ts is None, float(ts or 0))


def lead_sentence_point(ledger: CitationLedger, article: StoredArticle) -> TimelineEntry | None:
    """The article's first whole sentence (its headline and byline are not prose), cited;
    None when it has none."""
    lead = next((s for s in article_sentences(article) if is_prose(s)), None)
    if lead is None:
        return None
    point = sentence_point(ledger, lead)
    return TimelineEntry(
        text=point.text,
        citations=point.citations,
        date=article.published_at,
        article_id=article.id,
        source=article.source,
    )


def copies_within(articles: Sequence[StoredArticle]) -> dict[str, list[str]]:
    """For each article, the outlets of the other articles of the story that ran the same
    text (its syndication group), sorted."""
    groups: dict[str, list[StoredArticle]] = defaultdict(list)
    for a in articles:
        groups[copy_group(a)].append(a)
    out: dict[str, list[str]] = {}
    for a in articles:
        names = {m.source or "source unknown" for m in groups[copy_group(a)] if m.id != a.id}
        if names:
            out[a.id] = sorted(names)
    return out


def read_set(
    articles: Sequence[StoredArticle], limit: int = MAX_STORY_ARTICLES
) -> list[StoredArticle]:
    """What a story's summary or briefing reads: one article per syndication group, one
    of each outlet before a second of any, at most ``limit``, oldest first."""
    distinct = one_per_copy_group(sorted(articles, key=_oldest_first))
    first_of_outlet: list[StoredArticle] = []
    more: list[StoredArticle] = []
    seen: set[str] = set()
    for a in distinct:
        if a.source is None or a.source not in seen:
            first_of_outlet.append(a)
            if a.source is not None:
                seen.add(a.source)
        else:
            more.append(a)
    chosen = {a.id for a in (first_of_outlet + more)[:limit]}
    return [a for a in distinct if a.id in chosen]


def outlets_not_cited(
    articles: Sequence[StoredArticle], citations: Sequence[Citation]
) -> list[str]:
    """The story's outlets that no citation stands for: an outlet counts as cited when
    its article, or another outlet's copy of the same text, is cited."""
    cited_groups = {copy_group(a) for a in articles if a.id in {c.article_id for c in citations}}
    covered = {a.source for a in articles if copy_group(a) in cited_groups}
    return sorted({a.source for a in articles if a.source} - covered)


class StoryService:
    def __init__(self, newsdesk: Newsdesk) -> None:
        self.nd = newsdesk

    # ---- reading ------------------------------------------------------------------

    def story(self, story_id: str) -> Story:
        """The story with this id or alias (the canonical story either way)."""
        story = self.nd.store.get_story(story_id)
        if story is None:
            raise UnknownStory(story_id)
        return story

    def articles(self, story: Story) -> list[StoredArticle]:
        """The story's stored articles, oldest first (one deleted since is left out)."""
        found = self.nd.store.get_articles(list(story.article_ids))
        return [found[a] for a in story.article_ids if a in found]

    def list(self, query: StoriesQuery, *, now: float | None = None) -> StoryList:
        now = time.time() if now is None else now
        outlets = None
        if query.outlets:
            # Outlet names as stored, whatever their case; an unknown one is an error
            # listing the known ones (as for every other filter), not an empty list.
            flt = resolve_filters(self.nd, Filters(sources=query.outlets))
            outlets = list(flt.sources or ()) if flt else None
        ids = None
        if query.q and query.q.strip():
            ids = self.matching(query.q, query.limit)
            if not ids:
                return StoryList(stories=[])
        stories = self.nd.store.list_stories(
            since_ts=when_timestamp(query.since, now=now) if query.since else None,
            until_ts=when_timestamp(query.until, now=now, end_of_day=True) if query.until else None,
            outlets=outlets,
            min_outlets=query.min_outlets,
            ids=ids,
            limit=query.limit,
        )
        return StoryList(stories=[story_card(s) for s in stories])

    def matching(self, text: str, limit: int) -> list[str]:
        """Ids of the stories whose articles keyword search finds for ``text``, best
        first. Keyword search, not hybrid: dense search always returns the nearest
        passages, related or not, so every query would match some story."""
        hits = self.nd.retriever.search(text, top_k=limit * HITS_PER_STORY, mode="keyword")
        order: list[str] = []
        for h in hits:
            if h.article_id not in order:
                order.append(h.article_id)
        of = self.nd.store.story_ids_of(order)
        return list(dict.fromkeys(of[a] for a in order if a in of))

    def detail(self, story_id: str) -> StoryDetail:
        story = self.story(story_id)
        articles = self.articles(story)
        copies = copies_within(articles)
        by_outlet: dict[str | None, list[StoryArticle]] = defaultdict(list)
        for a in articles:
            group = copy_group(a)
            by_outlet[a.source].append(
                StoryArticle(
                    article_id=a.id,
                    title=a.title,
                    source=a.source,
                    published_at=a.published_at,
                    url=a.url,
                    copy_of=group if group != a.id else None,
                )
            )
        ledger = CitationLedger([])
        timeline: list[TimelineEntry] = []
        # A syndicated copy is the same report: it appears once, under its first copy,
        # with the other outlets that ran it.
        for a in one_per_copy_group(sorted(articles, key=_oldest_first)):
            entry = lead_sentence_point(ledger, a) or TimelineEntry(
                text="", citations=[], date=a.published_at, article_id=a.id, source=a.source
            )
            entry.also_published_by = copies.get(a.id, [])
            timeline.append(entry)
        return StoryDetail(
            id=story.id,
            title=story.title,
            aliases=list(story.aliases),
            first_seen=story.first_seen,
            last_seen=story.last_seen,
            outlets=list(story.outlets),
            outlets_count=len(story.outlets),
            articles=len(story.article_ids),
            by_outlet=[
                OutletArticles(outlet=outlet, articles=items)
                for outlet, items in sorted(
                    by_outlet.items(), key=lambda kv: (kv[0] is None, (kv[0] or "").casefold())
                )
            ],
            timeline=timeline,
            citations=ledger.citations,
            coverage=coverage_table(articles),
            events=[
                StoryChange(
                    kind=e.kind,
                    at=e.at,
                    story_ids=list(e.story_ids),
                    article_ids=list(e.article_ids),
                )
                for e in story.events
            ],
        )

    # ---- summary and briefing -------------------------------------------------------

    def summary(self, story_id: str, body: StorySummaryBody) -> StorySummary:
        story = self.story(story_id)
        articles = self.articles(story)
        read = read_set(articles)
        if not read:
            raise NothingFound(f"the articles of {story.id} are no longer stored")
        max_words = body.max_words or min(
            MAX_SUMMARY_WORDS, max(DEFAULT_SUMMARY_WORDS, WORDS_PER_ARTICLE * len(read))
        )
        # The engine a topic summary calls, with room for a point from every article
        # read: the summary is to cite every outlet of the story.
        job = SummaryJob(read, None, max_words, max(MAX_POINTS, len(read)))
        result = note_copies(self.nd, self.nd.engine.summarize(job))
        result.topic = story.title
        return StorySummary(
            **dict(result),
            story_id=story.id,
            outlets_not_cited=outlets_not_cited(articles, result.citations),
        )

    def briefing(self, story_id: str, body: StoryBriefingBody) -> StoryBriefing:
        story = self.story(story_id)
        articles = self.articles(story)
        if body.as_of:
            # As of a date: nothing published after it; undated articles stay in.
            cutoff = published_timestamp(body.as_of)
            articles = [
                a
                for a in articles
                if (ts := published_timestamp(a.published_at)) is None
                or cutoff is None
                or ts <= cutoff
            ]
        read = read_set(articles)
        if not read:
            raise NothingFound(f"none of the articles of {story.id} was published by then")
        job = BriefJob(read, story.title, body.as_of, body.audience)
        result = note_copies(self.nd, self.nd.engine.brief(job))
        return StoryBriefing(
            **dict(result),
            story_id=story.id,
            outlets_not_cited=outlets_not_cited(articles, result.citations),
        )

    def split(self, story_id: str, article_ids: Sequence[str]) -> StoryCard:
        """Move ``article_ids`` out of the story into a new one (recorded on both)."""
        story = self.story(story_id)
        stray = [a for a in article_ids if a not in story.article_ids]
        if stray:
            raise InvalidRequest(
                f"not articles of {story.id}: {', '.join(stray)}", field="article_ids", value=stray
            )
        if set(article_ids) >= set(story.article_ids):
            raise InvalidRequest(
                "a split must leave at least one article in the story", field="article_ids"
            )
        return story_card(self.nd.store.split_story(story.id, list(article_ids)))

    def place_unplaced(self) -> int:
        """Put every stored article that has no story into one; how many were placed."""
        return self.nd.store.place_unplaced_articles()


# ---- questions that name a story (service/answer.py) -------------------------------------


def named_story(newsdesk: Newsdesk, question: str) -> tuple[Story, str] | None:
    """The first stored story a question names, with the words that named it."""
    candidates: list[tuple[str, str]] = []
    for m in _STORY_WORD.finditer(question):
        candidates.append((m.group(1), m.group(0)))
    for m in _STORY_ID.finditer(question):
        candidates.append((m.group(0), m.group(0)))
    seen: set[str] = set()
    for story_id, words in candidates:
        if story_id in seen:
            continue
        seen.add(story_id)
        if len(seen) > MAX_NAMED_STORIES:
            break
        story = newsdesk.store.get_story(story_id)
        if story is not None:
            return story, words
    return None


def story_scope(
    newsdesk: Newsdesk, question: str, filters: ArticleFilter | None
) -> tuple[str, ArticleFilter | None]:
    """A question that names a story, read as one about that story: its articles are the
    only evidence (within any filters the request has), and the story's id, which no
    article contains, is replaced by its title, which retrieval and the relevance rule
    can match. Any other question is returned as it was."""
    found = named_story(newsdesk, question)
    if found is None:
        return question, filters
    story, words = found
    members = tuple(story.article_ids)
    base = filters or ArticleFilter()
    if base.article_ids:
        members = tuple(a for a in members if a in base.article_ids)
    # Filters that leave none of the story's articles leave no evidence: an id no
    # article has, rather than no filter at all.
    scoped = dataclasses.replace(base, article_ids=members or ("",))
    return question.replace(words, f"the story “{story.title}”", 1), scoped


# ---- Markdown ----------------------------------------------------------------------------


def story_markdown(detail: StoryDetail) -> str:
    """A story as Markdown: what it is, its articles by outlet, the timeline with its
    cited lead sentences, the coverage table and the sources; untrusted text escaped."""
    lines = [f"# {md_escape(detail.title)}", ""]
    aliases = f" (also {md_escape(', '.join(detail.aliases))})" if detail.aliases else ""
    lines.append(
        f"_{md_escape(detail.id)}{aliases} · {detail.outlets_count} outlets · "
        f"{detail.articles} articles · first seen {md_escape(detail.first_seen or 'undated')}"
        f" · last seen {md_escape(detail.last_seen or 'undated')}_"
    )
    lines += ["", "## Articles by outlet"]
    for group in detail.by_outlet:
        lines.append(f"- **{md_escape(group.outlet or UNKNOWN_OUTLET)}**")
        for a in group.articles:
            copy = f", copy of {md_escape(a.copy_of)}" if a.copy_of else ""
            lines.append(
                f"  - {md_escape(a.title)} ({md_escape(a.published_at or 'undated')}{copy})"
                f" — article {md_escape(a.article_id)}"
            )
    lines += ["", "## Timeline"]
    for t in detail.timeline:
        also = f"; also published by {md_escape(', '.join(t.also_published_by))}"
        lead = (
            f"{md_escape(t.text)} {''.join(f'[{n}]' for n in t.citations)}"
            if t.text
            else f"{md_escape(t.source or UNKNOWN_OUTLET)}: no sentence to quote"
        )
        lines.append(
            f"- **{md_escape(t.date or 'undated')}**{also if t.also_published_by else ''} — {lead}"
        )
    lines += ["", "## Coverage and framing", "", coverage_markdown(detail.coverage)]
    lines += sources_block(detail.citations)
    return "\n".join(lines)
