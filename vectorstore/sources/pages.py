"""A fetched page as an article: its text from trafilatura, every piece of metadata from
metadata only.

The feed entry speaks first (the outlet's own statement about its item), then the page's
markup: ``<link rel=canonical>`` and ``og:url`` for the identity, ``og:site_name`` (else
JSON-LD's publisher, the feed's title, the host) for the outlet,
``article:published_time`` / ``article:modified_time``, JSON-LD ``datePublished`` /
``dateModified`` and ``<time datetime>`` for the dates. Nothing is read from the body text:
a page whose markup gives no date is stored undated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from vectorstore.ingest import (
    Article,
    IngestError,
    extract_article,
    make_article,
    normalize_published_at,
)
from vectorstore.sources.feeds import Entry
from vectorstore.sources.identity import InvalidURL, canonical_url, url_article_id

# JSON-LD types that describe the article itself (not the site, a breadcrumb or a video).
_ARTICLE_TYPES = {
    "article",
    "newsarticle",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "blogposting",
    "liveblogposting",
    "webpage",
    "report",
}


# Shorter than any one-sentence news brief: a menu, a cookie wall, an error page.
MIN_TEXT_CHARS = 40


@dataclass
class PageMeta:
    canonical: str | None = None
    og_url: str | None = None
    title: str | None = None
    site_name: str | None = None
    author: str | None = None
    published_at: str | None = None
    updated_at: str | None = None


@dataclass
class Page:
    article: Article
    canonical_url: str
    updated_at: str | None


def _first(*values: Any) -> Any:
    return next((v for v in values if v), None)


def _jsonld_objects(data: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stack = [data]
    while stack and len(found) < 50:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            found.append(item)
            if "@graph" in item:
                stack.append(item["@graph"])
    return found


def _name(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        return _name(value.get("name"))
    if isinstance(value, list):
        names = [n for n in (_name(v) for v in value) if n]
        return ", ".join(names) or None
    return None


def read_metadata(html: str, page_url: str) -> PageMeta:
    """The metadata the page's markup states; nothing from its text."""
    import lxml.html

    meta = PageMeta()
    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return meta
    for link in tree.iterfind(".//link[@href]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            meta.canonical = urljoin(page_url, link.get("href").strip())
            break
    props: dict[str, str] = {}
    for tag in tree.iterfind(".//meta[@content]"):
        key = (tag.get("property") or tag.get("name") or "").strip().lower()
        if key and key not in props:
            props[key] = tag.get("content").strip()
    if props.get("og:url"):
        meta.og_url = urljoin(page_url, props["og:url"])
    meta.site_name = props.get("og:site_name") or None
    meta.title = props.get("og:title") or None
    meta.published_at = normalize_published_at(props.get("article:published_time"))
    meta.updated_at = normalize_published_at(props.get("article:modified_time"))
    author = props.get("author") or props.get("article:author")
    # article:author is often a profile URL, which names no one.
    if author and not author.startswith(("http://", "https://")):
        meta.author = author

    for script in tree.iterfind(".//script[@type]"):
        if script.get("type", "").strip().lower() != "application/ld+json" or not script.text:
            continue
        try:
            data = json.loads(script.text)
        except (ValueError, RecursionError):
            continue
        for obj in _jsonld_objects(data):
            types = obj.get("@type")
            names = {t.lower() for t in (types if isinstance(types, list) else [types]) if t}
            if not names & _ARTICLE_TYPES:
                continue
            meta.published_at = meta.published_at or normalize_published_at(
                obj.get("datePublished") if isinstance(obj.get("datePublished"), str) else None
            )
            meta.updated_at = meta.updated_at or normalize_published_at(
                obj.get("dateModified") if isinstance(obj.get("dateModified"), str) else None
            )
            meta.author = meta.author or _name(obj.get("author"))
            meta.site_name = meta.site_name or _name(obj.get("publisher"))
            meta.title = meta.title or _name(obj.get("headline"))

    if meta.published_at is None:
        times = [t for t in tree.iterfind(".//time[@datetime]")]
        # A <time> marked as the publication date wins over the first one on the page.
        marked = [
            t for t in times if t.get("itemprop") == "datePublished" or t.get("pubdate") is not None
        ]
        for element in marked or times[:1]:
            meta.published_at = normalize_published_at(element.get("datetime").strip())
    return meta


def _extract_text(html: str, url: str) -> tuple[str, dict[str, Any]]:
    # Its date is not used (read_metadata's are); the extraction keeps dates out of the
    # body text anyway.
    text, doc = extract_article(html, url)
    if len(text.strip()) < MIN_TEXT_CHARS:
        # What is left of a page without an article (a menu, a cookie wall) is not one.
        raise IngestError(f"no article text found in the page (only {len(text.strip())} chars)")
    return text, doc


def _safe_canonical(*candidates: str | None) -> str | None:
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return canonical_url(candidate)
        except InvalidURL:
            continue
    return None


def page_article(
    html: str,
    url: str,
    *,
    entry: Entry | None = None,
    feed_title: str | None = None,
    origin: str | None = None,
) -> Page:
    """The article a page holds, identified by its canonical URL. Raises ``IngestError``
    when no article text can be extracted: a page is stored whole or not at all."""
    meta = read_metadata(html, url)
    text, doc = _extract_text(html, url)
    canonical = _safe_canonical(meta.canonical, meta.og_url, entry.link if entry else None, url)
    if canonical is None:
        raise IngestError(f"no usable URL for {url}")
    host = urlsplit(canonical).hostname
    updated = _first(entry.updated_at if entry else None, meta.updated_at)
    published = _first(entry.published_at if entry else None, meta.published_at)
    # A feed's <updated> equal to its published date says nothing was changed.
    if updated == published:
        updated = None
    article = make_article(
        text,
        title=_first(entry.title if entry else None, meta.title, doc.get("title")),
        source=_first(meta.site_name, feed_title, doc.get("sitename"), host),
        url=canonical,
        author=_first(entry.author if entry else None, meta.author, doc.get("author")),
        published_at=published,
        article_id=url_article_id(canonical),
        origin=origin or url,
        updated_at=updated,
    )
    return Page(article=article, canonical_url=canonical, updated_at=article.updated_at)
