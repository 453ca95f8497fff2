"""One fallback policy for every feature: the LLM first, the extractive engine if it fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from service.context import Newsdesk
from service.llm import LLMError

log = logging.getLogger(__name__)


class EngineResult(Protocol):
    fallback_reason: str | None


R = TypeVar("R", bound=EngineResult)


def llm_or_extractive(
    newsdesk: Newsdesk, with_llm: Callable[[], R], extractive: Callable[[], R], task: str
) -> R:
    """``with_llm()`` when an LLM is configured; ``extractive()`` without one, or when the
    LLM fails and NEWSDESK_LLM_FALLBACK=extractive, with the failure in fallback_reason.
    With the fallback off, the LLMError reaches the caller (HTTP 502/503/504)."""
    if newsdesk.llm is None:
        return extractive()
    try:
        return with_llm()
    except LLMError as exc:
        if newsdesk.settings.llm_fallback != "extractive":
            raise
        log.warning("LLM failed (%s); %s with the extractive engine", exc.code, task)
        result = extractive()
        result.fallback_reason = f"{exc.code}: {exc}"
        return result
