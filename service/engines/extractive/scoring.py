"""How relevant a sentence is: to a question (meaning, shared terms, expected answer type)
or to a set of articles (closeness to what they are all about, and where it stands).

The weights were set by hand with the first version of the engine; nothing records a wider
calibration than the seed answers and summaries the tests pin (tests/test_answers.py,
tests/test_summaries_and_briefings.py), so a change here must keep those passing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.engines.extractive.sentences import Sentence, is_prose
from service.engines.extractive.terms import QUESTION_WORDS, strict_match, term_forms
from service.engines.extractive.vectors import SentenceEmbedder

# ---- answers ------------------------------------------------------------------------

# Term coverage (0..1) counts about a third as much as cosine similarity: meaning leads,
# and the question's own words must still be there.
COVERAGE_WEIGHT = 0.35
# A fragment (under five words, or no closing punctuation) rarely answers anything. Answers
# accept one word fewer than summary points (is_prose's default).
ANSWER_PROSE_MIN_WORDS = 5
NOT_PROSE_PENALTY = -0.1
# Expected answer type: "how many" wants a figure, "when" a date, "who" a name.
FIGURE_BONUS = 0.12
NO_FIGURE_PENALTY = -0.05
DATE_BONUS = 0.1
NAME_BONUS = 0.06

_ASKS_FOR_FIGURE = re.compile(r"\bhow (many|much)\b|\bwhat (number|percentage|share)\b")
_ASKS_FOR_DATE = re.compile(r"\bwhen\b|\bwhat (date|day|year|time)\b")
_ASKS_FOR_NAME = re.compile(r"\bwho\b")
_DIGIT = re.compile(r"\d")
_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_DATE = re.compile(rf"\b({_MONTHS}|{_DAYS}|\d{{4}}|yesterday|today|last (week|month|year))\b")
# A capitalised word that does not start the sentence: most likely a name.
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")


def answer_type_bonus(question: str, sentence: str) -> float:
    q = question.lower()
    if _ASKS_FOR_FIGURE.search(q):
        return FIGURE_BONUS if _DIGIT.search(sentence) else NO_FIGURE_PENALTY
    if _ASKS_FOR_DATE.search(q):
        return DATE_BONUS if _DATE.search(sentence.lower()) else 0.0
    if _ASKS_FOR_NAME.search(q):
        return NAME_BONUS if _NAME.search(sentence) else 0.0
    return 0.0


def idf_weights(docs: Sequence[Sequence[str]]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(d))
    n = len(docs) or 1
    return {t: math.log(1 + n / c) for t, c in df.items()}


def lexical_coverage(
    q_forms: Sequence[tuple[str, str]],
    s_forms: dict[str, set[str]],
    idf: dict[str, float],
) -> float:
    """Share of the question's (idf-weighted) terms that the sentence contains as the same
    word, inflected or not: a stem shared by two different words ("capital" and
    "capitalized") is no match."""
    if not q_forms:
        return 0.0
    # A question term no sentence has is as rare as the rarest one.
    default = max(idf.values(), default=1.0)
    wanted: dict[str, set[str]] = {}
    for stem, word in q_forms:
        wanted.setdefault(stem, set()).add(word)
    total = sum(idf.get(t, default) for t in wanted)
    hit = sum(
        idf.get(t, default)
        for t, words in wanted.items()
        if any(strict_match(w, x) for w in words for x in s_forms.get(t, ()))
    )
    return hit / total if total else 0.0


def forms_by_stem(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for stem, word in term_forms(text):
        out.setdefault(stem, set()).add(word)
    return out


@dataclass
class Scored:
    sentence: Sentence
    score: float
    relevance: float
    coverage: float


def rank_for_question(
    embedder: SentenceEmbedder,
    question: str,
    sentences: Sequence[Sentence],
    context: str = "",
) -> list[Scored]:
    """Sentences by relevance: meaning (embeddings), shared terms, expected answer type.

    ``context`` (an earlier question in the conversation) helps the meaning match but
    does not count towards term coverage: the follow-up's own words must be answered.
    """
    if not sentences:
        return []
    vectors = embedder.vectors(sentences)
    qv = embedder.query_vector(f"{context} {question}".strip())
    cos = vectors @ qv
    q_forms = [(t, w) for t, w in term_forms(question) if w not in QUESTION_WORDS]
    s_forms = [forms_by_stem(s.text) for s in sentences]
    idf = idf_weights([list(f) for f in s_forms])
    out: list[Scored] = []
    for i, s in enumerate(sentences):
        coverage = lexical_coverage(q_forms, s_forms[i], idf)
        bonus = answer_type_bonus(question, s.text)
        prose = 0.0 if is_prose(s, min_words=ANSWER_PROSE_MIN_WORDS) else NOT_PROSE_PENALTY
        score = float(cos[i]) + COVERAGE_WEIGHT * coverage + bonus + prose
        out.append(Scored(s, score, float(cos[i]), coverage))
    out.sort(key=lambda x: -x.score)
    return out


# ---- summaries and briefings --------------------------------------------------------

# With a topic, closeness to it counts as much as closeness to the articles' centroid.
CENTROID_WEIGHT = 0.5
TOPIC_WEIGHT = 0.5
# Sentences this close (cosine) to an earlier one are syndicated copies of it: they count
# once towards what the cluster is about, so a story wired to five outlets does not pull
# the centroid five times.
SYNDICATED = 0.9


@dataclass(frozen=True)
class SummaryPriors:
    """Position and length priors of summary sentences, on top of centrality:
    lead / (1 + decay x position) + length x min(words / LENGTH_FULL_WORDS, 1).

    The defaults were chosen by 2-fold cross-validation over Multi-News dev clusters
    (``python -m bench.summaries``; every fold's choice and its held-out ROUGE are in
    bench/results/summaries.json)."""

    lead: float = 0.48
    decay: float = 0.15
    length: float = 0.03


# Sentences this long or longer get the whole length prior.
LENGTH_FULL_WORDS = 25


def distinct_centroid(vectors: np.ndarray) -> np.ndarray:
    """The mean of the vectors with syndicated copies counted once, normalised."""
    keep: list[int] = []
    for i in range(len(vectors)):
        if not keep or float(np.max(vectors[keep] @ vectors[i])) <= SYNDICATED:
            keep.append(i)
    centroid = vectors[keep].mean(axis=0)
    return centroid / (np.linalg.norm(centroid) or 1.0)


def centrality_scores(vectors: np.ndarray, topic_vector: np.ndarray | None) -> np.ndarray:
    """Closeness to what the whole cluster is about, blended with the topic if any."""
    if len(vectors) == 0:
        return np.zeros(0)
    score = vectors @ distinct_centroid(vectors)
    if topic_vector is not None:
        score = CENTROID_WEIGHT * score + TOPIC_WEIGHT * (vectors @ topic_vector)
    return score


def lead_weighted_scores(
    sentences: Sequence[Sentence],
    vectors: np.ndarray,
    topic_vector: np.ndarray | None,
    priors: SummaryPriors | None = None,
) -> np.ndarray:
    """Centrality plus the position and length priors: how summaries rank sentences."""
    p = priors or SummaryPriors()
    position = np.array([1.0 / (1.0 + p.decay * s.position) for s in sentences])
    length = np.array([min(len(s.text.split()) / LENGTH_FULL_WORDS, 1.0) for s in sentences])
    return centrality_scores(vectors, topic_vector) + p.lead * position + p.length * length
