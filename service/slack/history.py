"""A Slack thread (conversations.replies) as the conversation history of a question."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from service.requests import MAX_HISTORY_MESSAGES, HistoryMessage
from service.slack.blocks import WORKING

# <@U123>, <@U123|name>, <#C123|general>, <!here>, <!subteam^S1|@team>, <https://x|label>
_MARKUP = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
# Subtypes that are still someone talking; edits, joins, deletions and the like are not.
_TALK_SUBTYPES = {None, "bot_message", "thread_broadcast", "file_share", "me_message"}


def slack_to_plain(text: str, bot_user_id: str | None = None) -> str:
    """Slack's message markup as plain text: the bot's own mention removed, other
    mentions and links as their labels, entities decoded, whitespace collapsed."""

    def plain(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith("@"):
            if bot_user_id and target[1:] == bot_user_id:
                return " "
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target

    text = _MARKUP.sub(plain, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.replace("\u2060", "").split())


def ts_key(ts: str) -> tuple[int, int]:
    """Slack timestamps ("1700000000.000100") compared exactly, not as floats."""
    seconds, _, micros = str(ts).partition(".")
    return int(seconds or 0), int(micros or 0)


def is_bot_message(m: Mapping[str, Any], bot_user_id: str | None, bot_id: str | None) -> bool:
    return bool(
        (bot_user_id and m.get("user") == bot_user_id) or (bot_id and m.get("bot_id") == bot_id)
    )


def bot_in_thread(
    messages: Iterable[Mapping[str, Any]], bot_user_id: str | None, bot_id: str | None
) -> bool:
    """Whether the bot has spoken in the thread, or was mentioned in it."""
    mention = f"<@{bot_user_id}>" if bot_user_id else None
    return any(
        is_bot_message(m, bot_user_id, bot_id) or (mention and mention in (m.get("text") or ""))
        for m in messages
    )


def thread_history(
    messages: Iterable[Mapping[str, Any]],
    *,
    bot_user_id: str | None,
    bot_id: str | None,
    before_ts: str,
    limit: int = MAX_HISTORY_MESSAGES,
) -> list[HistoryMessage]:
    """The thread's messages before ``before_ts`` as user/assistant turns, oldest first.

    The bot's messages are the assistant (their ``text`` is the answer); other people are
    the user; other bots, progress placeholders and non-messages are left out.
    """
    cutoff = ts_key(before_ts)
    turns: list[HistoryMessage] = []
    for m in messages:
        ts = m.get("ts")
        if not ts or ts_key(ts) >= cutoff or m.get("subtype") not in _TALK_SUBTYPES:
            continue
        if is_bot_message(m, bot_user_id, bot_id):
            role = "assistant"
        elif m.get("bot_id"):
            continue
        else:
            role = "user"
        content = slack_to_plain(m.get("text") or "", bot_user_id)
        if not content or (role == "assistant" and content == slack_to_plain(WORKING)):
            continue
        turns.append(HistoryMessage.clipped(role, content))
    return turns[-limit:] if limit > 0 else turns
