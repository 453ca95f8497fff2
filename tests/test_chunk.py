"""Chunks are exact, sentence-aligned spans that the embedding model reads whole."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SEEDS, SHARED_EVAL, shipped_settings
from vectorstore.canonical import canonicalize
from vectorstore.chunk import chunk_text, count_tokens

CHUNKING = shipped_settings().chunking_config()


def _check_invariants(text: str, max_tokens: int) -> None:
    chunks = chunk_text("a", text, max_tokens, CHUNKING.overlap_sentences)
    covered = [False] * len(text)
    for i, c in enumerate(chunks):
        assert c.index == i
        assert 0 <= c.start < c.end <= len(text)
        assert text[c.start : c.end] == c.text
        assert c.tokens == count_tokens(c.text) <= max_tokens
        for k in range(c.start, c.end):
            covered[k] = True
    # Nothing but whitespace is left out of every chunk.
    assert all(covered[k] or text[k].isspace() for k in range(len(text)))


@given(st.text(max_size=3000))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_chunks_are_exact_spans_of_any_unicode_text(text: str) -> None:
    _check_invariants(text, max_tokens=40)


@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200).map(
            lambda s: s + ". "
        ),
        max_size=40,
    ).map("".join)
)
@settings(max_examples=100, deadline=None)
def test_chunks_are_exact_spans_of_sentence_like_text(text: str) -> None:
    _check_invariants(canonicalize(text), max_tokens=60)


def test_long_unbroken_text_is_split_within_budget() -> None:
    text = "x" * 5000 + " " + "word " * 800 + "😀" * 300
    _check_invariants(text, max_tokens=50)


def test_seed_chunks_respect_sentences_and_overlap() -> None:
    text = canonicalize(next(SEEDS.glob("002_*.txt")).read_text("utf-8"))
    chunks = chunk_text("s", text, max_tokens=180, overlap_sentences=1)
    assert len(chunks) > 1
    for c in chunks:
        assert c.text[-1] in '.!?”"’' or c.end == len(text)
    # consecutive chunks share the boundary sentence
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False))


@pytest.mark.model
def test_embedding_model_never_truncates_a_chunk(real_embedder) -> None:
    texts = [canonicalize(p.read_text("utf-8")) for p in SEEDS.glob("*.txt")]
    corpus = SHARED_EVAL / "multihop_corpus.jsonl"
    if not corpus.exists():
        # Said, not silently narrowed to the three seeds.
        pytest.skip(f"{corpus} is missing: the check needs real news text beyond the seeds")
    texts += [json.loads(line)["text"] for line in corpus.read_text("utf-8").splitlines()[:80]]
    worst = 0
    for text in texts:
        for c in chunk_text(
            "x", canonicalize(text), CHUNKING.max_tokens, CHUNKING.overlap_sentences
        ):
            worst = max(worst, real_embedder.word_pieces(c.text))
    assert 0 < worst <= 256
