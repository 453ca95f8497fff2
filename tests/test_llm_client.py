"""LLMClient against a mocked OpenAI-compatible HTTP API (respx; no network)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai._base_client
import pytest
import respx

from service.llm import (
    LLMAuthError,
    LLMBadResponse,
    LLMClient,
    LLMError,
    LLMResult,
    LLMUnavailable,
    parse_json_object,
)
from service.settings import Settings

BASE_URL = "http://llm.test/v1"
CHAT_URL = f"{BASE_URL}/chat/completions"
MODELS_URL = f"{BASE_URL}/models"
KEY = "sk-test"

MakeClient = Callable[..., LLMClient]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "citations": {"type": "array"}},
    "required": ["answer", "citations"],
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings reads NEWSDESK_* and OPENAI_API_KEY; a developer's shell must not leak in.
    for name in list(os.environ):
        if name.startswith("NEWSDESK_") or name == "OPENAI_API_KEY":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the SDK's retry backoff instead of sleeping through it."""
    recorded: list[float] = []
    monkeypatch.setattr(openai._base_client.time, "sleep", recorded.append)
    return recorded


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_base_url": BASE_URL,
        "llm_api_key": KEY,
        "llm_model": "test-model",
        "llm_max_retries": 2,
        "llm_timeout_seconds": 2,
        "llm_prompt_cost_per_1k": 0.5,
        "llm_completion_cost_per_1k": 1.5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    # respx patches the `httpx` transport stack; newer openai SDKs default to their own
    # httpx2 client, so hand the SDK a plain httpx.Client to keep every request mocked.
    # One per module: building its TLS context costs more than most tests here.
    with httpx.Client() as client:
        yield client


@pytest.fixture
def make_client(http: httpx.Client) -> Callable[..., LLMClient]:
    def make(**overrides: Any) -> LLMClient:
        return LLMClient(make_settings(**overrides), http_client=http)

    return make


def completion(
    content: str | None,
    *,
    usage: dict[str, int] | None = None,
    finish_reason: str = "stop",
    refusal: str | None = None,
    model: str = "test-model-2025",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


GOOD = {"answer": "Prices rose [1].", "citations": [1]}
USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}


def ask(client: LLMClient, **kwargs: Any) -> LLMResult:
    return client.complete_json(
        system="Answer as JSON.",
        user="What happened?",
        schema=SCHEMA,
        schema_name="answer",
        **kwargs,
    )


def body_of(call: respx.models.Call) -> dict[str, Any]:
    return json.loads(call.request.content)


# --------------------------------------------------------------------------- happy paths


def test_structured_answer_usage_and_cost(mock: respx.MockRouter, make_client: MakeClient) -> None:
    route = mock.post(CHAT_URL).respond(200, json=completion(json.dumps(GOOD), usage=USAGE))

    result = ask(make_client(), max_tokens=321)

    assert result.data == GOOD
    assert result.raw == json.dumps(GOOD)
    assert result.model == "test-model-2025"
    assert result.usage.prompt_tokens == 1000
    assert result.usage.completion_tokens == 200
    assert result.usage.total_tokens == 1200
    # 1000/1000 * 0.5 + 200/1000 * 1.5
    assert result.usage.estimated_cost_usd == pytest.approx(0.8)

    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    sent = body_of(route.calls.last)
    assert sent["model"] == "test-model"
    assert sent["max_tokens"] == 321
    assert sent["messages"] == [
        {"role": "system", "content": "Answer as JSON."},
        {"role": "user", "content": "What happened?"},
    ]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": False},
    }


def test_default_max_tokens_and_cost_rounding(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).respond(
        200,
        json=completion(
            json.dumps(GOOD), usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        ),
    )
    client = make_client(
        llm_max_output_tokens=77, llm_prompt_cost_per_1k=0.00015, llm_completion_cost_per_1k=0.0006
    )

    result = ask(client)

    assert body_of(route.calls.last)["max_tokens"] == 77
    # 7e-3 * 0.00015 + 3e-3 * 0.0006 = 2.85e-6 -> 6 decimals
    assert result.usage.estimated_cost_usd == 3e-06


def test_missing_usage_counts_as_zero(mock: respx.MockRouter, make_client: MakeClient) -> None:
    mock.post(CHAT_URL).respond(200, json=completion(json.dumps(GOOD)))

    result = ask(make_client())

    assert result.usage.model_dump() == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "estimated_cost_usd": 0.0,
    }


def test_fenced_reply_with_prose(mock: respx.MockRouter, make_client: MakeClient) -> None:
    content = (
        "Sure! Here is the answer:\n```json\n"
        '{"answer": "Prices {rose}", "citations": [1, 2,],}\n'
        "```\nLet me know if you need more."
    )
    mock.post(CHAT_URL).respond(200, json=completion(content, usage=USAGE))

    result = ask(make_client())

    assert result.data == {"answer": "Prices {rose}", "citations": [1, 2]}
    assert result.raw == content


def test_structured_output_disabled_sends_no_response_format(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).respond(200, json=completion(json.dumps(GOOD)))

    ask(make_client(llm_structured_output=False))

    assert "response_format" not in body_of(route.calls.last)


def test_local_server_without_key_gets_placeholder(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).respond(200, json=completion(json.dumps(GOOD)))

    ask(make_client(llm_api_key=None))

    assert route.calls.last.request.headers["authorization"] == "Bearer not-needed"


# --------------------------------------------------------------------------- bad replies


def test_malformed_json_is_bad_response(mock: respx.MockRouter, make_client: MakeClient) -> None:
    mock.post(CHAT_URL).respond(200, json=completion('{"answer": "unterminated'))

    with pytest.raises(LLMBadResponse) as info:
        ask(make_client())

    assert info.value.code == "llm_bad_response"
    assert info.value.raw == '{"answer": "unterminated'


def test_missing_required_key_is_bad_response(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    mock.post(CHAT_URL).respond(200, json=completion('{"answer": "no citations"}'))

    with pytest.raises(LLMBadResponse, match="citations"):
        ask(make_client())


def test_truncated_reply_names_the_token_limit(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    mock.post(CHAT_URL).respond(
        200, json=completion('{"answer": "Prices ro', finish_reason="length")
    )

    with pytest.raises(LLMBadResponse, match="finish_reason=length"):
        ask(make_client())


@pytest.mark.parametrize("content", [None, "", "   \n"])
def test_empty_content_is_bad_response(
    mock: respx.MockRouter, content: str | None, make_client: MakeClient
) -> None:
    mock.post(CHAT_URL).respond(200, json=completion(content))

    with pytest.raises(LLMBadResponse, match="empty"):
        ask(make_client())


def test_refusal_is_bad_response(mock: respx.MockRouter, make_client: MakeClient) -> None:
    mock.post(CHAT_URL).respond(200, json=completion(None, refusal="I can't help with that."))

    with pytest.raises(LLMBadResponse, match="refused"):
        ask(make_client())


def test_no_choices_is_bad_response(mock: respx.MockRouter, make_client: MakeClient) -> None:
    body = completion("{}")
    body["choices"] = []
    mock.post(CHAT_URL).respond(200, json=body)

    with pytest.raises(LLMBadResponse):
        ask(make_client())


# --------------------------------------------------------------------------- retries and errors


def test_429_then_success(
    mock: respx.MockRouter, sleeps: list[float], make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).mock(
        side_effect=[
            httpx.Response(429, json={"error": {"message": "slow down"}}),
            httpx.Response(200, json=completion(json.dumps(GOOD))),
        ]
    )

    result = ask(make_client())

    assert result.data == GOOD
    assert route.call_count == 2
    assert len(sleeps) == 1  # the SDK backed off once (patched to not really sleep)


def test_500_every_time_is_unavailable_after_retries(
    mock: respx.MockRouter, sleeps: list[float], make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).respond(500, json={"error": {"message": "boom"}})

    with pytest.raises(LLMUnavailable) as info:
        ask(make_client(llm_max_retries=2))

    assert route.call_count == 3
    assert len(sleeps) == 2
    assert info.value.code == "llm_unavailable"
    assert info.value.status_code == 500
    assert "http://llm.test/v1" in str(info.value)
    assert KEY not in str(info.value)


def test_429_every_time_is_unavailable(mock: respx.MockRouter, make_client: MakeClient) -> None:
    route = mock.post(CHAT_URL).respond(429, json={"error": {"message": "quota"}})

    with pytest.raises(LLMUnavailable, match="429"):
        ask(make_client(llm_max_retries=1))

    assert route.call_count == 2


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout])
def test_timeout_is_unavailable(
    mock: respx.MockRouter, error: type[Exception], make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).mock(side_effect=error)

    with pytest.raises(LLMUnavailable, match="did not answer") as info:
        ask(make_client())

    assert route.call_count == 3
    assert "llm.test" in str(info.value)


def test_connection_refused_is_unavailable(mock: respx.MockRouter, make_client: MakeClient) -> None:
    route = mock.post(CHAT_URL).mock(side_effect=httpx.ConnectError("Connection refused"))

    with pytest.raises(LLMUnavailable, match="Could not connect") as info:
        ask(make_client())

    assert route.call_count == 3
    assert "http://llm.test/v1" in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_hides_key(mock: respx.MockRouter, status: int, make_client: MakeClient) -> None:
    # OpenAI really does echo (part of) the rejected key in its error message.
    route = mock.post(CHAT_URL).respond(
        status, json={"error": {"message": f"Incorrect API key provided: {KEY}."}}
    )

    with pytest.raises(LLMAuthError) as info:
        ask(make_client())

    assert route.call_count == 1  # auth failures are not retried
    assert info.value.code == "llm_auth"
    assert info.value.status_code == status
    assert "rejected the API key" in str(info.value)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)


def test_other_status_is_unavailable_with_code_and_redacted_detail(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).respond(
        404, json={"error": {"message": f"model 'test-model' not found (key {KEY})"}}
    )

    with pytest.raises(LLMUnavailable) as info:
        ask(make_client())

    assert route.call_count == 1
    assert info.value.status_code == 404
    assert "404" in str(info.value)
    assert "not found" in str(info.value)
    assert KEY not in str(info.value)


def test_unconfigured_client_fails_without_network(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    route = mock.route().respond(200, json=completion(json.dumps(GOOD)))
    client = make_client(llm_base_url=None, llm_api_key=None)

    with pytest.raises(LLMAuthError):
        ask(client)

    assert client.ping() is False
    assert route.call_count == 0


def test_every_error_is_an_llm_error() -> None:
    for cls in (LLMUnavailable, LLMAuthError, LLMBadResponse):
        assert issubclass(cls, LLMError)
    assert {LLMUnavailable.code, LLMAuthError.code, LLMBadResponse.code} == {
        "llm_unavailable",
        "llm_auth",
        "llm_bad_response",
    }


# --------------------------------------------------------------------------- structured fallback


def test_response_format_rejected_falls_back_and_remembers(
    mock: respx.MockRouter, make_client: MakeClient
) -> None:
    route = mock.post(CHAT_URL).mock(
        side_effect=[
            httpx.Response(
                400,
                json={
                    "object": "error",
                    "message": "response_format type json_schema is not supported",
                    "type": "BadRequestError",
                    "code": 400,
                },
            ),
            httpx.Response(200, json=completion(json.dumps(GOOD))),
            httpx.Response(200, json=completion(json.dumps(GOOD))),
        ]
    )
    client = make_client()
    assert client.structured_output is True

    result = ask(client)

    assert result.data == GOOD
    assert route.call_count == 2
    assert "response_format" in body_of(route.calls[0])
    assert "response_format" not in body_of(route.calls[1])
    assert client.structured_output is False

    ask(client)  # the endpoint is remembered: no doomed first attempt this time

    assert route.call_count == 3
    assert "response_format" not in body_of(route.calls[2])


def test_unrelated_400_is_not_retried(mock: respx.MockRouter, make_client: MakeClient) -> None:
    route = mock.post(CHAT_URL).respond(
        400, json={"error": {"message": "This model's maximum context length is 8192 tokens"}}
    )
    client = make_client()

    with pytest.raises(LLMUnavailable, match="400"):
        ask(client)

    assert route.call_count == 1
    assert client.structured_output is True


# --------------------------------------------------------------------------- ping


def test_ping_true(mock: respx.MockRouter, make_client: MakeClient) -> None:
    route = mock.get(MODELS_URL).respond(
        200,
        json={
            "object": "list",
            "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "me"}],
        },
    )

    assert make_client().ping() is True
    assert route.call_count == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500),
        httpx.Response(401, json={"error": {"message": "bad key"}}),
        httpx.ConnectError("Connection refused"),
        httpx.ReadTimeout("slow"),
    ],
)
def test_ping_false(mock: respx.MockRouter, response: Any, make_client: MakeClient) -> None:
    route = mock.get(MODELS_URL).mock(side_effect=[response])

    assert make_client().ping() is False
    assert route.call_count == 1  # a health check never waits through retries


# --------------------------------------------------------------------------- parse_json_object


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  \n{"a": 1}\n ', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('Here you go: {"a": {"b": [1, 2]}} Hope that helps!', {"a": {"b": [1, 2]}}),
        ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
        ('{"a": "}{ not a brace", "b": "\\"}"}', {"a": "}{ not a brace", "b": '"}'}),
        ('{"a": "keep ,} and ,] inside strings",}', {"a": "keep ,} and ,] inside strings"}),
        ('Use {curly} braces: {"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```\nor maybe {"a": 2}', {"a": 1}),
        ('{"a": "line one\nline two"}', {"a": "line one\nline two"}),
        ('\ufeff{"a": 1}', {"a": 1}),
    ],
)
def test_parse_json_object_accepts(text: str, expected: dict[str, Any]) -> None:
    assert parse_json_object(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "No JSON here at all.",
        "[1, 2, 3]",
        '"just a string"',
        '{"a": 1',
        "{not json}",
        '```json\n{"a": \n```',
    ],
)
def test_parse_json_object_rejects(text: str) -> None:
    with pytest.raises(LLMBadResponse):
        parse_json_object(text)
