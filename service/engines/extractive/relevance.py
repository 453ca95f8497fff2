"""Whether the sources cover a question or topic at all: the one refusal rule shared by
answers, summaries and briefings.

A question is covered when its best sentence is close enough in meaning and shares enough
of its words (as words, not only as stems: "capital" must not match "capitalized"), and
when the names it asks about are in the articles read. The constants below were chosen by
2-fold cross-validation on the MultiHop-RAG dev questions, grouped so that questions about
the same articles fall in one fold, with the unanswerable questions as negatives
(``python -m bench.answers``; the chosen values per fold and the held-out numbers are in
bench/results/answers.json).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from service.engines.extractive.scoring import (
    Scored,
    forms_by_stem,
    idf_weights,
    lexical_coverage,
    rank_for_question,
)
from service.engines.extractive.sentences import Sentence, article_sentences
from service.engines.extractive.terms import QUESTION_WORDS, STOPWORDS, term_forms
from service.engines.extractive.vectors import SentenceEmbedder
from vectorstore.store import StoredArticle

# Refuse unless the best sentence scores at least this (cosine + COVERAGE_WEIGHT x strict
# term coverage + answer-type bonus, see scoring.rank_for_question).
MIN_SUPPORT = 0.425
# ... and covers at least this share (idf-weighted) of the question's own words, as words,
# never as mere stems.
MIN_COVERAGE = 0.05
# ... and at least this share of the names the question asks about (people, companies,
# places: capitalised phrases that are not outlets) appear in the articles read. Every
# fold chose 0 (off): the score already separates the dev questions.
MIN_ENTITY_SHARE = 0.0
# Or: some article has at least this share of the question's words (idf-weighted, as the
# same words), anywhere in its text. Above 1: this way is off.
MIN_ARTICLE_COVERAGE = 1.01

# Sentences read per article when checking a topic (bounds embedding time, as for
# summaries).
MAX_TOPIC_SENTENCES = 80

# Capitalised phrases: "Sam Bankman-Fried", "FTX", "9to5Mac", "Shreyanka Patil".
_CAPITALISED = re.compile(
    r"(?<![\w’'])(?:[A-Z][\w’'\-.&]*\w|[A-Z]|\d+[A-Za-z]*[A-Z]\w*)"
    r"(?:\s+(?:[A-Z][\w’'\-.&]*\w|[A-Z]|\d+[A-Za-z]*[A-Z]\w*))*"
)
_MONTHS_AND_DAYS = frozenset(
    """january february march april may june july august september october november
    december monday tuesday wednesday thursday friday saturday sunday""".split()  # noqa: SIM905
)
# Capitalised words that are not names: question openers and the generic words that
# questions capitalise.
_NOT_NAMES = (
    STOPWORDS
    | QUESTION_WORDS
    | _MONTHS_AND_DAYS
    | frozenset(
        """considering based between following given according did does do is are was were
    has have had can could would will should after before while during article articles
    report reports news""".split()  # noqa: SIM905
    )
)


def _clean(phrase: str) -> str:
    words = phrase.split()
    while words and words[0].lower().strip(".’'") in _NOT_NAMES:
        words.pop(0)
    while words and words[-1].lower().strip(".’'") in _NOT_NAMES:
        words.pop()
    return " ".join(words).rstrip(".’'")


def names_in(text: str, *, skip_first: bool = False) -> list[str]:
    """Capitalised phrases of ``text``, as written (so a span found for one is exact).

    With ``skip_first``, a lone capitalised word opening the text is left out: it is
    capitalised because it opens the text, not because it is a name.
    """
    out: list[str] = []
    for m in _CAPITALISED.finditer(text):
        phrase = _clean(m.group(0))
        if not phrase or len(phrase) < 2:
            continue
        if skip_first and m.start() == 0 and " " not in m.group(0):
            continue
        if phrase not in out:
            out.append(phrase)
    return out


def asked_names(question: str, outlets: Iterable[str]) -> list[str]:
    """The names a question asks about, outlets left out (they are filters, not facts)."""
    lowered_outlets = [o.lower() for o in outlets if o]
    names = []
    for name in names_in(question, skip_first=True):
        low = name.lower()
        if any(low in o or o in low for o in lowered_outlets):
            continue
        names.append(name)
    return names


def name_share(names: Sequence[str], texts: Iterable[str]) -> float:
    """Share of ``names`` found (whole words, any case) in any of ``texts``."""
    if not names:
        return 1.0
    corpus = "\n".join(texts).lower()
    found = sum(
        1 for n in names if re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", corpus) is not None
    )
    return found / len(names)


@dataclass(frozen=True)
class Support:
    """How well the sources read support a question or topic: its best sentence (score,
    and the share of the question's words it has), the share of the question's names
    found, and the share of its words (idf-weighted) that one article has somewhere."""

    score: float
    coverage: float
    names: float
    article_coverage: float = 0.0

    def covered(self, rule: Rule | None = None) -> bool:
        rule = rule or Rule()
        if self.names < rule.min_names:
            return False
        by_sentence = self.score >= rule.min_support and self.coverage >= rule.min_coverage
        return by_sentence or self.article_coverage >= rule.min_article_coverage


@dataclass(frozen=True)
class Rule:
    """The refusal thresholds; the defaults are the shipped ones (bench.answers passes
    others while it cross-validates them)."""

    min_support: float = MIN_SUPPORT
    min_coverage: float = MIN_COVERAGE
    min_names: float = MIN_ENTITY_SHARE
    min_article_coverage: float = MIN_ARTICLE_COVERAGE


NO_SUPPORT = Support(score=float("-inf"), coverage=0.0, names=0.0)


def article_coverage(text: str, articles: Sequence[StoredArticle]) -> float:
    """The largest share of ``text``'s words (idf-weighted over ``articles``, as the same
    word, not merely the same stem) that a single article's text has. Titles are left
    out: a summary or briefing quotes the text, so the text must cover the topic."""
    if not articles:
        return 0.0
    q_forms = [(t, w) for t, w in term_forms(text) if w not in QUESTION_WORDS]
    forms = [forms_by_stem(a.text) for a in articles]
    idf = idf_weights([list(f) for f in forms])
    return max(lexical_coverage(q_forms, f, idf) for f in forms)


def support_for(
    embedder: SentenceEmbedder,
    text: str,
    sentences: Sequence[Sentence],
    articles: Sequence[StoredArticle],
    context: str = "",
) -> tuple[list[Scored], Support]:
    """``sentences`` ranked for ``text`` and how well they and ``articles`` support it."""
    ranked = rank_for_question(embedder, text, sentences, context=context)
    if not ranked:
        return [], NO_SUPPORT
    outlets = {a.source for a in articles if a.source}
    share = name_share(asked_names(text, outlets), (a.text for a in articles))
    support = Support(ranked[0].score, ranked[0].coverage, share, article_coverage(text, articles))
    return ranked, support


def topic_support(
    embedder: SentenceEmbedder, topic: str, articles: Sequence[StoredArticle]
) -> Support:
    """How well the articles a summary or briefing would draw on cover its topic: the rule
    answers use, applied to the articles' sentences (headlines too, as for answers, with
    the same penalty for not being prose)."""
    sentences = [s for a in articles for s in article_sentences(a)[:MAX_TOPIC_SENTENCES]]
    return support_for(embedder, topic, sentences, articles)[1]


def no_coverage(topic: str) -> str:
    """What a refused summary or briefing on ``topic`` is titled."""
    return f"No coverage of “{topic}” in the stored articles"
