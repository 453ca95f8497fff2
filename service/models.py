"""The result shapes shared by the HTTP API, the Slack bot and the CLI (what they ask
for is in service/requests.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EngineName = Literal["llm", "extractive"]


class Citation(BaseModel):
    """A verified span: ``quote == canonical_text(article_id)[start:end]`` always holds."""

    n: int
    article_id: str
    title: str
    source: str | None = None
    published_at: str | None = None
    start: int
    end: int
    quote: str
    # The article's text this span indexes: a citation keeps verifying after the article is
    # edited (GET /v1/articles/{id}/span?revision=N).
    revision: int = 1
    # When that revision replaced an earlier text, else None.
    updated_at: str | None = None
    # A signed, expiring link to the article's reader page with this span highlighted
    # (service/links.py); set where the result leaves the service (API, Slack).
    url: str | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated_cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        # Rounded like a single call's cost, so sums don't show float noise.
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            estimated_cost_usd=round(self.estimated_cost_usd + other.estimated_cost_usd, 6),
        )


class CitedResult(BaseModel):
    """The envelope every answer, summary and briefing shares: which engine made it, the
    verified citations its points refer to, what the LLM cost, and what verification
    dropped. These fields come first in the subclasses' JSON.

    The subclasses have no docstrings on purpose: one would become a "description" in
    their JSON schemas, which clients see and tests/snapshots/result_models.json pins.
    """

    engine: EngineName
    citations: list[Citation] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    citations_verified: int = 0
    citations_rejected: int = 0
    claims_dropped: int = 0
    refused: bool = False
    fallback_reason: str | None = None


class Answer(CitedResult):
    answer: str
    # An answer always says whether it refused, so unlike the others it has no default.
    refused: bool
    standalone_question: str | None = None


class Point(BaseModel):
    """One claim of a summary or briefing, bound to citation numbers."""

    text: str
    citations: list[int]


class Difference(BaseModel):
    """Sources disagree: each side keeps its own citation, from different articles."""

    topic: str
    sides: list[Point]


class SourceShare(BaseModel):
    article_id: str
    title: str
    source: str | None = None
    citations: int
    share: float
    # Outlets that ran the same story text (syndicated copies, counted once).
    also_published_by: list[str] = Field(default_factory=list)


class Summary(CitedResult):
    topic: str | None = None
    points: list[Point]
    differences: list[Difference] = Field(default_factory=list)
    balance: list[SourceShare] = Field(default_factory=list)


class Development(Point):
    date: str | None = None  # ISO date of the source article, or None when undated


class Perspective(BaseModel):
    actor: str
    points: list[Point]


class BriefingSource(BaseModel):
    article_id: str
    title: str
    source: str | None = None
    published_at: str | None = None
    url: str | None = None
    # When the article was changed after publication (its current revision), else None.
    updated_at: str | None = None
    also_published_by: list[str] = Field(default_factory=list)


class Briefing(CitedResult):
    title: str
    topic: str
    as_of: str | None = None
    audience: str | None = None
    bottom_line: list[Point]
    developments: list[Development]
    perspectives: list[Perspective]
    differences: list[Difference] = Field(default_factory=list)
    open_questions: list[Point] = Field(default_factory=list)
    sources: list[BriefingSource] = Field(default_factory=list)
    balance: list[SourceShare] = Field(default_factory=list)


# ---- stories (service/stories.py, service/coverage.py) ------------------------------


class OutletCoverage(BaseModel):
    """How one outlet covered a story, measured from its articles' text."""

    outlet: str | None = Field(description="The outlet; null for articles that name none.")
    articles: list[str] = Field(description="Its article ids in the story, oldest first.")
    copies: int = Field(description="Of those, syndicated copies of text another outlet ran first.")
    first_covered: str | None = Field(
        description="Its earliest article's published_at; null when all are undated."
    )
    characters: int = Field(description="Non-space characters measured, over its articles.")
    quoted_share: float = Field(description="Share of those characters inside quotation marks.")
    attributed_share: float = Field(
        description="Share in sentences that attribute what they say (said, according to...)."
    )
    own_voice_share: float = Field(description="Share in the outlet's own voice: the rest.")
    loaded_terms_own_voice: dict[str, int] = Field(
        description="Loaded words (service/neutrality.py) in its own voice, with counts."
    )
    loaded_terms_quoted: dict[str, int] = Field(
        description="Loaded words inside quotation marks, with counts."
    )
    loaded_terms_attributed: dict[str, int] = Field(
        description="Loaded words in attributed sentences, outside quotation marks."
    )


class Coverage(BaseModel):
    """The coverage and framing table of a story: one row per outlet, first to cover it
    first (undated last)."""

    outlets: list[OutletCoverage]


class StoryChange(BaseModel):
    """A merge or split the story went through."""

    kind: Literal["merge", "split"]
    at: str
    story_ids: list[str] = Field(description="merge: kept, then merged; split: from, new.")
    article_ids: list[str] = Field(description="split: the articles that moved.")


class StoryCard(BaseModel):
    """A story in a list."""

    id: str
    title: str
    outlets: list[str]
    outlets_count: int
    articles: int
    first_seen: str | None = None
    last_seen: str | None = None
    aliases: list[str] = Field(default_factory=list)


class StoryList(BaseModel):
    stories: list[StoryCard]


class StoryArticle(BaseModel):
    article_id: str
    title: str
    source: str | None = None
    published_at: str | None = None
    url: str | None = None
    # The story's first copy of the same text, when this article is a syndicated copy.
    copy_of: str | None = None


class OutletArticles(BaseModel):
    outlet: str | None = None
    articles: list[StoryArticle]


class TimelineEntry(Point):
    """When an article (copies counted once) first appeared, and its lead claim."""

    date: str | None = None
    article_id: str
    source: str | None = None
    also_published_by: list[str] = Field(default_factory=list)


class StoryDetail(BaseModel):
    id: str
    title: str
    aliases: list[str] = Field(default_factory=list)
    first_seen: str | None = None
    last_seen: str | None = None
    outlets: list[str]
    outlets_count: int
    articles: int
    by_outlet: list[OutletArticles]
    timeline: list[TimelineEntry]
    citations: list[Citation] = Field(default_factory=list)
    coverage: Coverage
    events: list[StoryChange] = Field(default_factory=list)


class StorySummary(Summary):
    story_id: str
    # Outlets of the story that no point or difference cites (the LLM may leave some
    # out); the extractive engine cites every one.
    outlets_not_cited: list[str] = Field(default_factory=list)


class StoryBriefing(Briefing):
    story_id: str
    outlets_not_cited: list[str] = Field(default_factory=list)
