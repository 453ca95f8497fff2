"""JSON-answering client for any OpenAI-compatible chat endpoint.

OpenAI, vLLM, Ollama, llama.cpp and Azure all speak ``/chat/completions``, but they
differ in what they accept (structured output above all) and in how tidy their JSON
is. This module hides those differences behind one call, ``LLMClient.complete_json``,
and the LLM errors of service/errors.py, whose stable ``code`` strings the API and the
Slack bot show or branch on.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from service.errors import LLMAuthError, LLMBadResponse, LLMError, LLMUnavailable
from service.models import Usage
from service.settings import Settings
from vectorstore.timing import stage

log = logging.getLogger(__name__)

# The SDK refuses to start without a key, but local servers (vLLM, Ollama,
# llama.cpp) ignore the Authorization header entirely.
PLACEHOLDER_API_KEY = "not-needed"

# A reachability check must answer quickly even when the endpoint hangs, and
# must not sit through the SDK's retry backoff.
PING_TIMEOUT_SECONDS = 5.0

# How much of a server's error text to quote: enough to diagnose, not a whole HTML page.
_MAX_DETAIL_CHARS = 300

# Words servers use when they reject ``response_format``; vLLM, llama.cpp and older
# Ollama builds phrase it differently, so match loosely.
_STRUCTURED_OUTPUT_HINTS = ("response_format", "response format", "json_schema", "json schema")


@dataclass
class LLMResult:
    data: dict[str, Any]
    usage: Usage
    model: str
    raw: str


# --------------------------------------------------------------------------- parsing


_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\r?\n?(.*?)```", re.DOTALL)


def parse_json_object(text: str) -> dict[str, Any]:
    """Extract one JSON object from a model reply, forgiving the usual LLM habits.

    Accepts plain JSON, JSON in Markdown code fences, JSON wrapped in prose (the
    outermost balanced ``{...}`` is taken) and trailing commas before ``}`` or ``]``.
    Raises ``LLMBadResponse`` when no object can be recovered.
    """
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        raise LLMBadResponse("The LLM returned an empty reply.", raw=text)

    whole = _loads_lenient(stripped)
    if isinstance(whole, dict):
        return whole
    if whole is not None:
        # A bare array or string is a deliberate answer, not a wrapped object; digging
        # an object out of it would silently return the wrong thing.
        raise LLMBadResponse(
            f"The LLM returned a JSON {type(whole).__name__}, expected an object.", raw=text
        )

    # Fenced blocks first: when a model fences its JSON, prose around it may contain
    # braces of its own.
    for block in _FENCE_RE.findall(stripped):
        found = _first_object(block)
        if found is not None:
            return found

    found = _first_object(stripped)
    if found is not None:
        return found
    raise LLMBadResponse("The LLM reply contains no parseable JSON object.", raw=text)


def check_required_keys(data: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise ``LLMBadResponse`` when a top-level ``required`` key of ``schema`` is absent."""
    required = schema.get("required") or []
    missing = [key for key in required if key not in data]
    if missing:
        raise LLMBadResponse(
            "The LLM reply is missing required key(s): " + ", ".join(sorted(missing)) + "."
        )


def _loads_lenient(text: str) -> Any | None:
    """``json.loads`` that also forgives trailing commas; ``None`` when it still fails."""
    # strict=False lets raw newlines and tabs inside strings through, which models emit.
    for candidate in (text, _strip_trailing_commas(text)):
        try:
            return json.loads(candidate, strict=False)
        except ValueError:
            continue
    return None


def _first_object(text: str) -> dict[str, Any] | None:
    """The first outermost balanced ``{...}`` in ``text`` that parses as a JSON object."""
    start = text.find("{")
    while start != -1:
        end = _matching_brace(text, start)
        if end is None:
            # Unbalanced from here on (typically a reply cut off at max_tokens); a later
            # '{' would only be a fragment of this same truncated object.
            return None
        parsed = _loads_lenient(text[start : end + 1])
        if isinstance(parsed, dict):
            return parsed
        # Skip the whole failed span: its inner braces are parts of it, not answers.
        start = text.find("{", end + 1)
    return None


def _matching_brace(text: str, start: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``start``; braces inside strings don't count."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _strip_trailing_commas(text: str) -> str:
    """Drop commas that directly precede ``}`` or ``]``, leaving string contents alone."""
    out: list[str] = []
    in_string = False
    escaped = False
    n = len(text)
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                continue
        out.append(ch)
    return "".join(out)


# --------------------------------------------------------------------------- client


class _BoundedRetryOpenAI(openai.OpenAI):
    """The SDK honours a server's Retry-After up to two minutes per retry; a 429 storm
    would then hold a request far past our timeout. Waits are capped so all retries of
    one call fit in half the configured timeout."""

    def __init__(self, *, max_wait_seconds: float = 60.0, **kwargs: Any) -> None:
        # with_options() copies the client through this constructor without our argument.
        # The copies (ping) make no retries, so the default never applies.
        super().__init__(**kwargs)
        self._max_wait_seconds = max_wait_seconds

    def _calculate_retry_timeout(self, *args: Any, **kwargs: Any) -> float:
        return min(super()._calculate_retry_timeout(*args, **kwargs), self._max_wait_seconds)


class LLMClient:
    """One configured endpoint. Cheap to keep for the process lifetime; thread-safe."""

    def __init__(self, settings: Settings, *, http_client: httpx.Client | None = None) -> None:
        self._settings = settings
        self._configured = settings.llm_configured
        self._key = settings.llm_key
        # Flipped off the first time the server rejects response_format, so later calls
        # don't pay for a doomed request each time.
        self._structured_supported = settings.llm_structured_output
        self._owns_http_client = http_client is None
        self._client = _BoundedRetryOpenAI(
            max_wait_seconds=settings.llm_timeout_seconds / (2 * max(1, settings.llm_max_retries)),
            base_url=settings.llm_base_url,
            api_key=self._key or PLACEHOLDER_API_KEY,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            http_client=http_client,
        )

    @property
    def base_url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    @property
    def structured_output(self) -> bool:
        """Whether the next call sends ``response_format``; False once the server refused it."""
        return self._structured_supported

    def close(self) -> None:
        # A caller-supplied httpx client is the caller's to close.
        if self._owns_http_client:
            self._client.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def complete_json(
        self,
        *,
        system: str,
        user: str,
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int | None = None,
    ) -> LLMResult:
        """Ask for one JSON object matching ``schema``; raise an ``LLMError`` otherwise."""
        if not self._configured:
            # Without base URL or key the SDK would send a placeholder key to
            # api.openai.com and get a 401 back; say so without the round trip.
            raise LLMAuthError(
                "No LLM endpoint is configured: set NEWSDESK_LLM_BASE_URL for a local "
                "server, or NEWSDESK_LLM_API_KEY / OPENAI_API_KEY for OpenAI."
            )

        request: dict[str, Any] = {
            "model": self._settings.llm_model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "max_tokens": max_tokens or self._settings.llm_max_output_tokens,
        }

        use_structured = self._structured_supported
        if use_structured:
            request["response_format"] = {
                "type": "json_schema",
                # strict=True would demand additionalProperties=false everywhere and is
                # unsupported by most compatible servers; the schema still guides decoding.
                "json_schema": {"name": schema_name, "schema": schema, "strict": False},
            }

        try:
            completion = self._create(request)
        except openai.BadRequestError as exc:
            if not (use_structured and _mentions_structured_output(exc)):
                raise self._translate(exc) from exc
            log.warning(
                "LLM endpoint %s rejected response_format=json_schema; "
                "retrying without structured output and not using it again.",
                self.base_url,
            )
            self._structured_supported = False
            request.pop("response_format")
            try:
                completion = self._create(request)
            except openai.OpenAIError as retry_exc:
                raise self._translate(retry_exc) from retry_exc
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc

        return self._to_result(completion, schema)

    def ping(self) -> bool:
        """True when ``GET /models`` answers successfully within a few seconds."""
        if not self._configured:
            return False
        timeout = min(PING_TIMEOUT_SECONDS, self._settings.llm_timeout_seconds)
        try:
            self._client.with_options(timeout=timeout, max_retries=0).models.list()
        except Exception:  # any failure at all means "not reachable" to a health check
            return False
        return True

    # ------------------------------------------------------------------ internals

    def _create(self, request: dict[str, Any]) -> Any:
        with stage("llm"):
            return self._client.chat.completions.create(**request)

    def _to_result(self, completion: Any, schema: dict[str, Any]) -> LLMResult:
        choices = getattr(completion, "choices", None)
        if not choices:
            raise LLMBadResponse("The LLM reply has no choices.")
        choice = choices[0]
        message = choice.message

        refusal = getattr(message, "refusal", None)
        if refusal:
            raise LLMBadResponse(f"The LLM refused to answer: {_clip(str(refusal))}", raw=refusal)

        content = message.content or ""
        if not content.strip():
            raise LLMBadResponse("The LLM returned an empty reply.", raw=content)

        try:
            data = parse_json_object(content)
            check_required_keys(data, schema)
        except LLMBadResponse as exc:
            if choice.finish_reason == "length":
                # A reply cut off mid-object looks like malformed JSON; name the real cause.
                raise LLMBadResponse(
                    f"{exc.message} The reply was cut off at the output token limit "
                    "(finish_reason=length); raise NEWSDESK_LLM_MAX_OUTPUT_TOKENS.",
                    raw=content,
                ) from exc
            exc.raw = content
            raise

        return LLMResult(
            data=data,
            usage=self._usage(getattr(completion, "usage", None)),
            model=getattr(completion, "model", None) or self._settings.llm_model,
            raw=content,
        )

    def _usage(self, usage: Any) -> Usage:
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion
        cost = (
            prompt / 1000 * self._settings.llm_prompt_cost_per_1k
            + completion / 1000 * self._settings.llm_completion_cost_per_1k
        )
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            estimated_cost_usd=round(cost, 6),
        )

    def _translate(self, exc: openai.OpenAIError) -> LLMError:
        """Map an SDK error (already retried by the SDK where retrying makes sense)."""
        where = self.base_url
        retries = self._settings.llm_max_retries
        if isinstance(exc, openai.APITimeoutError):
            return LLMUnavailable(
                f"The LLM endpoint {where} did not answer within "
                f"{self._settings.llm_timeout_seconds:g}s (tried {retries + 1} time(s))."
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailable(
                f"Could not connect to the LLM endpoint {where} (tried {retries + 1} time(s))."
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            # The server's own text is deliberately left out: OpenAI echoes (part of) the
            # rejected key back in it.
            return LLMAuthError(
                f"The LLM endpoint rejected the API key (HTTP {exc.status_code}) at {where}; "
                "check NEWSDESK_LLM_API_KEY or OPENAI_API_KEY.",
                status_code=exc.status_code,
            )
        if isinstance(exc, openai.RateLimitError):
            return LLMUnavailable(
                f"The LLM endpoint {where} is rate limiting requests (HTTP 429) "
                f"after {retries + 1} attempt(s).",
                status_code=exc.status_code,
            )
        if isinstance(exc, openai.InternalServerError):
            return LLMUnavailable(
                f"The LLM endpoint {where} failed with HTTP {exc.status_code} "
                f"after {retries + 1} attempt(s).",
                status_code=exc.status_code,
            )
        if isinstance(exc, openai.APIStatusError):
            return LLMUnavailable(
                f"The LLM endpoint {where} answered HTTP {exc.status_code}: "
                f"{self._redact(_clip(exc.message))}",
                status_code=exc.status_code,
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return LLMBadResponse(
                f"The LLM endpoint {where} returned a reply that is not a chat completion.",
                status_code=exc.status_code,
            )
        return LLMUnavailable(f"The LLM endpoint {where} failed: {self._redact(_clip(str(exc)))}")

    def _redact(self, text: str) -> str:
        # Servers sometimes quote request headers back in error bodies.
        if self._key:
            text = text.replace(self._key, "***")
        return text


def _mentions_structured_output(exc: openai.APIStatusError) -> bool:
    body = exc.body
    parts = [exc.message]
    if body is not None:
        parts.append(body if isinstance(body, str) else json.dumps(body, default=str))
    text = " ".join(parts).lower()
    return any(hint in text for hint in _STRUCTURED_OUTPUT_HINTS)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL_CHARS:
        return text[: _MAX_DETAIL_CHARS - 1] + "…"
    return text
