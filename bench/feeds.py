"""Following a feed: articles per second from a local feed server with 2,000 items through
fetch -> extract -> chunk -> embed -> store, and where the time goes.

The server (tests/feed_server.py, real HTTP on 127.0.0.1) serves one RSS feed whose items
link to HTML pages. The pages carry Multi-News source documents (real news text) with the
metadata an outlet's page has (canonical link, og:site_name, article:published_time) and a
navigation bar and footer for trafilatura to strip. There are fewer distinct documents
than items, so each page adds its item number to its headline and first paragraph: every
page is a distinct article with a distinct text, and the bench says how many distinct
documents were used. Then the feed is polled again with nothing changed but its ETag, so
every page answers 304: what a routine poll of an unchanged outlet costs.

    python -m bench.feeds [--items 2000] [--data FILE] [--hashing]

``--hashing`` swaps the model for a bag-of-words stand-in, to see the rest of the pipeline
without the embedding (the numbers in the README are the real model's).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SHARED_EVAL, embedder, emit, quiet, rel, require_files, table
from service.context import Newsdesk
from service.settings import Settings
from service.sources import Sources
from tests.feed_server import article_html, feed_server, rss


def documents(data: Path) -> list[str]:
    docs = []
    for line in data.read_text("utf-8").splitlines():
        for doc in json.loads(line)["documents"]:
            if len(doc.split()) >= 80:
                docs.append(doc)
    return docs


def paragraphs_of(doc: str) -> list[str]:
    return [p.strip() for p in doc.split("\n") if p.strip()]


def run(items: int, data: Path, hashing: bool) -> dict[str, Any]:
    quiet()
    docs = documents(data)
    with tempfile.TemporaryDirectory() as tmp, feed_server() as server:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            llm_base_url=None,
            llm_api_key=None,
            index_check_seconds=0.0,
            # One local host serves everything: the per-host interval would measure
            # itself, not the pipeline. Two requests at a time, as by default.
            sources_host_interval=0.0,
            sources_allow_private=True,  # the feed server is on 127.0.0.1
            sources_max_items=items,
        )
        if hashing:
            from tests.conftest import HashingEmbedder

            model: Any = HashingEmbedder()
        else:
            model = embedder()
        newsdesk = Newsdesk(settings, embedder=model)
        entries = []
        for i in range(items):
            doc = docs[i % len(docs)]
            paras = paragraphs_of(doc)
            paras[0] = f"Item {i}. {paras[0]}"
            path = f"/news/{i}"
            server.add(
                path,
                body=article_html(
                    f"Story {i}: {paras[0][:60]}",
                    paras,
                    canonical=server.url(path),
                    site_name=f"Outlet {i % 7}",
                    published="2024-03-05T10:00:00Z",
                ),
                etag=f'"{i}"',
            )
            entries.append({"title": f"Story {i}", "link": server.url(path) + "?utm_source=rss"})
        feed = server.add(
            "/feed.xml", body=rss("Bench feed", entries), content_type="application/rss+xml"
        )
        feed.etag = '"v1"'
        sources = Sources(newsdesk)
        source = sources.add(server.url("/feed.xml"))
        started = time.perf_counter()
        first = sources.poll(source.id)
        wall = time.perf_counter() - started
        feed.etag = '"v2"'  # the feed "changes": every page is asked again, conditionally
        started = time.perf_counter()
        second = sources.poll(source.id)
        wall_304 = time.perf_counter() - started
        sources.close()
        newsdesk.store.close()
    r, t = first.record, first.times
    assert r.ok and r.items_new == items, (r.items_new, r.items_failed, r.item_errors[:3])
    per_stage = {
        "fetch_feed": t.fetch_feed,
        "fetch_pages (summed over 2 fetch threads)": t.fetch_pages,
        "extract (trafilatura + metadata, summed)": t.extract,
        "embed": t.embed,
        "chunk + store (index minus embed)": t.index - t.embed,
    }
    return {
        "items": items,
        "distinct_documents": min(items, len(docs)),
        "data": rel(data),
        "embedder": "hashing stand-in" if hashing else "all-MiniLM-L6-v2 (onnx)",
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "first_poll": {
            "wall_seconds": round(wall, 2),
            "articles_per_second": round(items / wall, 2),
            "items_new": r.items_new,
            "items_failed": r.items_failed,
            "stage_seconds": {k: round(v, 2) for k, v in per_stage.items()},
            "stage_share_of_wall": {k: round(v / wall, 3) for k, v in per_stage.items()},
        },
        "unchanged_repoll": {
            "wall_seconds": round(wall_304, 2),
            "items_unchanged": second.record.items_unchanged,
            "pages_answered_304": sum(route.not_modified_hits for route in server.routes.values()),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    parser.add_argument("--hashing", action="store_true")
    args = parser.parse_args()
    require_files(args.data)
    result = run(args.items, args.data, args.hashing)
    first = result["first_poll"]
    rows = [
        [stage, seconds, f"{first['stage_share_of_wall'][stage]:.0%}"]
        for stage, seconds in first["stage_seconds"].items()
    ]
    text = (
        f"{result['items']} items ({result['distinct_documents']} distinct documents), "
        f"{result['embedder']}: {first['wall_seconds']} s, "
        f"{first['articles_per_second']} articles/s\n\n"
        + table(["stage", "seconds", "of wall time"], rows)
        + f"\n\nre-poll, nothing changed: {result['unchanged_repoll']['wall_seconds']} s, "
        f"{result['unchanged_repoll']['pages_answered_304']} pages answered 304"
    )
    emit("feeds_hashing" if args.hashing else "feeds", result, text)


if __name__ == "__main__":
    main()
