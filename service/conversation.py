"""Follow-up questions made standalone, so retrieval sees what a conversation is about."""

from __future__ import annotations

import logging
import re
from typing import Any

from service.llm import LLMClient, LLMError
from service.models import Usage
from service.prompts import load_prompt
from service.requests import HistoryMessage

log = logging.getLogger(__name__)

CONDENSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string"}},
    "required": ["question"],
}
# The model sees the last few turns only: enough to resolve "they" and "that", and a
# bounded prompt however long the thread.
CONDENSE_HISTORY_MESSAGES = 10
# A standalone question is one sentence.
CONDENSE_MAX_TOKENS = 200
# Without an LLM, a question this short is taken as a follow-up ("and in Kyiv?").
FOLLOW_UP_MAX_WORDS = 4

_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|what about|how about|then)\b|\b(they|them|their|it|its|that|those|"
    r"these|this|he|she|his|her|there)\b",
    re.IGNORECASE,
)


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
    """
    previous = previous_user_question(history)
    if not previous:
        return question, "", Usage()
    if llm is not None:
        convo = "\n".join(f"{m.role}: {m.content}" for m in history[-CONDENSE_HISTORY_MESSAGES:])
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
