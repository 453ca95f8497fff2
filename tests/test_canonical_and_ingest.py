"""Reading files into articles: canonical text, metadata, ids, and per-file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SEEDS
from vectorstore.canonical import canonicalize, headline
from vectorstore.ingest import (
    Article,
    Failure,
    IngestError,
    make_article,
    published_timestamp,
    read_paths,
)

SEED_001 = next(SEEDS.glob("001_*.txt"))


def test_seed_boilerplate_is_removed_but_the_story_is_kept() -> None:
    raw = SEED_001.read_text("utf-8")
    text = canonicalize(raw)
    assert "Share This Post" not in text
    assert "Related Posts" not in text
    assert "Oliver Miller" not in text  # a related-post link after the story
    assert text.startswith("Putin Visits Kursk to Cheer Russian Troops Trying to Oust Ukraine")
    assert text.endswith("the high stakes in this enduring crisis.")


def test_line_endings_and_whitespace_are_normalised() -> None:
    text = canonicalize("Title\r\n\r\n\r\n\r\nFirst   line.\t\rSecond line.  \n\n\n")
    assert text == "Title\n\nFirst line.\nSecond line."


def test_title_is_headline_line_or_cut_first_sentence() -> None:
    assert headline("Short Headline Here\n\nBody text.") == "Short Headline Here"
    long_sentence = "A " + "very " * 60 + "long first sentence. Then more."
    title = headline(long_sentence)
    assert title.endswith("…") and len(title) <= 121


def test_seed_titles() -> None:
    articles = [a for a in read_paths([SEEDS]) if isinstance(a, Article)]
    titles = {a.title for a in articles}
    assert "Putin Visits Kursk to Cheer Russian Troops Trying to Oust Ukraine" in titles
    assert all(a.published_at is None and a.source is None for a in articles)


def test_id_is_stable_and_derived_from_content_unless_given() -> None:
    a = make_article("Some text about things.")
    b = make_article("Some text about things.\r\n")
    assert a.id == b.id == a.content_hash[:16]
    assert make_article("Some text.", article_id="custom-1").id == "custom-1"


def test_dates_are_iso_or_unknown_never_invented() -> None:
    assert make_article("x y z.", published_at="2023-09-26T17:01:22+00:00").published_at == (
        "2023-09-26T17:01:22+00:00"
    )
    assert make_article("x y z.", published_at="2024-03-01").published_at == "2024-03-01"
    bad = make_article("x y z.", published_at="last Tuesday")
    assert bad.published_at is None and bad.warnings


@pytest.mark.parametrize(
    "value",
    [1700000000, 1700000000.0, 1700000000000, 1700000000000.0],
    ids=["seconds", "seconds-float", "milliseconds", "milliseconds-float"],
)
def test_numeric_dates_are_unix_seconds_or_milliseconds(value: float) -> None:
    article = make_article("x y z.", published_at=value)
    assert article.published_at == "2023-11-14T22:13:20+00:00" and not article.warnings
    assert published_timestamp(article.published_at) == 1700000000


def test_numeric_dates_keep_their_range_ends() -> None:
    assert make_article("x.", published_at=-2208988800).published_at == (
        "1900-01-01T00:00:00+00:00"
    )
    assert make_article("x.", published_at=7258118399).published_at == ("2199-12-31T23:59:59+00:00")


# JSON text, as it arrives: Python's json reads NaN and Infinity too.
IMPOSSIBLE_DATES = ["1e20", "-1e20", "NaN", "Infinity", "-Infinity", "true", "false", "9" * 400]


@pytest.mark.parametrize("raw", IMPOSSIBLE_DATES)
def test_impossible_numeric_dates_are_rejected_naming_the_field(raw: str) -> None:
    value = json.loads(raw)
    with pytest.raises(IngestError, match=r"^published_at: "):
        make_article("x y z.", published_at=value)


def test_a_record_with_an_impossible_date_fails_alone(tmp_path: Path) -> None:
    good = '{"id": "good-%d", "text": "Record %d is fine.", "published_at": %s}'
    bad = '{"id": "bad-%d", "text": "Record %d has a bad date.", "published_at": %s}'
    lines = [good % (0, 0, "1700000000")]
    lines += [bad % (i, i, raw) for i, raw in enumerate(IMPOSSIBLE_DATES, start=1)]
    lines += [good % (99, 99, "1700000000000")]
    (tmp_path / "batch.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    records = [good % (100, 100, '"2024-03-01"'), bad % (101, 101, "-1e20")]
    (tmp_path / "batch.json").write_text("[" + ",".join(records) + "]", "utf-8")

    items = list(read_paths([tmp_path]))
    stored = {i.id: i.published_at for i in items if isinstance(i, Article)}
    failed = {f.origin.split("/")[-1]: f.reason for f in items if isinstance(f, Failure)}
    assert stored == {
        "good-100": "2024-03-01",
        "good-0": "2023-11-14T22:13:20+00:00",
        "good-99": "2023-11-14T22:13:20+00:00",
    }
    expected = {"batch.json[1]"} | {f"batch.jsonl:{n}" for n in range(2, 10)}
    assert set(failed) == expected
    assert all(reason.startswith("published_at: ") for reason in failed.values())


def test_every_format_and_every_bad_input_reported_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Plain text article. It has two sentences.", "utf-8")
    (tmp_path / "b.md").write_text("# Markdown story\n\nBody of the markdown story.", "utf-8")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Page title</title></head><body><nav>Home | About</nav>"
        "<article><h1>Flood hits town</h1><p>" + "The river rose overnight and flooded "
        "the main street, officials said on Monday. " * 5 + "</p></article>"
        "<footer>Copyright</footer></body></html>",
        "utf-8",
    )
    (tmp_path / "d.json").write_text(
        json.dumps({"id": "rec-1", "text": "JSON record text.", "source": "Wire"}), "utf-8"
    )
    (tmp_path / "e.jsonl").write_text(
        json.dumps({"text": "Line one record."}) + "\n" + json.dumps({"title": "no text"}) + "\n"
        "{not json\n",
        "utf-8",
    )
    (tmp_path / "empty.txt").write_text("   \n", "utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")

    items = list(read_paths([tmp_path]))
    articles = [i for i in items if isinstance(i, Article)]
    failures = {
        Path(f.origin.split(":")[0]).name: f.reason for f in items if isinstance(f, Failure)
    }

    assert {a.text.split("\n")[0][:20] for a in articles} >= {
        "Plain text article. ",
        "# Markdown story",
        "JSON record text.",
        "Line one record.",
    }
    html = next(a for a in articles if a.origin and a.origin.endswith("c.html"))
    assert "river rose overnight" in html.text and "Home | About" not in html.text
    assert next(a for a in articles if a.id == "rec-1").source == "Wire"
    assert failures["empty.txt"] == "empty file"
    assert "binary" in failures["binary.txt"]
    assert "UTF-8" in failures["latin1.txt"]
    assert "unsupported" in failures["notes.pdf"]
    jsonl_reasons = [f.reason for f in items if isinstance(f, Failure) and "e.jsonl" in f.origin]
    assert "record has no 'text'" in jsonl_reasons
    assert any(r.startswith("invalid JSON") for r in jsonl_reasons)


def test_missing_path_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    items = list(read_paths([tmp_path / "nope"]))
    assert isinstance(items[0], Failure) and "no such file" in items[0].reason


def test_source_file_is_never_modified(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    raw = b"Title\r\n\r\nShare This Post\r\nBody.\r\n"
    path.write_bytes(raw)
    list(read_paths([path]))
    assert path.read_bytes() == raw
