"""Verified points to results, the same way for every engine, so an answer that fell back
to the extractive engine has exactly the shape of an LLM one."""

from __future__ import annotations

from typing import TypedDict

from service.engines.protocol import BriefJob
from service.models import (
    Answer,
    Briefing,
    BriefingSource,
    Development,
    Difference,
    EngineName,
    Perspective,
    Point,
    Summary,
    Usage,
)
from service.verify import CitationLedger
from vectorstore.store import StoredArticle

REFUSAL = "The sources don't say."


class VerificationCounts(TypedDict):
    citations_verified: int
    citations_rejected: int
    claims_dropped: int


def verification_counts(ledger: CitationLedger) -> VerificationCounts:
    return {
        "citations_verified": ledger.verified,
        "citations_rejected": ledger.rejected,
        "claims_dropped": ledger.claims_dropped,
    }


def answer_result(
    points: list[Point], ledger: CitationLedger, engine: EngineName, usage: Usage
) -> Answer:
    """The cited points as one text, each followed by its citation numbers; a refusal
    when no point survived verification."""
    counts = verification_counts(ledger)
    if not points:
        return Answer(answer=REFUSAL, refused=True, engine=engine, usage=usage, **counts)
    text = " ".join(f"{p.text} " + "".join(f"[{n}]" for n in p.citations) for p in points)
    return Answer(
        answer=text.strip(),
        refused=False,
        engine=engine,
        citations=ledger.citations,
        usage=usage,
        **counts,
    )


def summary_result(
    topic: str | None,
    engine: EngineName,
    ledger: CitationLedger,
    points: list[Point],
    differences: list[Difference],
    *,
    usage: Usage,
    refused: bool,
) -> Summary:
    return Summary(
        topic=topic,
        engine=engine,
        points=points,
        differences=differences,
        citations=ledger.citations,
        balance=ledger.balance(),
        usage=usage,
        refused=refused,
        **verification_counts(ledger),
    )


# Sorts after every ISO date: undated developments come last.
UNDATED = "9999"


def article_date(article: StoredArticle) -> str | None:
    return article.published_at[:10] if article.published_at else None


def briefing_result(
    job: BriefJob,
    engine: EngineName,
    ledger: CitationLedger,
    *,
    title: str,
    bottom_line: list[Point],
    developments: list[Development],
    perspectives: list[Perspective],
    differences: list[Difference],
    open_questions: list[Point],
    usage: Usage,
    refused: bool,
) -> Briefing:
    return Briefing(
        title=title,
        topic=job.topic,
        as_of=job.as_of,
        audience=job.audience,
        engine=engine,
        bottom_line=bottom_line,
        developments=developments,
        perspectives=perspectives,
        differences=differences,
        open_questions=open_questions,
        sources=[
            BriefingSource(
                article_id=a.id,
                title=a.title,
                source=a.source,
                published_at=a.published_at,
                url=a.url,
                updated_at=a.updated_at,
            )
            for a in job.articles
        ],
        citations=ledger.citations,
        balance=ledger.balance(),
        usage=usage,
        refused=refused,
        **verification_counts(ledger),
    )
