"""Socket Mode end to end, over a real websocket: ``run_socket_mode`` (what ``newsdesk
slack`` runs) with slack_sdk's own Socket Mode client, against a local stand-in for Slack.

The stand-in is the Web API stub (``apps.connections.open`` hands out a ws://127.0.0.1
URL; chat.postMessage and the response_url are recorded) plus a websocket server that
sends ``hello`` and envelopes shaped exactly as Slack sends them. The bot finds both
through ``NEWSDESK_SLACK_API_URL``, as it would find GovSlack: nothing is patched.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from service.answer import AnswerService
from service.context import Newsdesk
from service.requests import AskBody
from service.settings import Settings
from service.slack import run_socket_mode
from service.slack.blocks import WORKING
from tests.conftest import SEEDS, HashingEmbedder
from tests.slack_helpers import (
    BOT_TOKEN,
    CHANNEL,
    USER,
    SlackStub,
    SocketModeStandIn,
    command_payload,
    event_payload,
    events_api_envelope,
    mention,
    slash_command_envelope,
)
from vectorstore.ingest import read_paths

APP_TOKEN = "xapp-1-A0NEWSDESK-test"
QUESTION = "How many inhabited localities were liberated in the autumn offensive?"


@pytest.fixture(scope="module")
def seeds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("socket-seeds")
    Newsdesk(settings(data, "http://unused/api/"), embedder=HashingEmbedder()).indexer.index(  # type: ignore[arg-type]
        read_paths([SEEDS])
    )
    return data


def settings(data_dir: Path, api_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        llm_base_url=None,
        llm_api_key=None,
        index_check_seconds=0.0,
        slack_bot_token=BOT_TOKEN,
        slack_app_token=APP_TOKEN,
        slack_api_url=api_url,
    )


@pytest.fixture
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    yield server
    server.stop()


def serve(nd: Newsdesk, slack: SocketModeStandIn) -> None:
    """Run the bot until the stand-in has every acknowledgement, then stop it and wait
    for the answers (lazy listeners) to finish."""
    stop = threading.Event()
    executor = ThreadPoolExecutor(max_workers=2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_socket_mode(nd, stop=stop, executor=executor)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    bot = threading.Thread(target=run, daemon=True)
    bot.start()
    try:
        acked = slack.wait_for_acks(60)
    finally:
        stop.set()
        bot.join(30)
    executor.shutdown(wait=True)
    assert not errors, errors
    assert acked, f"acknowledged: {sorted(slack.acked())}"


def test_mention_slash_command_and_retry_as_slack_sends_them(
    stub: SlackStub, seeds_dir: Path
) -> None:
    ts = "1700000000.000100"
    first = event_payload(mention(QUESTION, ts=ts), event_id="Ev0MENTION")
    envelopes = [
        # The first delivery: Slack sends retry_attempt 0 and an empty retry_reason.
        events_api_envelope(first, "env-mention"),
        slash_command_envelope(command_payload("/ask", QUESTION, stub.response_url()), "env-ask"),
        # The same event again, 3 s later: a real retry.
        events_api_envelope(first, "env-retry", retry_attempt=1, retry_reason="timeout"),
    ]
    nd = Newsdesk(settings(seeds_dir, stub.api_url()), embedder=HashingEmbedder())  # type: ignore[arg-type]
    with SocketModeStandIn(envelopes) as slack:
        stub.socket_url = slack.url
        serve(nd, slack)

    # The connection was opened with the app token, through NEWSDESK_SLACK_API_URL.
    assert stub.tokens("apps.connections.open") == [f"Bearer {APP_TOKEN}"]
    # Every envelope was acknowledged over the socket, the retry included.
    acks = slack.acked()
    assert set(acks) == {"env-mention", "env-ask", "env-retry"}
    assert "payload" not in acks["env-mention"] and "payload" not in acks["env-retry"]
    ack_reply: dict[str, Any] = acks["env-ask"]["payload"]
    assert ack_reply["response_type"] == "ephemeral"
    assert ack_reply["text"].startswith(":hourglass_flowing_sand: Working on it: How many")

    # The mention was answered once in its thread (the retry dropped), the command once.
    calls = Counter(stub.methods())
    assert calls == Counter(
        {
            "apps.connections.open": 1,
            "reactions.add": 1,
            "chat.postMessage": 1,
            "chat.update": 1,
            "response_url": 1,
        }
    )
    answer = AnswerService(nd).answer(AskBody(QUESTION))
    assert not answer.refused and "87 inhabited localities" in answer.answer
    [placeholder] = stub.to("chat.postMessage")
    assert placeholder["channel"] == CHANNEL and placeholder["thread_ts"] == ts
    assert placeholder["text"] == WORKING
    [update] = stub.to("chat.update")
    assert update["text"] == answer.answer
    [reply] = stub.to("response_url")
    assert reply["response_type"] == "in_channel"
    assert reply["blocks"][0]["elements"][0]["text"] == f"<@{USER}> asked: {QUESTION}"
    assert reply["blocks"][1]["text"]["text"] == answer.answer


def test_socket_mode_needs_the_connection_url(stub: SlackStub, seeds_dir: Path) -> None:
    """Without a Socket Mode stand-in, apps.connections.open fails and so does the start:
    the stub is where the client goes, not slack.com."""
    nd = Newsdesk(settings(seeds_dir, stub.api_url()), embedder=HashingEmbedder())  # type: ignore[arg-type]
    with pytest.raises(Exception, match="invalid_auth"):
        run_socket_mode(nd, stop=threading.Event())
    assert stub.tokens("apps.connections.open") == [f"Bearer {APP_TOKEN}"]


def test_newsdesk_slack_says_when_slack_refuses_the_connection(
    stub: SlackStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``newsdesk slack`` itself: apps.connections.open (on NEWSDESK_SLACK_API_URL) answers
    ``invalid_auth``, and the command exits with one line saying so."""
    import logging

    from typer.testing import CliRunner

    import service.cli

    for name, value in {
        "NEWSDESK_DATA_DIR": str(tmp_path / "data"),
        "NEWSDESK_SLACK_BOT_TOKEN": BOT_TOKEN,
        "NEWSDESK_SLACK_APP_TOKEN": APP_TOKEN,
        "NEWSDESK_SLACK_API_URL": stub.api_url(),
    }.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # the command installs its JSON log handler on the root logger
        result = CliRunner().invoke(service.cli.app, ["slack"])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 1
    # After the JSON log lines, the one line for the person at the terminal.
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Slack refused the Socket Mode connection ({stub.api_url()}): invalid_auth"
    )
    assert stub.tokens("apps.connections.open") == [f"Bearer {APP_TOKEN}"]
