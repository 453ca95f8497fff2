"""Settings come from NEWSDESK_* variables, are documented in the README from one source,
and reach the storage layer as config objects; secrets never show in their repr."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import Field, SecretStr

from service.context import Newsdesk
from service.settings import GROUP_TITLES, Settings
from service.settings_doc import COMMAND, env_name, field_group, settings_table, with_table
from tests.conftest import ROOT
from vectorstore.config import (
    ChunkingConfig,
    KeywordConfig,
    LocalEmbeddingConfig,
    OpenAIEmbeddingConfig,
    RetrievalConfig,
    StoreConfig,
    StoryConfig,
)
from vectorstore.sources.config import FetchConfig, SourcesConfig


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


# ---- every setting documented, the README's table generated from them ----------------


def test_every_setting_has_a_description_and_a_known_group() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description and info.description.strip(), name
        assert field_group(info) in GROUP_TITLES, name


def test_a_choice_setting_names_each_choice() -> None:
    for name, info in Settings.model_fields.items():
        if get_origin(info.annotation) is Literal:
            for choice in get_args(info.annotation):
                assert f"`{choice}`" in (info.description or ""), (name, choice)


def test_readme_settings_table_is_generated_from_settings() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert with_table(readme, settings_table()) == readme, (
        f"README.md's settings table is stale: run {COMMAND}"
    )


def test_the_table_has_one_row_per_variable() -> None:
    table = settings_table()
    for name in Settings.model_fields:
        assert table.count(f"| `{env_name(name)}` |") == 1, name


def test_the_table_never_shows_a_secret_default() -> None:
    class WithSecret(Settings):
        demo_token: SecretStr = Field(
            SecretStr("shh-shipped"), description="A test.", json_schema_extra={"group": "slack"}
        )

    table = settings_table(WithSecret)
    assert "| `NEWSDESK_DEMO_TOKEN` | (secret) | A test. |" in table
    assert "shh-shipped" not in table


# ---- the storage layer gets its configuration, and has none of its own -------------


CONFIGS = (
    StoreConfig,
    StoryConfig,
    SourcesConfig,
    FetchConfig,
    LocalEmbeddingConfig,
    OpenAIEmbeddingConfig,
    ChunkingConfig,
    KeywordConfig,
    RetrievalConfig,
)


def _vectorstore_modules() -> list[Path]:
    return sorted((ROOT / "vectorstore").rglob("*.py"))


def test_vectorstore_imports_nothing_from_service() -> None:
    offending = []
    for path in _vectorstore_modules():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offending += [
                f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "service"
            ]
    assert offending == []


def test_vectorstore_configs_have_no_defaults() -> None:
    for cls in CONFIGS:
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING, (cls.__name__, f.name)
            assert f.default_factory is dataclasses.MISSING, (cls.__name__, f.name)


def _callables(module: object) -> Iterator[tuple[str, Callable[..., object]]]:
    for name, member in vars(module).items():
        if getattr(member, "__module__", None) != getattr(module, "__name__", None):
            continue
        if inspect.isfunction(member):
            yield name, member
        elif inspect.isclass(member):
            for attr, method in vars(member).items():
                if inspect.isfunction(method):
                    yield f"{name}.{attr}", method


def test_no_vectorstore_signature_defaults_a_setting() -> None:
    """A default for something Settings decides would be a second, drifting answer."""
    decided = set(Settings.model_fields)
    decided |= {f.name for cls in CONFIGS for f in dataclasses.fields(cls)}
    found = []
    for path in _vectorstore_modules():
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(dotted)
        for where, fn in _callables(module):
            for p in inspect.signature(fn).parameters.values():
                if p.name in decided and p.default is not inspect.Parameter.empty:
                    found.append(f"{where}({p.name}={p.default!r})")
    assert found == []


def test_settings_build_the_vectorstore_configs(tmp_path: Path) -> None:
    # Settings and StoreConfig share these names.
    store: dict[str, Any] = {
        "chroma_host": "chroma.internal",
        "chroma_port": 9000,
        "collection_prefix": "other",
        "repair_lease_seconds": 60.0,
        "repair_interval_seconds": 5.0,
        "min_free_disk_mb": 1,
        "syndication_min_jaccard": 0.9,
    }
    s = Settings(
        _env_file=None,
        data_dir=tmp_path,
        **store,
        embedding_batch_size=4,
        embedding_threads=2,
        embedding_backend="torch",
        chunk_tokens=100,
        chunk_overlap_sentences=0,
        index_check_seconds=7.0,
        candidates=11,
        rrf_k=3,
        dense_weight=2.0,
        max_chunks_per_article=1,
    )
    story = StoryConfig(
        window_hours=12.0,
        join_threshold=0.5,
        merge_threshold=0.9,
        term_weight=0.25,
        neighbours=4,
        min_chars=10,
        links=2,
    )
    with_stories = s.model_copy(
        update={f"story_{f.name}": getattr(story, f.name) for f in dataclasses.fields(story)}
    )
    assert with_stories.store_config() == StoreConfig(
        chroma_dir=tmp_path / "chroma", **store, stories=story
    )
    assert s.embedding_config() == LocalEmbeddingConfig(
        batch_size=4, threads=2, backend="torch", cache_dir=tmp_path / "models"
    )
    assert s.chunking_config() == ChunkingConfig(max_tokens=100, overlap_sentences=0)
    assert s.keyword_config() == KeywordConfig(
        directory=tmp_path / "keyword",
        check_seconds=7.0,
        log_overlap_seconds=60.0,
        log_retention_seconds=86400.0,
        reconcile_seconds=900.0,
    )
    assert s.retrieval_config() == RetrievalConfig(
        candidates=11, rrf_k=3, dense_weight=2.0, per_article=1
    )


def test_openai_embeddings_use_the_llm_endpoint_and_hide_its_key() -> None:
    s = Settings(
        _env_file=None,
        embedding_provider="openai",
        openai_embedding_model="text-embedding-3-large",
        llm_base_url="http://llm.internal/v1",
        llm_api_key="sk-secret-embeddings",
        llm_timeout_seconds=5.0,
        llm_max_retries=0,
    )
    config = s.embedding_config()
    assert config == OpenAIEmbeddingConfig(
        model="text-embedding-3-large",
        base_url="http://llm.internal/v1",
        api_key="sk-secret-embeddings",
        timeout_seconds=5.0,
        max_retries=0,
    )
    assert "sk-secret-embeddings" not in repr(config)


def test_newsdesk_hands_its_settings_to_the_vectorstore_objects(
    make_newsdesk: Callable[..., Newsdesk],
) -> None:
    nd = make_newsdesk(rrf_k=3, dense_weight=2.0, chunk_tokens=100, collection_prefix="other")
    assert nd.store.config == nd.settings.store_config()
    assert nd.retriever.config == nd.settings.retrieval_config()
    assert nd.indexer.chunking == nd.settings.chunking_config()
    assert nd.keyword.directory == nd.settings.keyword_dir
    assert nd.keyword.check_seconds == nd.settings.index_check_seconds
