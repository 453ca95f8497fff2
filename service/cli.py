"""The ``newsdesk`` command line. Thin: each command calls the services and prints."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
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
    MAX_SUMMARY_WORDS,
    MAX_TOP_K,
    MIN_SUMMARY_WORDS,
    AskBody,
    BriefingBody,
    Filters,
    SummaryBody,
    parse_request,
)
from service.settings import Settings
from vectorstore.ingest import expand_paths, normalize_published_at, read_paths
from vectorstore.store import StoreError

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

app = typer.Typer(help="Cited news answers, summaries and briefings.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure retrieval quality.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


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
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=disable or not err.is_terminal,
        transient=True,
    )


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive).")],
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
    """Add or update articles from .txt, .md, .html, .json and .jsonl files."""
    files = [p for p in expand_paths(paths) if isinstance(p, Path)]
    try:
        with _progress(as_json) as progress:
            task = progress.add_task("ingesting", total=len(files) or None)
            done_files: set[str] = set()

            def advance(origin: str) -> None:
                # Records of one .jsonl file share a file: advance once per file.
                name = origin.split(":")[0].split("[")[0]
                if name not in done_files:
                    done_files.add(name)
                    progress.update(task, completed=len(done_files))

            if api:
                report = ingest_through_api(api, paths, api_key=api_key, on_file=advance)
            else:
                newsdesk = _newsdesk()
                report = newsdesk.indexer.index(read_paths(paths), on_item=advance)
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
def article(article_id: str, as_json: JsonFlag = False) -> None:
    """Show an article's metadata and canonical text."""
    newsdesk = _newsdesk()
    stored = newsdesk.store.get_article(article_id)
    if stored is None:
        _fail(f"no article with id '{article_id}'")
        return
    if as_json:
        _print_json(stored.metadata() | {"text": stored.text})
        return
    out.print(f"[bold]{stored.title}[/bold]")
    out.print(
        f"id {stored.id} · source {stored.source or 'unknown'} · "
        f"published {stored.published_at or 'unknown'} · {stored.chunks} chunks"
    )
    out.print()
    out.print(stored.text, highlight=False, markup=False)


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
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or keyword")] = "hybrid",
    article_ids: Annotated[list[str] | None, typer.Option("--article", help="Only these.")] = None,
    sources: Annotated[list[str] | None, typer.Option("--source")] = None,
    after: Annotated[str | None, typer.Option(help="Published on or after (ISO 8601).")] = None,
    before: Annotated[str | None, typer.Option(help="Published on or before.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the passages retrieval finds for a query, with their exact spans."""
    if mode not in ("hybrid", "dense", "keyword"):
        _fail("--mode must be hybrid, dense or keyword")
    if not query.strip():
        _fail("the query is empty")
    filters = _request(Filters, **_filters(article_ids, sources, after, before))
    newsdesk = _newsdesk()
    hits = _reported(
        lambda: newsdesk.retriever.search(
            query,
            top_k=top_k,
            filters=filters.to_article_filter(),
            mode=mode,  # type: ignore[arg-type]
        )
    )
    rows = [
        {
            "article_id": h.chunk.article_id,
            "title": h.chunk.title,
            "source": h.chunk.source,
            "start": h.chunk.start,
            "end": h.chunk.end,
            "text": h.chunk.text,
            "score": round(h.score, 6),
        }
        for h in hits
    ]
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
    article_ids: Annotated[list[str] | None, typer.Option("--article", help="Only these.")] = None,
    sources: Annotated[list[str] | None, typer.Option("--source")] = None,
    after: Annotated[str | None, typer.Option(help="Published on or after (ISO 8601).")] = None,
    before: Annotated[str | None, typer.Option(help="Published on or before.")] = None,
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


@app.command()
def summarize(
    topic: Annotated[str | None, typer.Option(help="What to summarise.")] = None,
    article_ids: Annotated[
        list[str] | None, typer.Option("--articles", help="Article ids.")
    ] = None,
    max_words: Annotated[
        int, typer.Option(min=MIN_SUMMARY_WORDS, max=MAX_SUMMARY_WORDS)
    ] = SummaryBody.model_fields["max_words"].default,
    as_json: JsonFlag = False,
) -> None:
    """A neutral summary across articles, every point cited, with where sources differ."""
    from service.render import summary_markdown
    from service.summarize import SummaryService

    req = _request(SummaryBody, topic=topic, article_ids=article_ids, max_words=max_words)
    newsdesk = _newsdesk()
    result = _reported(lambda: SummaryService(newsdesk).summarize(req))
    _print_result(result, summary_markdown, as_json)


@app.command()
def brief(
    topic: Annotated[str, typer.Option(help="What the briefing is about.")],
    as_of: Annotated[str | None, typer.Option(help="Only articles published by then.")] = None,
    audience: Annotated[str | None, typer.Option(help="Who it is for.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A briefing: bottom line, developments, perspectives, differences, open questions."""
    from service.brief import BriefingService
    from service.render import briefing_markdown

    req = _request(BriefingBody, topic=topic, as_of=_date(as_of), audience=audience)
    newsdesk = _newsdesk()
    result = _reported(lambda: BriefingService(newsdesk).brief(req))
    _print_result(result, briefing_markdown, as_json)


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
        log_config=None,
        access_log=False,
        # h11, not httptools: only uvicorn's h11 protocol bounds the request line and
        # headers (httptools buffers them without limit), and past the bound it answers
        # 400 and closes before the app runs.
        http="h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


@app.command("slack")
def slack_socket_mode() -> None:
    """Run the Slack bot over Socket Mode (no public URL needed)."""
    from service.logs import configure_logging
    from service.slack import run_socket_mode

    newsdesk = _newsdesk()
    settings = newsdesk.settings
    if not (settings.slack_bot_token and settings.slack_app_token):
        _fail("set NEWSDESK_SLACK_BOT_TOKEN and NEWSDESK_SLACK_APP_TOKEN for Socket Mode")
    configure_logging()
    run_socket_mode(newsdesk)


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
