"""`newsdesk ingest --api`: files go to a running server, and a server restart mid-run
costs retries, not files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx

from service.remote_ingest import RemoteIngestError, ingest_through_api

URL = "http://newsdesk.test"


def _inbox(tmp_path: Path, n: int) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"a{i}.txt").write_text(f"Article {i} says the harbour reopened.", "utf-8")
    return inbox


def _stored() -> httpx.Response:
    return httpx.Response(
        201,
        json={
            "added": 1,
            "updated": 0,
            "unchanged": 0,
            "failed": 0,
            "chunks": 1,
            "article_ids": ["x"],
            "errors": [],
            "warnings": [],
        },
    )


def test_a_request_that_got_no_answer_is_sent_again(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path, 3)
    with respx.mock(assert_all_called=True) as router:
        route = router.post(f"{URL}/v1/articles").mock(
            side_effect=[
                httpx.ConnectError("restarting"),
                httpx.ReadError("killed"),
                _stored(),
                _stored(),
                _stored(),
            ]
        )
        report = ingest_through_api(URL, [inbox], retry_seconds=30)
    assert route.call_count == 5
    assert (report.added, report.failed, report.chunks) == (3, 0, 3)


def test_a_server_that_stays_away_is_one_clear_error(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path, 1)
    with respx.mock() as router:
        router.post(f"{URL}/v1/articles").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(RemoteIngestError, match="cannot reach the Newsdesk server"):
            ingest_through_api(URL, [inbox], retry_seconds=0.5)


def test_a_rejected_file_is_reported_and_the_rest_are_sent(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path, 2)
    bad = httpx.Response(422, json={"error": {"code": "invalid_article", "message": "empty"}})
    with respx.mock() as router:
        router.post(f"{URL}/v1/articles").mock(side_effect=[bad, _stored()])
        report = ingest_through_api(URL, [inbox])
    assert report.added == 1 and report.failed == 1
    assert report.errors[0]["reason"] == "empty"


def test_a_refused_key_stops_the_run(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path, 2)
    denied = httpx.Response(
        401, json={"error": {"code": "unauthorized", "message": "Invalid API key."}}
    )
    with respx.mock() as router:
        router.post(f"{URL}/v1/articles").mock(return_value=denied)
        with pytest.raises(RemoteIngestError, match="401: Invalid API key"):
            ingest_through_api(URL, [inbox], api_key="wrong")
