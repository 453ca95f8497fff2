"""Which scored sentences make it into a result: the few that answer a question, or a
balanced set that covers every article of a summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from service.engines.extractive.scoring import Scored
from service.engines.extractive.sentences import Sentence

# ---- answers ------------------------------------------------------------------------

# Calibrated on the seed questions: unanswerable questions (the ECB, the World Cup)
# peak well below this, answerable ones above it.
MIN_ANSWER_SCORE = 0.45
MIN_COVERAGE = 0.25
# An answer is its best sentence plus at most two runners-up that score within
# RUNNER_UP_MARGIN of it, i.e. that answer the question nearly as well.
MAX_ANSWER_SENTENCES = 3
RUNNER_UP_MARGIN = 0.12
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
    ranked: list[Scored], vectors: dict[tuple[str, int], np.ndarray]
) -> list[Scored]:
    """The best sentence, plus close runners-up that add something (not near-duplicates);
    nothing when even the best is below the refusal thresholds."""
    if not ranked or ranked[0].score < MIN_ANSWER_SCORE or ranked[0].coverage < MIN_COVERAGE:
        return []
    best = ranked[0].score
    chosen = [ranked[0]]
    for cand in ranked[1:]:
        if len(chosen) >= MAX_ANSWER_SENTENCES or cand.score < best - RUNNER_UP_MARGIN:
            break
        if cand.coverage < MIN_COVERAGE:
            continue
        v = vectors.get(cand.sentence.key)
        if v is not None and any(
            float(v @ vectors[c.sentence.key]) > ANSWER_NEAR_DUPLICATE
            for c in chosen
            if c.sentence.key in vectors
        ):
            continue
        chosen.append(cand)
    return chosen


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
