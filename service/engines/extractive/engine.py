"""The extractive engine: answers, summaries and briefings made of source sentences.

No model beyond the embedder, no network. Every claim is a verbatim sentence of an
article, presented as that article's words, so it is both verifiable and neutral by
construction. It selects and orders; it never paraphrases.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from service.engines.extractive.answers import (
    COMPARE_YOURSELF,
    MIN_AGREEING_ARTICLES,
    agreed_name,
    asks_for_name,
    asks_for_verdict,
    labelled_quote,
    mentioned_outlets,
)
from service.engines.extractive.disagreements import find_disagreements
from service.engines.extractive.relevance import Rule, Support, support_for
from service.engines.extractive.scoring import (
    Scored,
    SummaryPriors,
    centrality_scores,
    lead_weighted_scores,
)
from service.engines.extractive.selection import pick_answer_sentences, select_balanced
from service.engines.extractive.sentence_roles import actor_of, is_development, is_open_question
from service.engines.extractive.sentences import Sentence, article_sentences, is_prose
from service.engines.extractive.vectors import SentenceEmbedder
from service.engines.protocol import AnswerJob, BriefJob, SummaryJob
from service.engines.results import (
    UNDATED,
    answer_result,
    article_date,
    briefing_result,
    summary_result,
)
from service.errors import NothingFound
from service.models import (
    Answer,
    Briefing,
    Development,
    Difference,
    EngineName,
    Perspective,
    Point,
    Summary,
    Usage,
)
from service.neutrality import attributed_quote
from service.verify import CitationLedger
from vectorstore.retrieve import mentioned_days
from vectorstore.store import StoredArticle

# Sizes below are the first version's, set by hand; the seed tests pin their results.
# An answer's sentences (at most four) are picked from this many best-ranked ones.
ANSWER_CANDIDATES = 16
# Sentences read per article for summaries and briefings: bounds embedding time on very
# long articles.
MAX_SENTENCES_PER_ARTICLE = 80
# Disagreements are looked for among this many best-scored sentences (pairs grow
# quadratically).
DIFFERENCE_CANDIDATES = 80
# Briefing sections: (points, words) for the bottom line, developments and open questions;
# perspectives of the top actors, each with its best few attributed sentences.
BOTTOM_LINE_POINTS, BOTTOM_LINE_WORDS = 2, 90
DEVELOPMENT_POINTS, DEVELOPMENT_WORDS = 6, 260
OPEN_QUESTION_POINTS, OPEN_QUESTION_WORDS = 3, 120
MAX_ACTORS = 4
POINTS_PER_ACTOR = 2


def sentence_point(ledger: CitationLedger, sentence: Sentence) -> Point:
    """A source sentence as an attributed point; verbatim, so verified by construction.
    The claim check still runs (it returns at once for a verbatim claim), so a change that
    made this engine paraphrase could not skip it."""
    span = (sentence.article, sentence.start, sentence.end)
    if not ledger.supports(sentence.text, [span]):
        raise ValueError(f"extractive point is not its own quote: {sentence.key}")
    ledger.verified += 1
    n = ledger.cite_span(sentence.article, sentence.start, sentence.end)
    text = attributed_quote(sentence.article.title, sentence.article.source, sentence.text)
    return Point(text=text, citations=[n])


def prose_sentences(articles: list[StoredArticle]) -> list[Sentence]:
    return [
        s for a in articles for s in article_sentences(a)[:MAX_SENTENCES_PER_ARTICLE] if is_prose(s)
    ]


def differences(
    ledger: CitationLedger, sentences: list[Sentence], scores: np.ndarray, vectors: np.ndarray
) -> list[Difference]:
    """Where sources differ, among the best-scored sentences."""
    top = [int(i) for i in np.argsort(-scores)[:DIFFERENCE_CANDIDATES]]
    return [
        Difference(topic=d.topic, sides=[sentence_point(ledger, d.a), sentence_point(ledger, d.b)])
        for d in find_disagreements([sentences[i] for i in top], vectors[top])
    ]


def summary_picks(
    sentences: list[Sentence],
    scores: np.ndarray,
    vectors: np.ndarray,
    max_words: int,
    max_points: int,
) -> list[int]:
    """The sentences a summary quotes, in reading order: article by article as first
    chosen, then position."""
    chosen = select_balanced(sentences, scores, vectors, max_words=max_words, max_points=max_points)
    first_pick: dict[str, int] = {}
    for rank, i in enumerate(chosen):
        first_pick.setdefault(sentences[i].article.id, rank)
    chosen.sort(key=lambda i: (first_pick[sentences[i].article.id], sentences[i].position))
    return chosen


class ExtractiveEngine:
    def __init__(self, embedder: SentenceEmbedder, priors: SummaryPriors | None = None) -> None:
        self.embedder = embedder
        # Summary priors; the bench passes others while it cross-validates them.
        self.priors = priors or SummaryPriors()

    @property
    def name(self) -> EngineName:
        return "extractive"

    def passage_budget(self, question: str) -> int | None:
        # No model reads the passages, so there is no window to fit: every hit is used.
        return None

    def evidence(self, job: AnswerJob) -> tuple[list[Scored], Support]:
        """The passages' sentences ranked for the question, and how well the best of them
        supports it (the refusal rule's inputs; the bench reads them to calibrate it)."""
        sentences: list[Sentence] = []
        seen: set[tuple[str, int]] = set()
        for p in job.passages:
            for s in article_sentences(p.article, p.start, p.end):
                if s.key not in seen:
                    seen.add(s.key)
                    sentences.append(s)
        articles = list({p.article.id: p.article for p in job.passages}.values())
        return support_for(self.embedder, job.question, sentences, articles, job.context)

    def answer(self, job: AnswerJob, rule: Rule | None = None) -> Answer:
        ranked, support = self.evidence(job)
        ledger = CitationLedger(job.passages)
        if not support.covered(rule):
            return answer_result([], ledger, self.name, Usage())
        top = ranked[:ANSWER_CANDIDATES]
        vectors = dict(
            zip(
                [r.sentence.key for r in top],
                self.embedder.vectors([r.sentence for r in top]),
                strict=True,
            )
        )
        outlets = {p.article.source for p in job.passages if p.article.source}
        named = mentioned_outlets(job.question, outlets)
        lead = agreed_name(job.question, top, outlets) if asks_for_name(job.question) else None
        chosen = pick_answer_sentences(
            top,
            vectors,
            named_outlets=named,
            named_days=mentioned_days(job.question),
            must_name=lead,
        )
        points: list[Point] = []
        numbers: dict[tuple[str, int], int] = {}
        for scored in chosen:
            sentence = scored.sentence
            span = (sentence.article, sentence.start, sentence.end)
            if not ledger.supports(sentence.text, [span]):
                continue
            ledger.verified += 1
            n = ledger.cite_span(*span)
            numbers[sentence.key] = n
            points.append(Point(text=labelled_quote(sentence), citations=[n]))
        if not points:
            return answer_result([], ledger, self.name, Usage())
        if lead is not None:
            holders = [c for c in chosen if c.sentence.key in numbers and lead in c.sentence.text]
            spans = [(c.sentence.article, c.sentence.start, c.sentence.end) for c in holders]
            if len({c.sentence.article.id for c in holders}) >= MIN_AGREEING_ARTICLES and (
                ledger.supports(lead, spans)
            ):
                points.insert(
                    0, Point(text=lead, citations=[numbers[c.sentence.key] for c in holders])
                )
        result = answer_result(points, ledger, self.name, Usage())
        if asks_for_verdict(job.question):
            # The engine cannot verify a yes/no, a comparison or an order in time: it
            # shows the statements and says so, rather than state a verdict.
            result.answer = f"{COMPARE_YOURSELF} {result.answer}"
        return result

    def summarize(self, job: SummaryJob) -> Summary:
        ledger = CitationLedger([])
        sentences = prose_sentences(job.articles)
        if not sentences:
            return summary_result(job.topic, self.name, ledger, [], [], usage=Usage(), refused=True)
        vectors = self.embedder.vectors(sentences)
        topic_vector = self.embedder.query_vector(job.topic) if job.topic else None
        scores = lead_weighted_scores(sentences, vectors, topic_vector, self.priors)
        chosen = summary_picks(sentences, scores, vectors, job.max_words, job.max_points)
        points = [sentence_point(ledger, sentences[i]) for i in chosen]
        found = differences(ledger, sentences, scores, vectors)
        return summary_result(
            job.topic, self.name, ledger, points, found, usage=Usage(), refused=False
        )

    def brief(self, job: BriefJob) -> Briefing:
        sentences = prose_sentences(job.articles)
        if not sentences:
            raise NothingFound("the matching articles have no usable sentences")
        vectors = self.embedder.vectors(sentences)
        scores = centrality_scores(vectors, self.embedder.query_vector(job.topic))
        ledger = CitationLedger([])
        used: set[int] = set()

        def point(i: int) -> Point:
            used.add(i)
            return sentence_point(ledger, sentences[i])

        def pick(candidates: list[int], n: int, words: int) -> list[int]:
            pool = [i for i in candidates if i not in used]
            if not pool:
                return []
            sub = select_balanced(
                [sentences[i] for i in pool],
                scores[pool],
                vectors[pool],
                max_words=words,
                max_points=n,
            )
            return [pool[k] for k in sub]

        everything = list(range(len(sentences)))
        bottom = [point(i) for i in pick(everything, BOTTOM_LINE_POINTS, BOTTOM_LINE_WORDS)]

        dev_ids = pick(
            [i for i in everything if is_development(sentences[i].text)],
            DEVELOPMENT_POINTS,
            DEVELOPMENT_WORDS,
        )
        order = {a.id: k for k, a in enumerate(job.articles)}
        dev_ids.sort(
            key=lambda i: (
                article_date(sentences[i].article) or UNDATED,
                order[sentences[i].article.id],
                sentences[i].position,
            )
        )
        developments: list[Development] = []
        for i in dev_ids:
            p = point(i)
            developments.append(
                Development(
                    text=p.text, citations=p.citations, date=article_date(sentences[i].article)
                )
            )

        by_actor: dict[str, list[int]] = defaultdict(list)
        for i in np.argsort(-scores):
            actor = actor_of(sentences[int(i)].text)
            if actor and int(i) not in used:
                by_actor[actor].append(int(i))
        actors = sorted(
            by_actor, key=lambda a: -sum(scores[i] for i in by_actor[a][:POINTS_PER_ACTOR])
        )[:MAX_ACTORS]
        perspectives = [
            Perspective(
                actor=a, points=[point(i) for i in by_actor[a][:POINTS_PER_ACTOR] if i not in used]
            )
            for a in actors
        ]
        perspectives = [p for p in perspectives if p.points]

        found = differences(ledger, sentences, scores, vectors)

        open_ids = pick(
            [i for i in everything if is_open_question(sentences[i].text)],
            OPEN_QUESTION_POINTS,
            OPEN_QUESTION_WORDS,
        )
        open_questions = [point(i) for i in open_ids]

        return briefing_result(
            job,
            self.name,
            ledger,
            title=f"Briefing: {job.topic}",
            bottom_line=bottom,
            developments=developments,
            perspectives=perspectives,
            differences=found,
            open_questions=open_questions,
            usage=Usage(),
            refused=not bottom,
        )
