"""Read files and records into articles with a canonical text, metadata and a stable id.

Reading never writes: the source file is left as it was. Turning articles into chunks
and storing them is the indexer's job (``vectorstore.indexer``).
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from vectorstore.canonical import canonicalize, headline

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
RECORD_SUFFIXES = {".json", ".jsonl", ".ndjson"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES
MAX_FILE_BYTES = 50_000_000

# A number for published_at is a Unix timestamp, trusted only when it falls in this
# window. Outside it in seconds but inside it in milliseconds (JavaScript's Date.now(),
# 1700000000000) it is read as milliseconds: the two readings only overlap for dates
# within 84 days of 1970-01-01, where seconds win. Anything else is rejected, never
# clamped or guessed.
EARLIEST_PUBLISHED = datetime(1800, 1, 1, tzinfo=UTC)
LATEST_PUBLISHED = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LO = int((EARLIEST_PUBLISHED - _EPOCH).total_seconds())
_HI = int((LATEST_PUBLISHED - _EPOCH).total_seconds())


class IngestError(ValueError):
    """One input could not become an article; the batch goes on without it."""


@dataclass
class Article:
    id: str
    text: str
    title: str
    content_hash: str
    source: str | None = None
    url: str | None = None
    author: str | None = None
    published_at: str | None = None
    origin: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Set when the id is only the content hash: the stored article with this identity, if
    # any, is the one this text revises.
    identity: str | None = None
    # When the outlet says it changed the article after publication (ISO 8601).
    updated_at: str | None = None

    def metadata(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "source": self.source,
            "url": self.url,
            "author": self.author,
            "published_at": self.published_at,
            "origin": self.origin,
            "content_hash": self.content_hash,
            "identity": self.identity,
        }


@dataclass
class Failure:
    origin: str
    reason: str


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _timestamp_to_iso(value: int | float) -> str:
    shown = json.dumps(value)  # what the JSON said: 1e+20, NaN, Infinity
    if len(shown) > 40:
        shown = f"{shown[:20]}… ({len(shown)} digits)"
    if isinstance(value, float) and not math.isfinite(value):
        raise IngestError(f"published_at: {shown} is not a date; use ISO 8601 or Unix seconds")
    # Compared before any arithmetic: an integer with hundreds of digits is valid JSON
    # and would overflow a float or a timedelta.
    if _LO <= value < _HI:
        return (_EPOCH + timedelta(seconds=value)).isoformat()
    if _LO * 1000 <= value < _HI * 1000:
        return (_EPOCH + timedelta(milliseconds=value)).isoformat()
    raise IngestError(
        f"published_at: {shown} is not a plausible Unix timestamp (seconds or milliseconds "
        f"between {EARLIEST_PUBLISHED.year} and {LATEST_PUBLISHED.year}); use ISO 8601"
    )


def normalize_published_at(value: Any) -> str | None:
    """ISO 8601 or None. An unparseable date string is dropped rather than guessed.

    Numbers are Unix timestamps (seconds, or milliseconds, see ``EARLIEST_PUBLISHED``).
    A number that cannot be a publication date (NaN, infinite, out of range) or a boolean
    raises ``IngestError`` naming the field: it is corrupt data, not a date format we
    don't read, and storing the record without its date would hide that.
    """
    if value is None or value == "":
        return None
    # bool is an int subclass: without this, true would be stored as 1970-01-01.
    if isinstance(value, bool):
        raise IngestError(
            f"published_at: {json.dumps(value)} is not a date; use ISO 8601 or Unix seconds"
        )
    if isinstance(value, (int, float)):
        return _timestamp_to_iso(value)
    raw = str(value).strip()
    try:
        # A bare date stays a date: adding midnight would invent a time.
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return None


def published_timestamp(published_at: str | None) -> int | None:
    """Seconds since the epoch, for range filters; naive dates count as UTC."""
    if not published_at:
        return None
    parsed = datetime.fromisoformat(published_at)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _clean_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def make_article(
    raw_text: str,
    *,
    title: str | None = None,
    source: str | None = None,
    url: str | None = None,
    author: str | None = None,
    published_at: Any = None,
    article_id: str | None = None,
    origin: str | None = None,
    identity: str | None = None,
    updated_at: Any = None,
) -> Article:
    """Build one article from raw text and whatever metadata came with it.

    Its id, so that an edited text is a new revision of the same article rather than a new
    one: the explicit ``article_id``, else one made from the canonical ``url``, else the
    content hash, which the indexer swaps for the id already stored under the same
    ``identity`` (a file's path: see ``file_identity``)."""
    if not isinstance(raw_text, str):
        raise IngestError("'text' must be a string")
    if "\x00" in raw_text:
        raise IngestError("text contains NUL bytes (binary data?)")
    text = canonicalize(raw_text)
    if not text:
        raise IngestError("no text after removing whitespace and boilerplate")
    # Zero-width and bidi controls are format characters (Cf): alone they show nothing.
    if all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text):
        raise IngestError("no visible text (only zero-width or control characters)")
    digest = content_hash(text)
    warnings: list[str] = []
    iso_date = normalize_published_at(published_at)
    if published_at not in (None, "") and iso_date is None:
        warnings.append(f"published_at {published_at!r} is not ISO 8601; stored as unknown")
    clean_id = _clean_str(article_id)
    if clean_id in (".", ".."):
        raise IngestError("id cannot be '.' or '..' (it could not be used in a URL)")
    if clean_id is not None and (len(clean_id) > 128 or any(c in clean_id for c in "/\\\n")):
        raise IngestError("id must be at most 128 characters with no slashes or newlines")
    given_id = clean_id or _url_identity(_clean_str(url))
    return Article(
        id=given_id or digest[:16],
        identity=None if given_id else identity,
        updated_at=normalize_published_at(updated_at) if updated_at not in (None, "") else None,
        text=text,
        title=_clean_str(title) or headline(text),
        content_hash=digest,
        source=_clean_str(source),
        url=_clean_str(url),
        author=_clean_str(author),
        published_at=iso_date,
        origin=origin,
        warnings=warnings,
    )


# The first block is all a title needs; parsing a 50 MB file for it would not be.
_TITLE_PARSE_CHARS = 20_000


def markdown_title(text: str) -> str | None:
    """A Markdown article's title: its first block as plain text, markup removed ("# Flood
    in *Ardo*" is "Flood in Ardo"), a heading whole and a paragraph cut as ``headline``
    cuts one. The canonical text keeps the markup: citations index the file as written."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text[:_TITLE_PARSE_CHARS])
    first = next((t for t in tokens if t.type == "inline"), None)
    if first is None or not tokens or tokens[0].type not in ("heading_open", "paragraph_open"):
        return None
    parts = []
    for child in first.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    plain = " ".join("".join(parts).split())
    if not plain:
        return None
    return plain if tokens[0].type == "heading_open" else headline(plain)


def _decode(data: bytes, origin: str) -> str:
    if not data.strip():
        raise IngestError("empty file")
    if b"\x00" in data[:8192]:
        raise IngestError("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not valid UTF-8 (byte {exc.start})") from exc


def extract_article(html: str, url: str | None = None) -> tuple[str, dict[str, Any]]:
    """The article body of a page and trafilatura's metadata of it; IngestError if none."""
    # trafilatura finds the article body and drops navigation, ads and comment blocks.
    import trafilatura

    # htmldate's extensive search reads dates out of the body text ("first proposed in
    # 2019" became 2019-01-01); without it only markup meant as a date counts: meta tags,
    # JSON-LD, <time> and date-classed elements. original_date: published, not updated.
    extracted = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if extracted is None:
        raise IngestError("no article text found in the HTML")
    doc = extracted if isinstance(extracted, dict) else extracted.as_dict()
    text = doc.get("text") or ""
    if not text.strip():
        raise IngestError("no article text found in the HTML")
    return text, doc


def _html_to_text(html: str) -> tuple[str, dict[str, Any]]:
    text, doc = extract_article(html)
    meta = {
        "title": doc.get("title"),
        "source": doc.get("sitename") or doc.get("hostname"),
        "url": doc.get("url"),
        "author": doc.get("author"),
        "published_at": doc.get("date"),
    }
    return text, meta


def _record_to_article(record: Any, origin: str) -> Article:
    if not isinstance(record, dict):
        raise IngestError("record is not a JSON object")
    if "text" not in record or record["text"] in (None, ""):
        raise IngestError("record has no 'text'")
    return make_article(
        record["text"],
        title=record.get("title"),
        source=record.get("source"),
        url=record.get("url"),
        author=record.get("author"),
        published_at=record.get("published_at"),
        article_id=_clean_str(record.get("id")),
        origin=origin,
    )


def _url_identity(url: str | None) -> str | None:
    from vectorstore.sources.identity import InvalidURL, url_article_id

    if not url:
        return None
    try:
        return url_article_id(url)
    except InvalidURL:
        return None


def file_identity(path: Path) -> str:
    """What the one article of a text or HTML file is, when its text has no id or URL: the
    file, so editing it and ingesting it again makes a new revision, not a second article.
    Its first text's content hash stays its id (see ``Indexer``)."""
    return "file:" + str(path.resolve())


def identity_id(identity: str) -> str:
    """The id of an article known by its identity, when its text's hash is taken."""
    return "doc-" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def read_file(path: Path, *, identity: bool = True) -> Iterator[Article | Failure]:
    """Articles in one file; a bad record yields a Failure and reading goes on.

    ``identity``: a text or HTML file's article is known by the file (see
    ``file_identity``); off for a temporary copy of someone else's upload."""
    origin = str(path)
    known_as = file_identity(path) if identity else None
    suffix = path.suffix.lower()
    try:
        if suffix not in SUPPORTED_SUFFIXES:
            raise IngestError(f"unsupported file type '{suffix or path.name}'")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise IngestError(f"file larger than {MAX_FILE_BYTES // 1_000_000} MB")
        text = _decode(path.read_bytes(), origin)
    except (IngestError, OSError) as exc:
        yield Failure(origin, str(exc))
        return

    if suffix in TEXT_SUFFIXES:
        try:
            title = markdown_title(text) if suffix in MARKDOWN_SUFFIXES else None
            yield make_article(text, title=title, origin=origin, identity=known_as)
        except IngestError as exc:
            yield Failure(origin, str(exc))
    elif suffix in HTML_SUFFIXES:
        try:
            body, meta = _html_to_text(text)
            yield make_article(body, origin=origin, identity=known_as, **meta)
        except IngestError as exc:
            yield Failure(origin, str(exc))
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Failure(origin, f"invalid JSON: {exc.msg} at line {exc.lineno}")
            return
        except (ValueError, RecursionError):
            yield Failure(origin, "invalid JSON: nested too deeply or a number too long")
            return
        records = data if isinstance(data, list) else [data]
        for i, record in enumerate(records):
            yield _safe_record(record, f"{origin}[{i}]" if isinstance(data, list) else origin)
    else:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{origin}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Failure(where, f"invalid JSON: {exc.msg}")
                continue
            except (ValueError, RecursionError):
                yield Failure(where, "invalid JSON: nested too deeply or a number too long")
                continue
            yield _safe_record(record, where)


def _safe_record(record: Any, where: str) -> Article | Failure:
    try:
        return _record_to_article(record, where)
    except IngestError as exc:
        return Failure(where, str(exc))


def expand_paths(paths: Iterable[Path]) -> Iterator[Path | Failure]:
    """Files under the given paths, folders walked recursively in a stable order."""
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                yield child
        elif path.is_file():
            yield path
        else:
            yield Failure(str(path), "no such file or folder")


def read_paths(paths: Iterable[Path]) -> Iterator[Article | Failure]:
    for item in expand_paths(paths):
        if isinstance(item, Failure):
            yield item
        else:
            yield from read_file(item)


def count_records(path: Path) -> int:
    """How many items ``read_file(path)`` will yield, without building the articles: the
    total a progress display counts towards."""
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        return 1
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return 1
        text = _decode(path.read_bytes(), str(path))
    except (IngestError, OSError):
        return 1
    if suffix == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return 1
        return len(data) if isinstance(data, list) else 1
    return sum(1 for line in text.splitlines() if line.strip())
