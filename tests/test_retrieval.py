"""Hybrid retrieval: the right passage first, filters, diversity, and a Chroma server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.context import Newsdesk
from tests.chroma_server import ChromaServer
from tests.conftest import SEEDS, HashingEmbedder
from vectorstore.ingest import make_article, read_paths
from vectorstore.retrieve import diversify, mentioned_sources, reciprocal_rank_fusion
from vectorstore.store import ArticleFilter


@pytest.mark.model
def test_evacuation_passage_comes_first_with_its_span(seeded: Newsdesk) -> None:
    hits = seeded.retriever.search("How many people fled Kursk?", top_k=5)
    top = hits[0].chunk
    assert "121,000" in top.text
    article = seeded.store.get_article(top.article_id)
    assert article.text[top.start : top.end] == top.text


@pytest.mark.model
def test_hybrid_finds_what_either_retriever_finds(seeded: Newsdesk) -> None:
    q = "General Gerasimov capture of Ukrainian troops"
    hybrid = {h.chunk.id for h in seeded.retriever.search(q, top_k=8)}
    dense = seeded.retriever.search(q, top_k=1, mode="dense", diversity=False)[0].chunk.id
    keyword = seeded.retriever.search(q, top_k=1, mode="keyword", diversity=False)[0].chunk.id
    assert {dense, keyword} <= hybrid


def test_fusion_rewards_agreement_between_rankings() -> None:
    from vectorstore.store import StoredChunk

    def c(i: str) -> StoredChunk:
        return StoredChunk(i, "a" + i, "v", 0, 0, 1, i, "t", None, None)

    fused = reciprocal_rank_fusion({"dense": [c("1"), c("2")], "keyword": [c("2"), c("3")]}, k=10)
    assert fused[0].chunk.id == "2"


def test_diversity_caps_one_article_when_others_are_relevant() -> None:
    from vectorstore.retrieve import Hit
    from vectorstore.store import StoredChunk

    hits = [Hit(StoredChunk(f"x{i}", "x", "v", i, 0, 1, "", "", None, None), 1.0) for i in range(5)]
    hits += [Hit(StoredChunk("y0", "y", "v", 0, 0, 1, "", "", None, None), 0.5)]
    top = diversify(hits, top_k=4, per_article=2)
    assert [h.article_id for h in top] == ["x", "x", "y", "x"]


def test_filters_by_article_source_and_date(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index(
        [
            make_article(
                "Storm hits the coast of Alba.",
                article_id="1",
                source="Herald",
                published_at="2024-01-05",
            ),
            make_article(
                "Storm hits the coast of Alba again.",
                article_id="2",
                source="Gazette",
                published_at="2024-03-05",
            ),
            make_article("Storm season report for Alba.", article_id="3"),
        ]
    )
    search = newsdesk.retriever.search

    def ids(**f: object) -> set[str]:
        return {h.article_id for h in search("storm Alba", top_k=10, filters=ArticleFilter(**f))}

    assert ids() == {"1", "2", "3"}
    assert ids(sources=("Herald",)) == {"1"}
    assert ids(article_ids=("2", "3")) == {"2", "3"}
    assert ids(published_after="2024-02-01") == {"2"}
    assert ids(published_before="2024-02-01") == {"1"}


def test_sources_named_in_a_question_are_recognised() -> None:
    known = {"The Verge", "TechCrunch", "Sporting News", "AP"}
    q = "Did TechCrunch report it before the verge did?"
    assert mentioned_sources(q, known) == ["TechCrunch", "The Verge"]


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server").start()
    yield server
    server.stop()


@pytest.mark.server
def test_ingest_and_search_against_a_real_chroma_server(
    chroma_server: ChromaServer, settings
) -> None:  # type: ignore[no-untyped-def]
    s = settings.model_copy(update={"chroma_host": "127.0.0.1", "chroma_port": chroma_server.port})
    nd = Newsdesk(s, embedder=HashingEmbedder())
    report = nd.indexer.index(read_paths([SEEDS]))
    assert report.added == 3
    # a second process (replica) sees the same store, dense and keyword
    other = Newsdesk(
        s.model_copy(update={"data_dir": s.data_dir / "replica"}), embedder=HashingEmbedder()
    )
    hits = other.retriever.search("121,000 individuals fleeing their homes", top_k=3)
    assert "121,000" in hits[0].chunk.text
    assert other.keyword.search("Gerasimov", 3)
    assert nd.store.delete_article(hits[0].article_id)
    assert all(
        h.article_id != hits[0].article_id for h in other.retriever.search("fleeing", top_k=5)
    )
