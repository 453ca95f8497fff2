"""Turn claimed quotes into verified citations, and claims into cited points.

Nothing reaches a client unless its quote was found in the article's canonical text and
the claim says what the quote says (service.claim_check); the span returned is always the
text found there, not the text the model typed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from service.citations import locate_quote, span_with_context
from service.claim_check import Similarity, check_claim
from service.models import Citation, Difference, Point, SourceShare
from service.neutrality import attributed_quote, loaded_terms_in_own_voice
from service.passages import Passage
from vectorstore.store import StoredArticle
from vectorstore.timing import stage

# The JSON every LLM prompt asks for: claims, each backed by verbatim quotes from
# numbered passages. The ledger below checks exactly this shape.
QUOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"passage": {"type": "integer"}, "quote": {"type": "string"}},
    "required": ["passage", "quote"],
}
CLAIMS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "quotes": {"type": "array", "items": QUOTE_SCHEMA},
        },
        "required": ["text", "quotes"],
    },
}


# Characters around a cited span in which a name may stand behind the quote's pronoun.
NEIGHBOURHOOD = 300
# What a difference is called when the model's topic isn't borne out by its sides.
DIFFERENCE_TOPIC = "Where the cited sources differ"


@dataclass
class CitationLedger:
    """Numbers verified spans in order of first use, and counts what was rejected."""

    passages: list[Passage]
    citations: list[Citation] = field(default_factory=list)
    verified: int = 0
    rejected: int = 0
    claims_dropped: int = 0
    neutralized: int = 0
    # Claim/quote similarity (the embedder), one more signal of claim_check when wired in.
    similarity: Similarity | None = None
    _by_span: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def _passage(self, number: Any) -> Passage | None:
        try:
            n = int(number)
        except (TypeError, ValueError):
            return None
        return self.passages[n - 1] if 1 <= n <= len(self.passages) else None

    def cite_span(self, article: StoredArticle, start: int, end: int) -> int:
        key = (article.id, start, end)
        if key not in self._by_span:
            n = len(self.citations) + 1
            self.citations.append(
                Citation(
                    n=n,
                    article_id=article.id,
                    title=article.title,
                    source=article.source,
                    published_at=article.published_at,
                    start=start,
                    end=end,
                    quote=article.text[start:end],
                    revision=article.revision,
                    updated_at=article.updated_at,
                )
            )
            self._by_span[key] = n
        return self._by_span[key]

    def mark(self) -> int:
        """A point to ``forget_since``: citations numbered above it are newer."""
        return len(self.citations)

    def forget_since(self, mark: int) -> None:
        """Un-cite what was first cited after ``mark``, for points checked and then dropped
        with the part they belonged to (an unsupported actor, a one-sided difference).

        Numbers are given in order of first use, so everything above ``mark`` was first
        cited by the dropped part and nothing kept refers to it; later citations then
        continue from ``mark`` and the numbering stays gapless."""
        for c in self.citations[mark:]:
            del self._by_span[(c.article_id, c.start, c.end)]
        del self.citations[mark:]

    def cite(self, passage_number: Any, quote: Any) -> int | None:
        """Citation number for a quote said to come from a passage, or None if not found."""
        found = self.locate(passage_number, quote)
        return None if found is None else self.cite_span(*found)

    def locate(self, passage_number: Any, quote: Any) -> tuple[StoredArticle, int, int] | None:
        """Where a quote said to come from a passage is, or None (and counted) if not found.

        The quote is looked for in the passage first, then in the whole article (models
        sometimes quote a neighbouring sentence), then in the other passages (models
        sometimes give the wrong passage number).
        """
        if not isinstance(quote, str):
            self.rejected += 1
            return None
        passage = self._passage(passage_number)
        order = ([passage] if passage else []) + [p for p in self.passages if p is not passage]
        for candidate in order:
            found = locate_quote(quote, candidate.text)
            if found:
                start, end = candidate.start + found.start, candidate.start + found.end
                break
        else:
            found = None
            if passage:
                whole = locate_quote(quote, passage.article.text)
                if whole:
                    candidate, start, end = passage, whole.start, whole.end
                    found = whole
        if not found:
            self.rejected += 1
            return None
        self.verified += 1
        return candidate.article, start, end

    def supports(self, text: str, spans: list[tuple[StoredArticle, int, int]]) -> bool:
        """Whether ``text`` says what the quoted spans say (service.claim_check)."""
        quotes = [article.text[start:end] for article, start, end in spans]

        def context() -> str:
            # The outlet, author and title count too: "..., Reuters reports" names the
            # cited article's outlet, which its text rarely does.
            return " ".join(
                " ".join(filter(None, (article.source, article.author, article.title)))
                + " "
                + article.text[slice(*span_with_context(article.text, start, end, NEIGHBOURHOOD))]
                for article, start, end in spans
            )

        def articles() -> str:
            return "\n".join({article.id: article.text for article, _, _ in spans}.values())

        return check_claim(text, quotes, context, articles=articles, similarity=self.similarity).ok

    @stage("verify")
    def point(self, raw: Any) -> Point | None:
        """A model's claim with its quotes, or None (and counted) when no quote verifies
        or the claim says something its quotes don't."""
        if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
            self.claims_dropped += 1
            return None
        spans: list[tuple[StoredArticle, int, int]] = []
        for q in raw.get("quotes") or []:
            if not isinstance(q, dict):
                self.rejected += 1
                continue
            found = self.locate(q.get("passage"), q.get("quote"))
            if found is not None and found not in spans:
                spans.append(found)
        text = raw["text"].strip()
        # Checked before anything is cited: a dropped claim leaves no citation behind.
        if not spans or not text or not self.supports(text, spans):
            self.claims_dropped += 1
            return None
        numbers = [self.cite_span(*span) for span in spans]
        if loaded_terms_in_own_voice(text):
            # The model used a loaded word in its own voice: show the cited source's
            # own words instead, attributed, rather than adopt its framing.
            self.neutralized += 1
            c = self.citations[numbers[0] - 1]
            text = attributed_quote(c.title, c.source, c.quote)
        return Point(text=text, citations=numbers)

    def points(self, raws: Any) -> list[Point]:
        if not isinstance(raws, list):
            return []
        return [p for p in (self.point(r) for r in raws) if p is not None]

    def differences(self, raws: Any) -> list[Difference]:
        """Disagreements survive only with two sides citing two different articles."""
        out: list[Difference] = []
        if not isinstance(raws, list):
            return out
        for raw in raws:
            if not isinstance(raw, dict):
                continue
            mark = self.mark()
            sides = self.points(raw.get("sides"))
            if len({self.article_of(s) for s in sides}) >= 2:
                topic = self.checked_label(raw.get("topic"), sides) or DIFFERENCE_TOPIC
                out.append(Difference(topic=topic, sides=sides))
            else:
                self.forget_since(mark)
                self.claims_dropped += 1
        return out

    def checked_label(self, label: Any, points: list[Point]) -> str | None:
        """A model-written label (a title, an actor, a topic) if the cited quotes of
        ``points`` bear it out like a claim (its names, numbers and words), else None."""
        if not isinstance(label, str) or not label.strip() or not points:
            return None
        quotes = [self.citations[n - 1].quote for p in points for n in p.citations]
        # A label states nothing, so it has no polarity of its own to compare.
        support = check_claim(label.strip(), quotes, "", ignore_polarity=True)
        return label.strip() if support.ok else None

    def article_of(self, point: Point) -> str:
        return self.citations[point.citations[0] - 1].article_id

    def balance(self) -> list[SourceShare]:
        """Share of citations per article, largest first."""
        counts = Counter(c.article_id for c in self.citations)
        total = sum(counts.values()) or 1
        first = {c.article_id: c for c in reversed(self.citations)}
        return [
            SourceShare(
                article_id=aid,
                title=first[aid].title,
                source=first[aid].source,
                citations=n,
                share=round(n / total, 4),
            )
            for aid, n in counts.most_common()
        ]
