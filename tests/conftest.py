"""Shared fixtures. Only tests marked ``model`` load the real embedding model, once."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from service.context import Newsdesk  # noqa: E402
from service.settings import Settings  # noqa: E402
from vectorstore.config import LocalEmbeddingConfig  # noqa: E402

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED_EVAL = ROOT.parent / "shared" / "eval"


def shipped_settings(**overrides: Any) -> Settings:
    """The defaults as shipped, whatever NEWSDESK_* variables the developer has set."""
    return Settings.model_construct(**overrides)


def local_embedding(cache_dir: Path, **changes: Any) -> LocalEmbeddingConfig:
    """The production local embedder's configuration, its ONNX export kept in cache_dir."""
    config = shipped_settings(model_dir=cache_dir).embedding_config()
    assert isinstance(config, LocalEmbeddingConfig)
    return dataclasses.replace(config, **changes)


class HashingEmbedder:
    """A fast, deterministic stand-in: bag of hashed words, for tests about plumbing.

    Texts sharing words get similar vectors, so retrieval tests on it still mean
    something, but quality claims are only made with the real model.
    """

    model_id = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
                out[row, h % self.dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] /= norm if norm else 1.0
            if not norm:
                out[row, 0] = 1.0
        return out


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        chroma_host=None,
        llm_base_url=None,
        llm_api_key=None,
        index_check_seconds=0.0,
    )


@pytest.fixture
def make_newsdesk(settings: Settings) -> Callable[..., Newsdesk]:
    def make(embedder: object | None = None, **overrides: object) -> Newsdesk:
        s = settings.model_copy(update=overrides) if overrides else settings
        return Newsdesk(s, embedder=embedder or HashingEmbedder())  # type: ignore[arg-type]

    return make


@pytest.fixture
def newsdesk(make_newsdesk: Callable[..., Newsdesk]) -> Newsdesk:
    return make_newsdesk()


@pytest.fixture
def nd(settings: Settings) -> Newsdesk:
    """The seeds ingested with the hashing embedder: a fast store for API-level tests."""
    from vectorstore.ingest import read_paths

    newsdesk = Newsdesk(settings, embedder=HashingEmbedder())  # type: ignore[arg-type]
    newsdesk.indexer.index(read_paths([SEEDS]))
    return newsdesk


@pytest.fixture
def client(nd: Newsdesk) -> Iterator[TestClient]:
    """The HTTP API over ``nd``; server errors come back as responses, as in production."""
    from fastapi.testclient import TestClient

    from service.api import create_app

    with TestClient(create_app(newsdesk=nd), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def real_embedder(real_model_cache: Path) -> object:
    """The packaged all-MiniLM-L6-v2 on the production backend; loaded once for the run."""
    from vectorstore.embed import LocalEmbedder

    return LocalEmbedder(local_embedding(real_model_cache))


@pytest.fixture(scope="session")
def real_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's ONNX export of the model lives (exported once, ~10 s)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory, real_embedder: object) -> Path:
    """A data dir with the seeds ingested with the real model, shared read-only."""
    from vectorstore.ingest import read_paths

    data = tmp_path_factory.mktemp("seeded")
    s = Settings(_env_file=None, data_dir=data, llm_base_url=None, llm_api_key=None)
    Newsdesk(s, embedder=real_embedder).indexer.index(read_paths([SEEDS]))  # type: ignore[arg-type]
    return data


@pytest.fixture
def seeded(seeded_dir: Path, real_embedder: object, settings: Settings) -> Newsdesk:
    s = settings.model_copy(update={"data_dir": seeded_dir})
    return Newsdesk(s, embedder=real_embedder)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real keys or settings."""
    for name in list(os.environ):
        if name.startswith("NEWSDESK_") or name == "OPENAI_API_KEY":
            monkeypatch.delenv(name, raising=False)
