"""Every failure the service reports to a caller rather than crashing on, each with a
stable ``code``: the code the HTTP API answers with, so clients can match on it.

Each surface maps these once: the API to a status and JSON body (service/api/errors.py),
the command line to one line and exit status 1 (``_reported`` in service/cli.py), Slack
to a short message (``friendly_error`` in service/slack/app.py).

The store's errors (vectorstore.store.StoreError and its subclasses) are part of the same
taxonomy and carry codes of their own, but vectorstore knows nothing of this package, so
they don't share the base class: ``REPORTED`` names both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from vectorstore.store import StoreError


class NewsdeskError(Exception):
    """Base of the service's own errors."""

    code: ClassVar[str] = "error"


class InvalidRequest(NewsdeskError, ValueError):
    """The request breaks a rule of its model (service/requests.py); ``field`` is where,
    dotted ("filters.published_after"), and ``value`` what was given there."""

    code: ClassVar[str] = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class QuestionTooLong(InvalidRequest):
    """The question (or a summary's or briefing's topic) is over its length limit."""

    code: ClassVar[str] = "question_too_long"

    def __init__(self, field: str, limit: int, value: object = None) -> None:
        super().__init__(
            f"The {field} is longer than {limit} characters.", field=field, value=value
        )
        self.limit = limit


class NothingFound(NewsdeskError, LookupError):
    """No stored article matches the request, or none has a sentence to work with."""

    code: ClassVar[str] = "nothing_found"


class UnknownArticle(NothingFound):
    """The request names article ids the store doesn't hold. A mistake in the request,
    not an empty result; a NothingFound still, as callers have long caught it as one."""

    code: ClassVar[str] = "unknown_article"

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(f"unknown article id(s): {', '.join(missing)}")
        self.missing = list(missing)


class NothingIngested(NothingFound):
    """The store holds no article yet."""

    code: ClassVar[str] = "nothing_ingested"


class LLMError(NewsdeskError):
    """Base of every error the LLM client (service/llm.py) raises."""

    code: ClassVar[str] = "llm_error"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class LLMUnavailable(LLMError):
    """Endpoint down, unreachable, too slow, overloaded or erroring after the SDK's retries."""

    code: ClassVar[str] = "llm_unavailable"


class LLMAuthError(LLMError):
    """The endpoint refused our credentials (401/403), or none were configured."""

    code: ClassVar[str] = "llm_auth"


class LLMBadResponse(LLMError):
    """The model answered, but not with the JSON object we asked for."""

    code: ClassVar[str] = "llm_bad_response"

    def __init__(
        self, message: str, *, raw: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        # Kept off the message: replies can be long, but callers may want to log them.
        self.raw = raw


# What a surface reports as a message (anything else is a bug: logged, a generic reply).
REPORTED: tuple[type[Exception], ...] = (NewsdeskError, StoreError)
