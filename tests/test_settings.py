"""Settings come from NEWSDESK_* variables; secrets never show in their repr."""

from __future__ import annotations

import pytest

from service.settings import Settings


def test_prefixed_env_vars_and_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_API_KEYS", "alpha, beta")
    monkeypatch.setenv("NEWSDESK_TOP_K", "5")
    monkeypatch.setenv("NEWSDESK_LLM_BASE_URL", "http://localhost:8000/v1")
    s = Settings(_env_file=None)
    assert [k.get_secret_value() for k in s.api_keys] == ["alpha", "beta"]
    assert s.top_k == 5 and s.llm_configured
    assert "alpha" not in repr(s)


def test_openai_api_key_is_accepted_as_the_llm_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-var")
    s = Settings(_env_file=None)
    assert s.llm_key == "sk-from-openai-var" and s.llm_configured


def test_without_endpoint_or_key_the_extractive_engine_answers() -> None:
    assert not Settings(_env_file=None).llm_configured
