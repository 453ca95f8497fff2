"""The ``newsdesk`` command line. Thin: each command calls the services and prints."""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from service.context import Newsdesk
from service.errors import REPORTED, InvalidRequest, LLMError
from service.remote_ingest import RemoteIngestError, ingest_through_api
from service.requests import (
    MAX_SEARCH_TOP_K,
    MAX_STORIES,
    MAX_SUMMARY_WORDS,
    MAX_TOP_K,
    MIN_SUMMARY_WORDS,
    AskBody,
    BriefingBody,
    SearchBody,
    StoriesQuery,
    StoryBriefingBody,
    StorySummaryBody,
    SummaryBody,
    parse_request,
)
from service.settings import Settings
from vectorstore.indexer import IngestProgress
from vectorstore.ingest import (
    Article,
    Failure,
    count_records,
    expand_paths,
    normalize_published_at,
    read_paths,
)
from vectorstore.store import StoreError

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

# Plain help, not typer's rich panels: those print a type after every option, "<bool>"
# after a flag that takes no value (--json, --help) and "<list[str]>" after a repeatable
# one; plain help shows none after a flag and the metavar given otherwise.
app = typer.Typer(
    help="Cited news answers, summaries and briefings.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
eval_app = typer.Typer(
    help="Measure retrieval quality.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(eval_app, name="eval")

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
# The filters that search and ask share.
ArticleOpt = Annotated[
    list[str] | None, typer.Option("--article", metavar="ID", help="Only this article.")
]
SourceOpt = Annotated[
    list[str] | None,
    typer.Option("--source", metavar="NAME", help="Only this outlet (any case)."),
]
AfterOpt = Annotated[str | None, typer.Option(help="Published on or after (ISO 8601).")]
BeforeOpt = Annotated[str | None, typer.Option(help="Published on or before.")]


def _show_version(value: bool) -> None:
    if value:
        # The installed distribution's version: what pip and bug reports know it by.
        try:
            shown = package_version("newsdesk")
        except PackageNotFoundError:  # run from a checkout that was never installed
            shown = "(not installed)"
        sys.stdout.write(f"newsdesk {shown}\n")
        raise typer.Exit()


@app.callback()
def _app_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Cited news answers, summaries and briefings."""


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)


def _newsdesk() -> Newsdesk:
    _quiet_libraries()
    try:
        return Newsdesk(Settings())
    except ValueError as exc:  # pydantic validation of NEWSDESK_* variables
        _fail(f"invalid settings: {exc}")
        raise


def _fail(message: str, code: int = 1) -> NoReturn:
    # soft_wrap: one readable line, however narrow the terminal.
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# The options dates come from (as a request's own field or in its filters): a bad one is
# reported under the option's name.
_DATE_OPTIONS = {"as_of": "--as-of", "published_after": "--after", "published_before": "--before"}


def _error_line(exc: Exception) -> str:
    if isinstance(exc, InvalidRequest) and exc.field:
        option = _DATE_OPTIONS.get(exc.field.rsplit(".", 1)[-1])
        if option:
            return f"{option} must be an ISO 8601 date, got '{exc.value}'"
    if isinstance(exc, LLMError):
        return f"{exc.code}: {exc}"
    return str(exc)


def _reported(call: Callable[[], R]) -> R:
    """``call()``, with the service's errors (service/errors.py) as one readable line and
    exit status 1."""
    try:
        return call()
    except REPORTED as exc:
        _fail(_error_line(exc))


def _request(model: type[M], **fields: Any) -> M:
    """A request model from the command's options, checked as the API checks a body."""
    return _reported(lambda: parse_request(model, **fields))


def _date(value: str | None) -> str | None:
    # Read as ingest reads published_at, as this command always has (a space for the T,
    # compact forms), then checked by the model; what isn't a date reaches it as typed,
    # so the error quotes it.
    return normalize_published_at(value) or value or None


def _filters(
    article_ids: list[str] | None,
    sources: list[str] | None,
    after: str | None,
    before: str | None,
) -> dict[str, Any]:
    return {
        "article_ids": article_ids or None,
        "sources": sources or None,
        "published_after": _date(after),
        "published_before": _date(before),
    }


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _print_text(text: str) -> None:
    # Plain write: rich would hard-wrap long quotes at 80 columns when piped.
    sys.stdout.write(text + "\n")


def _print_result(result: M, markdown: Callable[[M], str], as_json: bool) -> None:
    """An answer, summary or briefing: its JSON shape, or Markdown for people."""
    if as_json:
        _print_json(result.model_dump())
    else:
        _print_text(markdown(result))


def _progress(disable: bool) -> Progress:
    """Ingest progress: the bar counts articles stored (or found unchanged, or refused),
    the text chunks embedded and written, the embedding rate and the time left."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("articles · {task.fields[chunks]} · {task.fields[rate]} · {task.fields[eta]}"),
        TimeElapsedColumn(),
        console=err,
        disable=disable or not err.is_terminal,
        transient=True,
    )


def _progress_fields(p: IngestProgress) -> dict[str, str]:
    expected = p.chunks_expected()
    eta = p.eta_seconds()
    return {
        "chunks": f"chunks {p.chunks_embedded}/{'?' if expected is None else expected} "
        f"embedded, {p.chunks_written} written",
        "rate": f"{p.chunks_per_second():.1f} chunks/s",
        "eta": "ETA " + ("?" if eta is None else str(timedelta(seconds=round(eta)))),
    }


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files or folders (recursive), http(s) URLs of pages, feeds or news "
            "sitemaps, and .rss/.atom/.xml feed files.",
        ),
    ],
    as_json: JsonFlag = False,
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            help="Send the files to this running Newsdesk server (e.g. http://127.0.0.1:8000) "
            "instead of opening the store: the way to ingest next to `newsdesk serve`.",
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="NEWSDESK_API_KEY", help="Bearer key for --api.")
    ] = None,
) -> None:
    """Add or update articles from .txt, .md, .html, .json and .jsonl files, and from URLs."""
    files, fetched = _split_ingest_args(paths)  # URLs and feed files: service/sources.py
    if api and fetched:
        _fail(f"--api sends files; fetch {fetched[0]} without --api or `sources add` it")
    # Counted first (records, not files) so the bar has a true total while files stream.
    total = sum(count_records(p) if isinstance(p, Path) else 1 for p in expand_paths(files))
    total += len(fetched)
    try:
        with _progress(as_json) as progress:
            task = progress.add_task(
                "ingesting", total=total or None, **_progress_fields(IngestProgress(total))
            )

            def show(p: IngestProgress) -> None:
                progress.update(
                    task, total=p.articles_total, completed=p.articles_done, **_progress_fields(p)
                )

            if api:
                report = ingest_through_api(api, files, api_key=api_key, on_progress=show)
            else:
                newsdesk = _newsdesk()
                items = itertools.chain(read_paths(files), _fetched_items(newsdesk, fetched))
                report = newsdesk.indexer.index(items, total=total, on_progress=show)
                newsdesk.keyword.ensure_current(force=True)
    except (StoreError, RemoteIngestError) as exc:
        _fail(str(exc))
        return
    if as_json:
        data = report.to_json()
        _print_json(
            {k: data[k] for k in ("added", "updated", "unchanged", "failed", "chunks", "errors")}
            | {"warnings": data["warnings"], "seconds": data["seconds"]}
        )
    else:
        for error in report.errors:
            err.print(f"[yellow]skipped[/yellow] {error['origin']}: {error['reason']}")
        for warning in report.warnings:
            err.print(f"[yellow]warning[/yellow] {warning['origin']}: {warning['warning']}")
        out.print(report.summary())
    if report.failed:
        raise typer.Exit(1)


@app.command()
def delete(article_id: Annotated[str, typer.Argument(help="Article id.")]) -> None:
    """Remove an article and all its chunks."""
    newsdesk = _newsdesk()
    if not newsdesk.store.delete_article(article_id):
        _fail(f"no article with id '{article_id}'")
    newsdesk.keyword.ensure_current(force=True)
    out.print(f"deleted {article_id}")


@app.command()
def article(
    article_id: str,
    revision: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, help="An earlier text of the article (see revisions)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show an article's metadata and canonical text."""
    newsdesk = _newsdesk()
    stored = _reported(
        lambda: (
            newsdesk.store.get_article(article_id)
            if revision is None
            else newsdesk.store.get_revision(article_id, revision)
        )
    )
    if stored is None:
        which = f" at revision {revision}" if revision is not None else ""
        _fail(f"no article with id '{article_id}'{which}")
        return
    if as_json:
        _print_json(stored.metadata() | {"text": stored.text})
        return
    out.print(f"[bold]{stored.title}[/bold]")
    updated = f" · updated {stored.updated_at}" if stored.updated_at else ""
    out.print(
        f"id {stored.id} · revision {stored.revision} · source {stored.source or 'unknown'} · "
        f"published {stored.published_at or 'unknown'}{updated} · {stored.chunks} chunks"
    )
    out.print()
    out.print(stored.text, highlight=False, markup=False)


@app.command()
def revisions(article_id: str, as_json: JsonFlag = False) -> None:
    """List the texts an article has had, oldest first."""
    newsdesk = _newsdesk()
    found = _reported(lambda: newsdesk.store.revisions(article_id))
    if not found and _reported(lambda: newsdesk.store.get_article(article_id)) is None:
        _fail(f"no article with id '{article_id}'")
    rows = [
        {
            "revision": r.revision,
            "content_hash": r.content_hash,
            "chars": r.chars,
            "written_at": r.written_at,
        }
        for r in found
    ]
    if as_json:
        _print_json(rows)
        return
    for r in found:
        # 0: a text stored before revisions were kept.
        when = (
            datetime.fromtimestamp(r.written_at, UTC).isoformat(timespec="seconds")
            if r.written_at
            else "before revisions were kept"
        )
        out.print(f"revision {r.revision} · {r.chars} chars · stored {when}", highlight=False)


@app.command("articles")
def list_articles(as_json: JsonFlag = False) -> None:
    """List stored articles."""
    newsdesk = _newsdesk()
    rows = [
        {
            "id": aid,
            "title": m.get("title"),
            "source": m.get("source"),
            "published_at": m.get("published_at"),
            "chunks": m.get("chunks"),
        }
        for aid, m in newsdesk.store.iter_article_meta()
    ]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        out.print(
            f"{row['id']}  {row['title']}  ({row['source'] or 'unknown source'})", highlight=False
        )
    out.print(f"{len(rows)} articles")


@app.command()
def search(
    query: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=MAX_SEARCH_TOP_K)] = 5,
    mode: Annotated[
        str, typer.Option(metavar="[hybrid|dense|keyword]", help="Which retrieval.")
    ] = "hybrid",
    article_ids: ArticleOpt = None,
    sources: SourceOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the passages retrieval finds for a query, with their exact spans."""
    from service.search import search as run_search

    if mode not in ("hybrid", "dense", "keyword"):
        _fail("--mode must be hybrid, dense or keyword")
    req = _request(
        SearchBody,
        query=query,
        top_k=top_k,
        mode=mode,
        filters=_filters(article_ids, sources, after, before),
    )
    newsdesk = _newsdesk()
    rows = [hit.model_dump() for hit in _reported(lambda: run_search(newsdesk, req))]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no passages found (is anything ingested?)")
    for i, row in enumerate(rows, start=1):
        out.print(
            f"[bold][{i}][/bold] {row['title']} — article {row['article_id']} "
            f"chars {row['start']}–{row['end']} (score {row['score']:.4f})",
            highlight=False,
        )
        out.print(f"    {row['text']}", highlight=False, markup=False)
        out.print()


@app.command()
def ask(
    question: str,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K)] = None,
    article_ids: ArticleOpt = None,
    sources: SourceOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question with verified, numbered citations."""
    from service.answer import AnswerService
    from service.render import answer_markdown

    req = _request(
        AskBody,
        question=question,
        filters=_filters(article_ids, sources, after, before),
        top_k=top_k,
    )
    newsdesk = _newsdesk()
    result = _reported(lambda: AnswerService(newsdesk).answer(req))
    _print_result(result, answer_markdown, as_json)


@app.command(context_settings={"allow_extra_args": True})
def summarize(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Option(help="What to summarise.")] = None,
    article_ids: Annotated[
        list[str] | None,
        typer.Option(
            "--articles",
            metavar="ID...",
            help="Summarise these articles: --articles A B C (or --articles A --articles B).",
        ),
    ] = None,
    max_words: Annotated[
        int, typer.Option(min=MIN_SUMMARY_WORDS, max=MAX_SUMMARY_WORDS)
    ] = SummaryBody.model_fields["max_words"].default,
    as_json: JsonFlag = False,
) -> None:
    """A neutral summary across articles, every point cited, with where sources differ."""
    from service.render import summary_markdown
    from service.summarize import SummaryService

    # Click options take one value each, so in `--articles A B C` only A belongs to the
    # option: B and C arrive as extra arguments.
    more_ids = list(ctx.args)
    if more_ids and not article_ids:
        _fail(f"unexpected argument '{more_ids[0]}': article ids go after --articles")
    ids = [*(article_ids or []), *more_ids] or None
    req = _request(SummaryBody, topic=topic, article_ids=ids, max_words=max_words)
    newsdesk = _newsdesk()
    result = _reported(lambda: SummaryService(newsdesk).summarize(req))
    _print_result(result, summary_markdown, as_json)


@app.command()
def brief(
    topic: Annotated[str, typer.Option(help="What the briefing is about.")],
    as_of: Annotated[str | None, typer.Option(help="Only articles published by then.")] = None,
    audience: Annotated[str | None, typer.Option(help="Who it is for.")] = None,
    as_json: JsonFlag = False,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Also keep it under <data dir>/briefings/ and print its reader page's URL.",
        ),
    ] = False,
) -> None:
    """A briefing: bottom line, developments, perspectives, differences, open questions."""
    from service.brief import BriefingService
    from service.render import briefing_markdown
    from service.web.saved import BriefingStore

    req = _request(BriefingBody, topic=topic, as_of=_date(as_of), audience=audience)
    newsdesk = _newsdesk()
    result = _reported(lambda: BriefingService(newsdesk).brief(req))
    _print_result(result, briefing_markdown, as_json)
    if save:
        saved = BriefingStore(newsdesk.settings.data_dir / "briefings").save(result)
        base = (newsdesk.settings.public_url or "http://127.0.0.1:8000").rstrip("/")
        # On stderr with --json, so stdout stays one JSON document.
        (sys.stderr if as_json else sys.stdout).write(f"Saved: {base}/briefings/{saved.id}\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP API (and the Slack endpoints when Slack is configured)."""
    import uvicorn

    from service.logs import configure_logging

    _quiet_libraries()
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic validation of NEWSDESK_* variables
        _fail(f"invalid settings: {exc}")
        return
    if workers > 1 and not settings.chroma_host:
        # Each worker would open the embedded Chroma directory itself, and concurrent
        # processes on one directory corrupt each other's reads.
        # Short enough for one line of an 80-column terminal, where rich would wrap it.
        _fail("--workers > 1 needs a Chroma server: set NEWSDESK_CHROMA_HOST.")
    configure_logging()
    uvicorn.run(
        "service.api:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # uvicorn applies this in each worker process it starts, where configure_logging
        # above never runs: without it the workers wrote plain text and no access log.
        log_config=_serve_log_config(),
        # Our own access log (newsdesk.access, JSON, with the request id) replaces it.
        access_log=False,
        # uvicorn kills and restarts a worker that misses a 5 s ping. Starting one (the
        # imports, then loading the model in the background) holds the GIL for longer on
        # a busy 2-core machine: workers were killed in a loop before they ever served.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        # h11, not httptools: only uvicorn's h11 protocol bounds the request line and
        # headers (httptools buffers them without limit), and past the bound it answers
        # 400 and closes before the app runs.
        http="h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


# How long a `serve --workers N` worker may leave the supervisor's ping unanswered
# before it is taken for hung and replaced.
WORKER_HEALTHCHECK_SECONDS = 60


def _serve_log_config() -> dict[str, Any]:
    """service.logs.configure_logging as a logging.config dictionary: JSON lines on
    stderr at INFO, chatty libraries at WARNING."""
    quiet = ("bm25s", "httpx", "httpcore", "chromadb", "sentence_transformers", "urllib3")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.api.middleware.JsonLogFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {name: {"level": "WARNING"} for name in quiet},
    }


@app.command("slack")
def slack_socket_mode() -> None:
    """Run the Slack bot over Socket Mode (no public URL needed); Ctrl-C stops it."""
    from slack_sdk.errors import SlackApiError

    from service.logs import configure_logging
    from service.slack import run_socket_mode

    newsdesk = _newsdesk()
    settings = newsdesk.settings
    if not (settings.slack_bot_token and settings.slack_app_token):
        _fail("set NEWSDESK_SLACK_BOT_TOKEN and NEWSDESK_SLACK_APP_TOKEN for Socket Mode")
    configure_logging()
    try:
        run_socket_mode(newsdesk)
    except SlackApiError as exc:
        # apps.connections.open refused: a wrong app token, or Socket Mode not enabled.
        error = exc.response.get("error") if exc.response is not None else exc
        _fail(f"Slack refused the Socket Mode connection ({settings.slack_api_url}): {error}")
    except KeyboardInterrupt:
        pass


# ---- stories (service/stories.py) ----------------------------------------------------------


def _when_option(option: str, value: str | None) -> str | None:
    """A --since/--until value as the request model takes it: a time ago as typed, a date
    read as ingest reads one; anything else is the one line this option's error gives."""
    from service.requests import RELATIVE_TIME_PATTERN, iso_or_none, matches

    if value is None or matches(RELATIVE_TIME_PATTERN, value):
        return value
    iso = _date(value)
    if iso is None or iso_or_none(iso) is None:
        _fail(f"{option} must be an ISO 8601 date or a time ago such as 24h or 7d, got '{value}'")
    return iso


def _cells(*values: object) -> list[Any]:
    from rich.text import Text

    # Text, not str: rich would read "[...]" in a title or outlet as its own markup.
    return [Text("" if v is None else str(v)) for v in values]


@app.command("stories")
def list_stories(
    since: Annotated[
        str | None, typer.Option(help="Seen since: a time ago (90m, 24h, 7d, 2w) or a date.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Begun by then (a date: by its end), or a time ago.")
    ] = None,
    outlets: Annotated[
        list[str] | None,
        typer.Option("--outlet", metavar="NAME", help="Covered by this outlet (any case)."),
    ] = None,
    min_outlets: Annotated[
        int, typer.Option("--min-outlets", min=1, help="Covered by at least this many outlets.")
    ] = 1,
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Only stories with articles matching this text."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_STORIES)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Stories (one event, several outlets), the most recently seen first."""
    from rich.table import Table

    from service.stories import StoryService

    req = _request(
        StoriesQuery,
        since=_when_option("--since", since),
        until=_when_option("--until", until),
        outlets=outlets or None,
        min_outlets=min_outlets,
        q=query,
        limit=limit,
    )
    newsdesk = _newsdesk()
    result = _reported(lambda: StoryService(newsdesk).list(req))
    if as_json:
        _print_json(result.model_dump())
        return
    if not result.stories:
        out.print("no stories match (is anything ingested?)")
        return
    table = Table()
    # The id is what `newsdesk story` takes: never wrapped, so it can be copied whole.
    table.add_column("story", no_wrap=True)
    table.add_column("last seen", no_wrap=True)
    table.add_column("outlets")
    table.add_column("title")
    for s in result.stories:
        names = f" ({', '.join(s.outlets)})" if s.outlets else ""
        table.add_row(
            *_cells(
                s.id,
                _minutes(s.last_seen),
                f"{s.outlets_count}{names}",
                f"{s.title} · {s.articles} article{'' if s.articles == 1 else 's'}",
            )
        )
    out.print(table)


def _minutes(when: str | None) -> str:
    """An ISO date-time as a table shows it: to the minute (the JSON has it whole)."""
    return when.replace("T", " ")[:16] if when else "undated"


def _print_story(detail: Any) -> None:
    from rich.table import Table

    from service.coverage import UNKNOWN_OUTLET
    from service.render import sources_block

    out.print(*_cells(detail.title), style="bold")
    aliases = f" (also known as {', '.join(detail.aliases)})" if detail.aliases else ""
    out.print(
        *_cells(
            f"{detail.id}{aliases} · {detail.outlets_count} outlets · {detail.articles} "
            f"articles · first seen {detail.first_seen or 'undated'} · last seen "
            f"{detail.last_seen or 'undated'}"
        )
    )
    articles = Table("outlet", "article", "title", "published", title="Articles by outlet")
    for group in detail.by_outlet:
        for a in group.articles:
            copy = f" (copy of {a.copy_of})" if a.copy_of else ""
            articles.add_row(
                *_cells(
                    group.outlet or UNKNOWN_OUTLET,
                    a.article_id + copy,
                    a.title,
                    _minutes(a.published_at),
                )
            )
    out.print(articles)
    timeline = Table("first appeared", "outlet", "lead", title="Timeline")
    for t in detail.timeline:
        also = f" (also {', '.join(t.also_published_by)})" if t.also_published_by else ""
        marks = "".join(f"[{n}]" for n in t.citations)
        timeline.add_row(
            *_cells(
                _minutes(t.date),
                (t.source or UNKNOWN_OUTLET) + also,
                f"{t.text} {marks}" if t.text else "(no sentence to quote)",
            )
        )
    out.print(timeline)
    coverage = Table(
        "outlet",
        "articles",
        "first covered",
        "quoted",
        "attributed",
        "own voice",
        "loaded, own voice",
        "loaded, quoted/attributed",
        title="Coverage and framing (shares of characters)",
    )
    for row in detail.coverage.outlets:
        quoted = {**row.loaded_terms_quoted}
        for term, n in row.loaded_terms_attributed.items():
            quoted[term] = quoted.get(term, 0) + n
        coverage.add_row(
            *_cells(
                row.outlet or UNKNOWN_OUTLET,
                len(row.articles)
                if not row.copies
                else f"{len(row.articles)} ({row.copies} syndicated)",
                _minutes(row.first_covered),
                f"{row.quoted_share:.0%}",
                f"{row.attributed_share:.0%}",
                f"{row.own_voice_share:.0%}",
                ", ".join(row.loaded_terms_own_voice) or "–",
                ", ".join(sorted(quoted)) or "–",
            )
        )
    out.print(coverage)
    _print_text("\n".join(sources_block(detail.citations)).strip())


@app.command("story")
def story(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="ID | split ID ARTICLE... | place",
            help="A story's id (or an alias of it); or `split ID ARTICLE...` to move those "
            "articles out of the story into a new one; or `place` to put every article that "
            "has no story (stored before stories existed) into one.",
            show_default=False,
        ),
    ],
    summary: Annotated[
        bool, typer.Option("--summary", help="Its neutral summary, with where sources differ.")
    ] = False,
    brief: Annotated[bool, typer.Option("--brief", help="Its briefing.")] = False,
    max_words: Annotated[
        int | None,
        typer.Option(
            min=MIN_SUMMARY_WORDS,
            max=MAX_SUMMARY_WORDS,
            help="With --summary (default: enough for every outlet).",
        ),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="With --brief: only articles published by then.")
    ] = None,
    audience: Annotated[str | None, typer.Option(help="With --brief: who it is for.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A story: its articles by outlet, timeline and coverage table; or its summary or
    briefing; or `story split ID ARTICLE...`; or `story place`."""
    from service.render import briefing_markdown, summary_markdown
    from service.stories import StoryService

    if args[0] == "place":
        if len(args) > 1:
            _fail(f"unexpected argument '{args[1]}': `story place` takes none")
        newsdesk = _newsdesk()
        placed = _reported(lambda: StoryService(newsdesk).place_unplaced())
        if as_json:
            _print_json({"placed": placed})
        else:
            out.print(f"placed {placed} article(s) without a story")
        return
    if args[0] == "split":
        if len(args) < 3:
            _fail("usage: newsdesk story split ID ARTICLE...")
        newsdesk = _newsdesk()
        card = _reported(lambda: StoryService(newsdesk).split(args[1], args[2:]))
        if as_json:
            _print_json(card.model_dump())
        else:
            out.print(
                *_cells(f"moved {len(args) - 2} article(s) from {args[1]} to {card.id}"),
            )
        return
    if len(args) > 1:
        _fail(f"unexpected argument '{args[1]}': one story id, or `story split ID ARTICLE...`")
    if summary and brief:
        _fail("--summary and --brief: choose one")
    story_id = args[0]
    if summary:
        body = _request(StorySummaryBody, max_words=max_words)
        newsdesk = _newsdesk()
        result = _reported(lambda: StoryService(newsdesk).summary(story_id, body))
        _print_result(result, _with_uncited(summary_markdown), as_json)
    elif brief:
        req = _request(StoryBriefingBody, as_of=_date(as_of), audience=audience)
        newsdesk = _newsdesk()
        briefing = _reported(lambda: StoryService(newsdesk).briefing(story_id, req))
        _print_result(briefing, _with_uncited(briefing_markdown), as_json)
    else:
        newsdesk = _newsdesk()
        detail = _reported(lambda: StoryService(newsdesk).detail(story_id))
        if as_json:
            _print_json(detail.model_dump())
        else:
            _print_story(detail)


def _with_uncited(markdown: Callable[[Any], str]) -> Callable[[Any], str]:
    """A story result's Markdown, saying which of its outlets no point cites."""
    from service.render import md_escape

    def render(result: Any) -> str:
        text = markdown(result)
        if result.outlets_not_cited:
            text += "\n_not cited: " + md_escape(", ".join(result.outlets_not_cited)) + "_"
        return text

    return render


# ---- sources: feeds, news sitemaps and pages (service/sources.py) --------------------

sources_app = typer.Typer(
    help="Follow feeds, news sitemaps and pages; `newsdesk watch` polls them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(sources_app, name="sources")
FEED_FILE_SUFFIXES = {".rss", ".atom", ".xml"}


def _split_ingest_args(args: list[str]) -> tuple[list[Path], list[str]]:
    """Paths read from disk, and what ``_fetched_items`` reads: URLs and feed files."""
    from service.sources import is_url

    paths, fetched = [], []
    for arg in args:
        if is_url(arg) or (Path(arg).suffix.lower() in FEED_FILE_SUFFIXES and Path(arg).is_file()):
            fetched.append(arg)
        else:
            paths.append(Path(arg))
    return paths, fetched


def _fetched_items(newsdesk: Newsdesk, fetched: list[str]) -> Iterator[Article | Failure]:
    if not fetched:
        return
    from service.sources import Sources, is_url

    sources = Sources(newsdesk)
    try:
        for arg in fetched:
            if is_url(arg):
                yield from sources.fetch_articles([arg])
            else:
                yield from sources.feed_file_articles(Path(arg).read_bytes(), arg)
    finally:
        sources.close()


def _sources() -> Any:
    from service.sources import Sources

    try:
        return Sources(_newsdesk())
    except ValueError as exc:  # NEWSDESK_SOURCES_EVERY unreadable
        _fail(f"invalid settings: {exc}")


def _every(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _outcome_line(name: str, outcome: Any) -> str:
    r = outcome.record
    if not r.ok:
        return f"{name}: failed ({r.error_code}): {r.error}"
    if r.not_modified:
        return f"{name}: not modified (304)"
    line = (
        f"{name}: {r.kind}, {r.items_seen} seen, {r.items_new} new, {r.items_updated} "
        f"updated, {r.items_unchanged} unchanged, {r.items_failed} failed"
    )
    return line + "".join(f"\n  {e['url']}: {e['reason']}" for e in r.item_errors[:5])


@sources_app.command("add")
def sources_add(
    url: Annotated[str, typer.Argument(help="A feed, news sitemap or page (http/https).")],
    name: Annotated[str | None, typer.Option(help="Shown instead of the feed's title.")] = None,
    every: Annotated[
        str | None, typer.Option(help="Poll interval: 90s, 15m, 2h, 1d (default 15m).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Follow a source; `newsdesk watch` (or `sources poll`) fetches it."""
    sources = _sources()
    source = _reported(lambda: sources.add(url, name, every))
    if as_json:
        _print_json(source.to_json())
    else:
        out.print(
            f"following {source.url} as {source.id} (every {_every(source.every_seconds)})",
            highlight=False,
            soft_wrap=True,
        )


@sources_app.command("list")
def sources_list(as_json: JsonFlag = False) -> None:
    """Every source with its last poll: when, what it found, the last error, the next poll."""
    rows = [s.to_json() for s in _reported(lambda: _sources().list())]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no sources; add one with `newsdesk sources add URL`")
        return
    for r in rows:
        last = r["last_poll"]
        _print_text(
            f"{r['id']}  {r['kind'] or '?':<7} {r['name'] or '-'}  {r['url']}\n"
            f"    every {_every(r['every_seconds'])} · next {r['next_poll_at']}"
            f"{' · polling now' if r['polling'] else ''}"
            f" · last ok {r['last_success_at'] or 'never'}"
            f" · {last['items_seen']} seen, {last['items_new']} new, {last['items_updated']} "
            f"updated, {last['items_failed']} failed"
            + (
                f"\n    last error ({r['last_error_at']}): {r['last_error']}"
                if r["last_error"]
                else ""
            )
        )


@sources_app.command("remove")
def sources_remove(source_id: Annotated[str, typer.Argument(help="Source id.")]) -> None:
    """Stop following a source; its articles stay stored."""
    _reported(lambda: _sources().remove(source_id))
    out.print(f"removed {source_id}", highlight=False)


@sources_app.command("poll")
def sources_poll(
    source_id: Annotated[str | None, typer.Argument(help="Source id; all when omitted.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Poll one source, or every source, now (due or not); exit 1 if any failed."""
    sources = _sources()
    try:
        if source_id is not None:
            results: list[Any] = [_reported(lambda: sources.poll(source_id))]
        else:
            results = list(sources.poll_all())
    except StoreError as exc:
        _fail(str(exc))
    finally:
        sources.close()
    failed = False
    shown = []
    for result in results:
        if isinstance(result, tuple):  # busy: another poller has it
            failed = True
            shown.append({"source_id": result[0], "ok": False, "error": result[1]})
            if not as_json:
                err.print(f"[yellow]busy[/yellow] {result[1]}", highlight=False)
            continue
        failed = failed or not result.record.ok
        shown.append(result.to_json())
        if not as_json:
            _print_text(_outcome_line(result.source_id, result))
    if as_json:
        _print_json(shown)
    if failed:
        raise typer.Exit(1)


@app.command()
def watch(
    workers: Annotated[int, typer.Option(min=1, max=32, help="Sources polled at once.")] = 2,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Enqueue each due source's poll for `newsdesk worker`s instead of polling "
            "here (needs NEWSDESK_REDIS_URL).",
        ),
    ] = False,
) -> None:
    """Poll every source when it is due, until stopped (Ctrl-C or SIGTERM). Run several
    on one data dir, or on several machines sharing NEWSDESK_REDIS_URL, to share the work:
    each source is leased to one poller at a time."""
    import signal
    import threading

    if queue:
        _watch_queue()
        return
    sources = _sources()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(source: Any, outcome: Any) -> None:
        err.print(_outcome_line(source.name or source.url, outcome), highlight=False)

    err.print(
        f"watching {len(_reported(sources.list))} source(s) as {sources.poller.owner}; "
        "Ctrl-C stops",
        highlight=False,
    )
    try:
        sources.watch(stop, workers=workers, on_outcome=show)
    except KeyboardInterrupt:
        stop.set()
    finally:
        sources.close()


def _queue_settings(command: str) -> Settings:
    _quiet_libraries()
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic validation of NEWSDESK_* variables
        _fail(f"invalid settings: {exc}")
    if not settings.redis_url:
        _fail(f"{command} needs a queue: set NEWSDESK_REDIS_URL.")
    return settings


def _watch_queue() -> None:
    import signal
    import threading

    from service.ingest_queue import QueuedWatcher, connect
    from service.sources import open_registry

    settings = _queue_settings("watch --queue")
    registry = open_registry(settings.sources_config())
    watcher = QueuedWatcher(settings, registry, connect(settings.redis_url or ""))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(ids: list[str]) -> None:
        err.print(f"queued polls: {', '.join(ids)}", highlight=False)

    err.print(
        f"watching {len(_reported(registry.sources))} source(s) for the workers as "
        f"{watcher.owner}; Ctrl-C stops",
        highlight=False,
    )
    try:
        watcher.watch(stop, on_enqueued=show)
    except KeyboardInterrupt:
        stop.set()
    finally:
        registry.close()


@app.command()
def worker(
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the queues are empty.")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host.random).")] = None,
) -> None:
    """Run a queue worker: bulk ingest jobs (POST /v1/jobs) and feed polls (`watch --queue`)
    from NEWSDESK_REDIS_URL, written to the Chroma server at NEWSDESK_CHROMA_HOST. Run as
    many as you like, on any machine; SIGTERM stops after the current task."""
    from service.ingest_queue import run_worker
    from service.logs import configure_logging

    settings = _queue_settings("worker")
    if not settings.chroma_host:
        # Workers write from other processes, or machines, than the API's.
        _fail("worker needs a Chroma server: set NEWSDESK_CHROMA_HOST.")
    configure_logging()
    newsdesk = Newsdesk(settings)

    def ready(w: Any) -> None:
        err.print(f"worker {w.name} ready on {', '.join(w.queue_names())}", highlight=False)

    # RQ handles SIGINT and SIGTERM itself: the first stops after the current task.
    _reported(lambda: run_worker(settings, newsdesk, burst=burst, name=name, on_ready=ready))


@eval_app.command("retrieval")
def eval_retrieval(
    corpus: Annotated[Path, typer.Option(help="JSONL corpus.")] = Path(
        "../shared/eval/multihop_corpus.jsonl"
    ),
    queries: Annotated[Path, typer.Option(help="JSONL queries with evidence.")] = Path(
        "../shared/eval/multihop_dev.jsonl"
    ),
    output: Annotated[Path, typer.Option("--out", help="Write results here.")] = Path(
        "bench/results/retrieval_eval.json"
    ),
    as_json: JsonFlag = False,
) -> None:
    """Hits@4, Hits@10 and MRR@10 for hybrid, dense-only and BM25-only retrieval."""
    from service.evaluation import run_retrieval_eval

    for path in (corpus, queries):
        if not path.is_file():
            _fail(f"no such file: {path}")
    _quiet_libraries()
    results = run_retrieval_eval(corpus, queries, Settings())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    if as_json:
        _print_json(results)
        return
    out.print(f"{results['data']['queries_scored']} queries, {results['data']['chunks']} chunks")
    out.print(f"{'mode':<20}{'hits@4':>8}{'hits@10':>9}{'mrr@10':>8}{'any@4':>8}")
    for name, row in results.items():
        if name == "data":
            continue
        out.print(
            f"{name:<20}{row['hits@4']:>8.3f}{row['hits@10']:>9.3f}{row['mrr@10']:>8.3f}"
            f"{row['any@4']:>8.3f}"
        )
    out.print(f"written to {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
