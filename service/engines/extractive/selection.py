"""Which scored sentences make it into a result: the few that answer a question, or a
balanced set that covers every article of a summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from service.engines.extractive.scoring import Scored
from service.engines.extractive.sentences import Sentence

# ---- answers ------------------------------------------------------------------------

# An answer quotes at most this many sentences, each from a different article, that score
# within RUNNER_UP_MARGIN of the best one (whether to answer at all is relevance.py's).
MAX_ANSWER_SENTENCES = 4
RUNNER_UP_MARGIN = 0.12
# A sentence of an outlet the question names, or one carrying the name the quotes agree
# on, may be this much further from the best: the question asked about it.
FACET_MARGIN = 0.3
# Cosine similarity above which a runner-up says what a chosen sentence already says.
ANSWER_NEAR_DUPLICATE = 0.8

# ---- summaries and briefings --------------------------------------------------------

# Cosine similarity above which a sentence repeats one already chosen; stricter than for
# answers, since every point of a summary should say something the others don't.
SUMMARY_NEAR_DUPLICATE = 0.72
# A sentence may overrun the word budget by this factor, so a long last sentence still
# fits instead of leaving a short summary.
WORD_BUDGET_SLACK = 1.1


def pick_answer_sentences(
    ranked: list[Scored],
    vectors: dict[tuple[str, int], np.ndarray],
    *,
    named_outlets: Sequence[str] = (),
    named_days: Sequence[str] = (),
    must_name: str | None = None,
) -> list[Scored]:
    """The best sentence, then the best of each outlet and of each day the question names
    and of the articles naming the agreed name, then close runners-up; one sentence per
    article, no near-duplicates (except where an outlet or day was named), best first."""
    if not ranked:
        return []
    best = ranked[0].score
    chosen: list[Scored] = []

    def fits(cand: Scored, allow_repeat: bool = False) -> bool:
        if any(c.sentence.article.id == cand.sentence.article.id for c in chosen):
            return False
        if allow_repeat:
            return True
        v = vectors.get(cand.sentence.key)
        return v is None or not any(
            float(v @ vectors[c.sentence.key]) > ANSWER_NEAR_DUPLICATE
            for c in chosen
            if c.sentence.key in vectors
        )

    def take(
        cands: Sequence[Scored], margin: float, limit: int, allow_repeat: bool = False
    ) -> None:
        taken = 0
        for cand in cands:
            if len(chosen) >= MAX_ANSWER_SENTENCES or taken >= limit:
                return
            if cand.score >= best - margin and fits(cand, allow_repeat):
                chosen.append(cand)
                taken += 1

    take(ranked[:1], 0.0, 1)
    for outlet in named_outlets:
        # What the named outlet says is asked for even where another outlet says the same:
        # the reader compares them.
        take(
            [r for r in ranked if r.sentence.article.source == outlet],
            FACET_MARGIN,
            1,
            allow_repeat=True,
        )
    for day in named_days:
        take(
            [r for r in ranked if (r.sentence.article.published_at or "")[:10] == day],
            FACET_MARGIN,
            1,
            allow_repeat=True,
        )
    if must_name:
        take([r for r in ranked if must_name in r.sentence.text], FACET_MARGIN, 2)
    take(ranked, RUNNER_UP_MARGIN, MAX_ANSWER_SENTENCES)
    return sorted(chosen, key=lambda c: -c.score)


def select_balanced(
    sentences: Sequence[Sentence],
    scores: np.ndarray,
    vectors: np.ndarray,
    *,
    max_words: int,
    max_points: int,
) -> list[int]:
    """Pick sentences round-robin across articles, best first, skipping near-repeats.

    Round-robin is the balance rule: no article gets its second sentence before every
    relevant article has had its first.
    """
    by_article: dict[str, list[int]] = defaultdict(list)
    for i in np.argsort(-scores):
        by_article[sentences[i].article.id].append(int(i))
    order = sorted(by_article, key=lambda a: -scores[by_article[a][0]])
    chosen: list[int] = []
    words = 0
    while any(by_article[a] for a in order) and len(chosen) < max_points:
        progressed = False
        for aid in order:
            queue = by_article[aid]
            while queue:
                i = queue.pop(0)
                if chosen and float(np.max(vectors[chosen] @ vectors[i])) > SUMMARY_NEAR_DUPLICATE:
                    continue
                n = len(sentences[i].text.split())
                if chosen and words + n > max_words * WORD_BUDGET_SLACK:
                    continue
                chosen.append(i)
                words += n
                progressed = True
                break
            if len(chosen) >= max_points or words >= max_words:
                return chosen
        if not progressed:
            break
    return chosen
