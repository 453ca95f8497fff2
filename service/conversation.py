"""Follow-up questions made standalone, so retrieval sees what a conversation is about."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.llm import LLMClient, LLMError
from service.models import Usage
from service.prompts import load_prompt
from service.requests import HistoryMessage
from vectorstore.chunk import count_tokens, encoding

log = logging.getLogger(__name__)

CONDENSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string"}},
    "required": ["question"],
}
# The model sees the last few turns only: enough to resolve "they" and "that", and a
# bounded prompt however long the thread (chat UIs send the whole of it every time).
CONDENSE_HISTORY_MESSAGES = 10
# Tokens of earlier turns the condense prompt may carry. With the template, a question of
# up to 2,000 characters and the reply, the prompt stays inside an 8k-token window (the
# default NEWSDESK_LLM_CONTEXT_WINDOW is 16,000).
HISTORY_BUDGET_TOKENS = 3000
# One turn's share of that budget: a long answer with its sources is read from its
# beginning, which names what it is about, so it never crowds out the turns before it.
TURN_MAX_TOKENS = 1000
# A standalone question is one sentence.
CONDENSE_MAX_TOKENS = 200
# Without an LLM, a question this short is taken as a follow-up ("and in Kyiv?").
FOLLOW_UP_MAX_WORDS = 4

_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|what about|how about|then)\b|\b(they|them|their|it|its|that|those|"
    r"these|this|he|she|his|her|there)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class HistoryWindow:
    """The part of a conversation a question is read with: the most recent turns that
    fit the budget, in order, and how many earlier ones were left out."""

    messages: list[HistoryMessage]
    dropped: int
    # Kept turns longer than TURN_MAX_TOKENS: the model reads their beginning only.
    clipped: int


def clip_turn(text: str) -> str:
    """``text`` cut to its first TURN_MAX_TOKENS tokens."""
    tokens = encoding().encode(text, disallowed_special=())
    if len(tokens) <= TURN_MAX_TOKENS:
        return text
    # A cut can fall inside a multi-byte character, which decodes as U+FFFD.
    return encoding().decode(tokens[:TURN_MAX_TOKENS]).rstrip("\ufffd")


def recent_history(history: Sequence[HistoryMessage]) -> HistoryWindow:
    """The most recent turns, whole messages only, newest first until either limit is
    reached: CONDENSE_HISTORY_MESSAGES messages or HISTORY_BUDGET_TOKENS tokens (each
    turn counted at most TURN_MAX_TOKENS, as the model reads it)."""
    kept: list[HistoryMessage] = []
    used = clipped = 0
    for message in reversed(history):
        if len(kept) == CONDENSE_HISTORY_MESSAGES:
            break
        tokens = count_tokens(message.content)
        cost = min(tokens, TURN_MAX_TOKENS)
        if used + cost > HISTORY_BUDGET_TOKENS:
            break
        kept.append(message)
        used += cost
        clipped += tokens > TURN_MAX_TOKENS
    kept.reverse()
    return HistoryWindow(messages=kept, dropped=len(history) - len(kept), clipped=clipped)


def previous_user_question(history: list[HistoryMessage]) -> str | None:
    for message in reversed(history):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    return None


def looks_like_follow_up(question: str) -> bool:
    return bool(_FOLLOW_UP.search(question)) or len(question.split()) <= FOLLOW_UP_MAX_WORDS


def condense(
    llm: LLMClient | None, question: str, history: list[HistoryMessage]
) -> tuple[str, str, Usage]:
    """Standalone question for retrieval, the context to keep, and LLM usage.

    With an LLM the follow-up is rewritten by the model; without one (or when it fails)
    the previous question is carried along as context for follow-up-looking questions.
    Either way only the recent turns of ``recent_history`` are read.
    """
    history = recent_history(history).messages
    previous = previous_user_question(history)
    if not previous:
        return question, "", Usage()
    if llm is not None:
        convo = "\n".join(f"{m.role}: {clip_turn(m.content)}" for m in history)
        system, user = load_prompt("condense_question").render(history=convo, question=question)
        try:
            result = llm.complete_json(
                system=system,
                user=user,
                schema=CONDENSE_SCHEMA,
                schema_name="standalone_question",
                max_tokens=CONDENSE_MAX_TOKENS,
            )
            rewritten = str(result.data.get("question") or "").strip()
            if rewritten:
                return rewritten, "", result.usage
        except LLMError as exc:
            log.warning("condensing the question failed, using heuristics: %s", exc)
    if looks_like_follow_up(question):
        return f"{question} ({previous})", previous, Usage()
    return question, "", Usage()
