"""Syndicated copies count once: one article per copy group in what is cited and balanced, the
other outlets that ran the same text listed beside it ("also published by")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from service.context import Newsdesk
from service.models import Briefing, Summary
from vectorstore.store import StoredArticle

R = TypeVar("R", Summary, Briefing)


def copy_group(article: StoredArticle) -> str:
    """Copies share their group's id (the first stored copy); other articles are their own."""
    return article.syndication_group or article.id


def one_per_copy_group(articles: Iterable[StoredArticle]) -> list[StoredArticle]:
    """The first article of each story, in order: five outlets' copies of one wire story
    are one source, not five."""
    seen: set[str] = set()
    out: list[StoredArticle] = []
    for article in articles:
        if copy_group(article) not in seen:
            seen.add(copy_group(article))
            out.append(article)
    return out


def other_outlets(newsdesk: Newsdesk, articles: Sequence[StoredArticle]) -> dict[str, list[str]]:
    """For each article, the outlets of the other stored copies of its story."""
    groups = {a.id: copy_group(a) for a in articles}
    members = newsdesk.store.syndicated_copies(list(set(groups.values())))
    copies = newsdesk.store.article_meta([m for ms in members.values() for m in ms])
    out: dict[str, list[str]] = {}
    for aid, group in groups.items():
        names = {
            (copies.get(m) or {}).get("source") or "source unknown"
            for m in members.get(group, [])
            if m != aid
        }
        if names:
            out[aid] = sorted(names)
    return out


def note_copies(newsdesk: Newsdesk, result: R) -> R:
    """The result with each cited article's other outlets filled in."""
    ids = {b.article_id for b in result.balance}
    if isinstance(result, Briefing):
        ids |= {s.article_id for s in result.sources}
    if not ids:
        return result
    outlets = other_outlets(newsdesk, list(newsdesk.store.get_articles(sorted(ids)).values()))
    for share in result.balance:
        share.also_published_by = outlets.get(share.article_id, [])
    if isinstance(result, Briefing):
        for source in result.sources:
            source.also_published_by = outlets.get(source.article_id, [])
    return result
