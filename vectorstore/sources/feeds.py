"""What a fetched source is (a feed, a news sitemap or a page) and the entries of a feed or
sitemap. RSS 0.9x-2.0, RDF and Atom are read by feedparser, which copes with the broken
feeds real outlets publish; news sitemaps (``<urlset>`` with ``<news:news>``) by lxml,
with entities and network access off."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from vectorstore.ingest import normalize_published_at

Kind = Literal["feed", "sitemap", "page"]
KINDS: tuple[Kind, ...] = ("feed", "sitemap", "page")

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
# The root element decides: <rss>, <feed> (Atom), <rdf:RDF> (RSS 1.0), <urlset>.
_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(rss|feed|RDF|urlset|sitemapindex|html)\b", re.I)


class FeedError(ValueError):
    """A feed or sitemap we cannot read."""

    code = "bad_feed"


@dataclass
class Entry:
    """One item of a feed or sitemap: where the article is and the metadata the feed gives
    for it (which wins over the page's own, being the outlet's statement about its item)."""

    link: str
    title: str | None = None
    author: str | None = None
    published_at: str | None = None
    updated_at: str | None = None
    # The entry's own text (content:encoded, Atom content, else the summary): the article
    # when its page cannot be fetched or read.
    content_html: str | None = None


@dataclass
class Feed:
    title: str | None
    entries: list[Entry] = field(default_factory=list)


def detect_kind(content_type: str, body: bytes) -> Kind:
    """Feed, sitemap or page, from the content type and, when that is vague (XML, plain
    text, nothing), from the document's root element."""
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/rss+xml", "application/atom+xml", "application/rdf+xml"):
        return "feed"
    head = body[:4096].lstrip()
    match = _ROOT.search(head)
    if match:
        root = match.group(1).decode("ascii").lower()
        if root in ("rss", "feed", "rdf"):
            return "feed"
        if root in ("urlset", "sitemapindex"):
            return "sitemap"
        return "page"
    if media in ("text/html", "application/xhtml+xml"):
        return "page"
    if media.endswith("xml"):
        return "feed"  # feedparser will say if it is not one
    return "page"


def _struct_to_iso(value: Any) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC).isoformat()
    except (OverflowError, TypeError, ValueError):
        return None


def _own(item: Any, key: str) -> Any:
    # feedparser answers a missing published_parsed with updated_parsed (and warns):
    # an update time is not a publication time.
    return dict.get(item, key)


def parse_feed(body: bytes) -> Feed:
    """RSS or Atom. A feed with recoverable errors still gives its entries (feedparser's
    ``bozo`` flag is set for a wrong charset too); one with none is an error."""
    import feedparser

    # Bytes, never a string: given a string feedparser would treat it as a URL and fetch.
    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=True)
    if parsed.bozo and not parsed.entries:
        raise FeedError(f"malformed feed: {parsed.get('bozo_exception')}")
    if not parsed.entries and not parsed.feed:
        raise FeedError("not a feed (no channel and no entries)")
    entries = []
    for item in parsed.entries:
        link = item.get("link") or ""
        if not link:
            continue
        content = None
        if item.get("content"):
            content = max((c.get("value") or "" for c in item["content"]), key=len) or None
        entries.append(
            Entry(
                link=link,
                title=item.get("title") or None,
                author=item.get("author") or None,
                published_at=_struct_to_iso(_own(item, "published_parsed")),
                updated_at=_struct_to_iso(_own(item, "updated_parsed")),
                content_html=content or item.get("summary") or None,
            )
        )
    return Feed(title=parsed.feed.get("title") or None, entries=entries)


def parse_sitemap(body: bytes) -> Feed:
    """A news sitemap: each ``<url>``'s ``<loc>`` with its ``<news:title>`` and
    ``<news:publication_date>``; the outlet is ``<news:publication><news:name>``."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"malformed sitemap: {exc}") from exc
    name = etree.QName(root).localname
    if name == "sitemapindex":
        children = [loc.text.strip() for loc in root.iter(f"{{{SITEMAP_NS}}}loc") if loc.text]
        raise FeedError(
            "a sitemap index, not a news sitemap; add the sitemaps it lists instead: "
            + ", ".join(children[:5])
            + (" …" if len(children) > 5 else "")
        )
    if name != "urlset":
        raise FeedError(f"not a sitemap (root element <{name}>)")
    title = None
    entries = []
    for url in root.iter(f"{{{SITEMAP_NS}}}url"):
        loc = url.findtext(f"{{{SITEMAP_NS}}}loc")
        if not loc or not loc.strip():
            continue
        news = url.find(f"{{{NEWS_NS}}}news")
        entry = Entry(link=loc.strip())
        if news is not None:
            entry.title = (news.findtext(f"{{{NEWS_NS}}}title") or "").strip() or None
            entry.published_at = normalize_published_at(
                (news.findtext(f"{{{NEWS_NS}}}publication_date") or "").strip() or None
            )
            outlet = news.findtext(f"{{{NEWS_NS}}}publication/{{{NEWS_NS}}}name")
            title = title or (outlet.strip() if outlet else None)
        lastmod = url.findtext(f"{{{SITEMAP_NS}}}lastmod")
        if lastmod:
            entry.updated_at = normalize_published_at(lastmod.strip())
        entries.append(entry)
    return Feed(title=title, entries=entries)


def parse_entries(kind: Kind, body: bytes) -> Feed:
    if kind == "feed":
        return parse_feed(body)
    if kind == "sitemap":
        return parse_sitemap(body)
    raise FeedError(f"a {kind} has no entries")
