"""Helpers shared by the fault, hostile-input, security, scale-out and fuzz tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

QUESTION = "How many individuals were fleeing their homes?"


def assert_error(
    response: httpx.Response, status: int | Iterable[int], code: str | None = None
) -> dict:
    """A JSON error in the documented shape, with no stack trace."""
    allowed = {status} if isinstance(status, int) else set(status)
    assert response.status_code in allowed, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    return body


def assert_citations_verbatim(
    client: Any, citations: list[dict], headers: dict | None = None
) -> None:
    """Every citation's quote is exactly ``canonical_text[start:end]`` of its article."""
    texts: dict[str, str] = {}
    for c in citations:
        aid = c["article_id"]
        if aid not in texts:
            r = client.get(f"/v1/articles/{aid}", headers=headers or {})
            assert r.status_code == 200, r.text[:300]
            texts[aid] = r.json()["text"]
        text = texts[aid]
        assert 0 <= c["start"] < c["end"] <= len(text), c
        assert text[c["start"] : c["end"]] == c["quote"], c


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; the last value, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process: no developer NEWSDESK_* settings or keys."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NEWSDESK_") and k != "OPENAI_API_KEY"
    }
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(overrides)
    return env


def end_process(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """Stop a child we started: SIGTERM, then SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
