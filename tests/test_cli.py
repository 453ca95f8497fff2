"""The newsdesk command line: contracts other tools rely on, and readable failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

import service.cli
from service.context import Newsdesk
from tests.conftest import SEEDS, HashingEmbedder

runner = CliRunner()


@pytest.fixture(autouse=True)
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(data))
    monkeypatch.setattr(
        service.cli, "Newsdesk", lambda settings: Newsdesk(settings, embedder=HashingEmbedder())
    )
    return data


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(service.cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ingest_twice_reports_added_then_unchanged() -> None:
    code, out, _ = run("ingest", str(SEEDS), "--json")
    first = json.loads(out)
    assert code == 0
    assert {k: first[k] for k in ("added", "updated", "unchanged", "failed")} == {
        "added": 3,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
    }
    assert first["chunks"] > 3 and first["errors"] == []
    code, out, _ = run("ingest", str(SEEDS), "--json")
    second = json.loads(out)
    assert (second["added"], second["unchanged"], second["chunks"]) == (0, 3, 0)
    code, out, _ = run("ingest", str(SEEDS))
    assert "0 added, 0 updated, 3 unchanged, 0 failed" in out


def test_bad_files_are_reported_and_the_rest_goes_in(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ok.txt").write_text("A fine article. It has words.", "utf-8")
    (inbox / "empty.txt").write_text("", "utf-8")
    (inbox / "x.docx").write_bytes(b"PK")
    code, out, err = run("ingest", str(inbox))
    assert code == 1
    assert "1 added" in out and "2 failed" in out
    assert "empty file" in err and "unsupported file type" in err


def test_search_json_shape_and_article_round_trip() -> None:
    run("ingest", str(SEEDS))
    code, out, _ = run("search", "121,000 individuals fleeing", "--json", "-k", "3")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3
    assert set(rows[0]) == {
        "article_id",
        "title",
        "source",
        "published_at",
        "start",
        "end",
        "text",
        "score",
    }
    code, out, _ = run("article", rows[0]["article_id"], "--json")
    article = json.loads(out)
    assert article["text"][rows[0]["start"] : rows[0]["end"]] == rows[0]["text"]


def test_delete_then_article_is_gone() -> None:
    run("ingest", str(SEEDS))
    _, out, _ = run("search", "Gerasimov", "--json", "-k", "1")
    victim = json.loads(out)[0]["article_id"]
    assert run("delete", victim)[0] == 0
    code, _, err = run("article", victim)
    assert code == 1 and "no article with id" in err
    assert run("delete", victim)[0] == 1


def test_ask_json_contract() -> None:
    run("ingest", str(SEEDS))
    code, out, _ = run("ask", "How many individuals were fleeing their homes?", "--json")
    data = json.loads(out)
    assert code == 0
    assert {
        "answer",
        "refused",
        "engine",
        "citations",
        "usage",
        "citations_verified",
        "citations_rejected",
    } <= set(data)
    assert data["engine"] == "extractive"
    for c in data["citations"]:
        assert {"n", "article_id", "title", "source", "start", "end", "quote"} <= set(c)


@pytest.mark.parametrize(
    "args, message",
    [
        (("search", "x", "--after", "yesterday"), "ISO 8601"),
        (("search", "  "), "empty"),
        (("summarize", "--articles", "nope"), "unknown article id"),
        (("brief", "--topic", "x", "--as-of", "soon"), "ISO 8601"),
    ],
)
def test_bad_input_is_one_readable_line_and_nonzero_exit(
    args: tuple[str, ...], message: str
) -> None:
    code, _, err = run(*args)
    assert code != 0 and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ("search", "x", "--after", "yesterday"),
            "--after must be an ISO 8601 date, got 'yesterday'",
        ),
        (
            ("ask", "x", "--before", "2024-02-30"),
            "--before must be an ISO 8601 date, got '2024-02-30'",
        ),
        (
            ("brief", "--topic", "x", "--as-of", "soon"),
            "--as-of must be an ISO 8601 date, got 'soon'",
        ),
        (("ask", "  "), "the question is empty"),
        (("brief", "--topic", " "), "the topic is empty"),
        (("ask", "x" * 2001), "The question is longer than 2000 characters."),
        (("ask", "x", "--article", "nope"), "unknown article id(s): nope"),
    ],
)
def test_the_request_models_rules_read_as_the_command_line_words_them(
    args: tuple[str, ...], line: str
) -> None:
    run("ingest", str(SEEDS))
    code, out, err = run(*args)
    assert (code, out) == (1, "")
    assert err == f"error: {line}\n"


def test_dates_are_read_as_ingest_reads_them() -> None:
    run("ingest", str(SEEDS))
    code, out, _ = run("ask", "How many fled?", "--after", "2024-08-01 09:30", "--json")
    assert code == 0 and json.loads(out)["refused"]  # the seeds are undated


# ---- issue 14: what a new user types -------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    code, out, _ = run("--version")
    assert (code, out) == (0, f"newsdesk {version('newsdesk')}\n")


def _commands(group: TyperGroup, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            found += _commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def test_help_shows_no_python_types_for_flags_and_lists() -> None:
    root = typer.main.get_command(service.cli.app)
    assert isinstance(root, TyperGroup)
    commands = _commands(root)
    assert ("summarize",) in commands and ("eval", "retrieval") in commands
    for path in commands:
        code, out, _ = run(*path, "--help")
        assert code == 0 and "--help" in out
        # Arguments still show their type (ingest's PATHS <list[Path]>): typer offers no
        # way to change that; options show a metavar or, for a flag, nothing.
        options = out.split("\nOptions:\n", 1)[1]
        assert "<bool>" not in out and "<list[" not in options, (path, out)
    _, out, _ = run("search", "--help")
    assert "--source NAME" in out and "--article ID" in out
    _, out, _ = run("summarize", "--help")
    assert "--articles ID..." in out


def _seed_ids() -> list[str]:
    run("ingest", str(SEEDS))
    return [row["id"] for row in json.loads(run("articles", "--json")[1])]


def _cited(args: tuple[str, ...]) -> set[str]:
    code, out, err = run(*args, "--max-words", "60", "--json")
    assert code == 0, err
    return {c["article_id"] for c in json.loads(out)["citations"]}


def test_summarize_takes_several_ids_after_one_articles_flag() -> None:
    first, second, third = _seed_ids()
    assert _cited(("summarize", "--articles", first, second)) == {first, second}
    assert _cited(("summarize", "--articles", first, "--articles", third)) == {first, third}
    assert _cited(("summarize", "--articles", third)) == {third}
    code, out, err = run("summarize", "--articles", first, "nope")
    assert (code, out, err) == (1, "", "error: unknown article id(s): nope\n")
    code, out, err = run("summarize", first)
    assert (code, out) == (1, "")
    assert err == f"error: unexpected argument '{first}': article ids go after --articles\n"


def _ingest_outlets(tmp_path: Path) -> None:
    records = [
        {
            "id": "ardo-1",
            "text": "The river Oona flooded 40 homes in Ardo.",
            "source": "Ardo Gazette",
        },
        {"id": "ardo-2", "text": "The river Oona flooded 12 more homes.", "source": "Oona Herald"},
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in records), "utf-8")
    assert run("ingest", str(feed))[0] == 0


def test_source_options_match_outlets_in_any_case(tmp_path: Path) -> None:
    _ingest_outlets(tmp_path)
    for name in ("ardo gazette", "ARDO GAZETTE"):
        code, out, _ = run("search", "river flooded", "--source", name, "--json")
        assert code == 0 and {r["source"] for r in json.loads(out)} == {"Ardo Gazette"}
        code, out, _ = run("ask", "How many homes flooded?", "--source", name, "--json")
        assert code == 0 and {c["article_id"] for c in json.loads(out)["citations"]} == {"ardo-1"}
    code, out, err = run("search", "river", "--source", "Ardo Times")
    assert (code, out) == (1, "")
    assert err == (
        "error: unknown source(s): 'Ardo Times'; known sources: Ardo Gazette, Oona Herald\n"
    )


def test_markdown_files_are_titled_without_heading_markup(tmp_path: Path) -> None:
    story = tmp_path / "story.md"
    story.write_text("# Flood in *Ardo*\n\nThe river Oona flooded 40 homes.", "utf-8")
    assert run("ingest", str(story))[0] == 0
    titles = [row["title"] for row in json.loads(run("articles", "--json")[1])]
    assert titles == ["Flood in Ardo"]
