"""A full disk under the embedded store: a clear 507, no hang, nothing acknowledged lost,
the server still answering, and writes accepted again once there is space.

Needs a small tmpfs of its own, so it runs where mounting is allowed (CI runs as root)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.context import Newsdesk
from tests.hardening import assert_error
from tests.writers import check_acknowledged, record

pytestmark = pytest.mark.mount


def _mount(args: list[str]) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)]):
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        yield disk
    finally:
        _mount(["umount", "-l", str(disk)])


def test_full_disk_is_a_clear_507_and_writes_resume_when_space_returns(
    small_disk: Path, make_newsdesk: Callable[..., Newsdesk]
) -> None:
    nd = make_newsdesk(data_dir=small_disk / "data", min_free_disk_mb=3, rate_limit="100000/minute")
    acked: dict[str, str] = {}
    with TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as client:
        refused = None
        for n in range(2000):
            body = record("disk", n * 5)  # every one long: several chunks
            r = client.post("/v1/articles", json=body)
            if r.status_code != 201:
                refused = r
                break
            acked[body["id"]] = body["text"]
        assert refused is not None, "16 MB never filled up"
        body = assert_error(refused, 507, "insufficient_storage")
        assert "disk" in body["error"]["message"]
        assert len(acked) > 10
        # Still answering, reads included, and refusing writes the same clear way.
        assert client.get("/healthz").status_code == 200
        assert client.post("/v1/ask", json={"question": "harbour boats"}).status_code == 200
        assert_error(client.post("/v1/articles", json=record("disk", 99995)), 507)

        # Space returns: the next write is accepted.
        assert _mount(["mount", "-o", "remount,size=64m", str(small_disk)])
        body = record("disk", 99990)
        r = client.post("/v1/articles", json=body)
        assert r.status_code == 201, r.text
        acked[body["id"]] = body["text"]

    verdict = check_acknowledged(nd, acked)
    assert verdict.problems == [] and verdict.present == len(acked)
