"""Search: the passages hybrid retrieval finds for a query, each an exact span of its
article. One function for every surface: `newsdesk search`, POST /v1/search and the
LangChain retriever (service/integrations/langchain.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.articles import resolve_filters
from service.context import Newsdesk
from service.requests import SearchBody


# No docstring: it would become a "description" in the OpenAPI document.
class SearchHit(BaseModel):
    article_id: str
    title: str
    source: str | None = None
    published_at: str | None = None
    start: int = Field(description="Offset of the passage in the article's canonical text.")
    end: int = Field(description="text == canonical_text[start:end] of the article.")
    text: str
    score: float = Field(description="Fused rank score: higher is better; not a probability.")


def search(newsdesk: Newsdesk, body: SearchBody) -> list[SearchHit]:
    """The passages for ``body.query``, best first. Filters are checked as every feature
    checks them: unknown article ids and unknown outlets are errors, not empty results."""
    filters = resolve_filters(newsdesk, body.filters)
    hits = newsdesk.retriever.search(body.query, top_k=body.top_k, filters=filters, mode=body.mode)
    return [
        SearchHit(
            article_id=h.chunk.article_id,
            title=h.chunk.title,
            source=h.chunk.source,
            published_at=h.chunk.published_at,
            start=h.chunk.start,
            end=h.chunk.end,
            text=h.chunk.text,
            score=round(h.score, 6),
        )
        for h in hits
    ]
