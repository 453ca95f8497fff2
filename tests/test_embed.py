"""The local embedder: the ONNX graph and the torch model give the same vectors."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import vectorstore.embed as embed_module
from tests.conftest import local_embedding
from vectorstore.embed import LocalEmbedder

pytestmark = pytest.mark.model

TEXTS = [
    "How many people fled the Kursk region?",
    "Ukraine's army said on Tuesday that its forces had advanced 35 kilometres.",
    "Zelensky: «Мы не отступим» — 北京 reacted cautiously. 🙂",
    "x",
    # Over 256 word pieces: both backends must truncate at the same place.
    " ".join(["The central bank left interest rates unchanged, citing inflation."] * 50),
]


def _no_export(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError("export must not run")


@pytest.fixture(scope="module")
def torch_embedder(
    tmp_path_factory: pytest.TempPathFactory,
) -> LocalEmbedder:
    return LocalEmbedder(local_embedding(tmp_path_factory.mktemp("unused"), backend="torch"))


def test_the_production_backend_is_onnx(real_embedder: LocalEmbedder) -> None:
    assert real_embedder.backend == "onnx"


def test_onnx_and_torch_give_the_same_unit_vectors(
    real_embedder: LocalEmbedder, torch_embedder: LocalEmbedder
) -> None:
    onnx = real_embedder.embed(TEXTS)
    reference = torch_embedder.embed(TEXTS)
    assert onnx.shape == reference.shape == (len(TEXTS), 384)
    assert np.abs(onnx - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_a_vector(real_embedder: LocalEmbedder) -> None:
    together = real_embedder.embed(TEXTS)
    alone = np.vstack([real_embedder.embed([t]) for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-5


def test_both_backends_count_the_same_word_pieces(
    real_embedder: LocalEmbedder, torch_embedder: LocalEmbedder
) -> None:
    for text in TEXTS:
        assert real_embedder.word_pieces(text) == torch_embedder.word_pieces(text)


def test_the_exported_graph_is_reused(
    real_embedder: LocalEmbedder, real_model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert list(real_model_cache.glob("*.onnx")), "the session's export is in the cache"
    monkeypatch.setattr(embed_module, "export", _no_export)
    again = LocalEmbedder(local_embedding(real_model_cache))
    assert again.backend == "onnx"
    assert np.abs(again.embed(TEXTS[:2]) - real_embedder.embed(TEXTS[:2])).max() < 1e-6


def test_a_failed_export_falls_back_to_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embed_module, "export", _no_export)
    with caplog.at_level(logging.WARNING, logger="vectorstore.embed"):
        fallback = LocalEmbedder(local_embedding(tmp_path))
    assert fallback.backend == "torch"
    assert "ONNX backend unavailable" in caplog.text
    assert fallback.embed(["a question"]).shape == (1, 384)
    assert not list(tmp_path.glob("*"))


def test_threads_can_embed_at_once(real_embedder: LocalEmbedder) -> None:
    # The API embeds questions from a thread pool; the shared tokenizer must cope.
    questions = [f"What happened in Kursk on day {i}?" for i in range(48)]
    expected = real_embedder.embed(questions)
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda q: real_embedder.embed([q])[0], questions))
    assert np.abs(np.vstack(got) - expected).max() < 1e-5
