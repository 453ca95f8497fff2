"""The embedded engine: answers, summaries and briefings made of source sentences.

No model beyond the embedder, no network. Every claim is a verbatim sentence of an
article, presented as that article's words, so it is both verifiable and neutral by
construction. It selects and orders; it never paraphrases.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import Stemmer

from vectorstore.embed import Embedder
from vectorstore.sentences import sentence_spans
from vectorstore.store import StoredArticle

_WORD = re.compile(r"[^\W_]+(?:[’'][^\W_]+)?", re.UNICODE)
_NUMBER = re.compile(r"\d")
_TERMINAL = (".", "!", "?", "”", '"', "’", "'", ")")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "also",
        "there's",
        "it's",
        "did",
        "does",
        "many",
        "much",
        "tell",
        "happened",
        "happen",
        "according",
        "report",
        "reports",
        "reported",
        "say",
        "said",
        "says",
    ]
)
QUESTION_WORDS = frozenset(["what", "who", "whom", "whose", "which", "when", "where", "why", "how"])


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


# The stemmer leaves irregular past forms alone ("fled" vs "fleeing"); news questions
# and news copy use both, so map the common ones to their base form first.
IRREGULAR = {
    "fled": "flee",
    "fought": "fight",
    "took": "take",
    "taken": "take",
    "won": "win",
    "lost": "lose",
    "struck": "strike",
    "stricken": "strike",
    "seen": "see",
    "saw": "see",
    "met": "meet",
    "led": "lead",
    "sent": "send",
    "held": "hold",
    "fell": "fall",
    "fallen": "fall",
    "rose": "rise",
    "risen": "rise",
    "began": "begin",
    "begun": "begin",
    "told": "tell",
    "left": "leave",
    "made": "make",
    "gave": "give",
    "given": "give",
    "went": "go",
    "gone": "go",
    "came": "come",
    "chose": "choose",
    "chosen": "choose",
    "spoke": "speak",
    "spoken": "speak",
    "killed": "kill",
    "shot": "shoot",
    "hit": "hit",
    "people": "people",
    "persons": "people",
    "individuals": "people",
    "civilians": "civilian",
}


def terms(text: str) -> list[str]:
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    words = [IRREGULAR.get(w, w) for w in words if w not in STOPWORDS and len(w) > 1]
    return _stemmer().stemWords(words)


@dataclass(frozen=True)
class Sentence:
    article: StoredArticle
    start: int
    end: int
    position: int  # order within the article

    @property
    def text(self) -> str:
        return self.article.text[self.start : self.end]

    @property
    def key(self) -> tuple[str, int]:
        return (self.article.id, self.start)


def article_sentences(article: StoredArticle, lo: int = 0, hi: int | None = None) -> list[Sentence]:
    """Sentences of an article (or of its [lo, hi) slice) as spans of the canonical text."""
    text = article.text
    out = []
    for i, (s, e) in enumerate(sentence_spans(text)):
        if s >= lo and (hi is None or e <= hi):
            out.append(Sentence(article, s, e, i))
    return out


def is_prose(sentence: Sentence, min_words: int = 6, max_words: int = 90) -> bool:
    """Whole sentences only: headlines, bylines and link lists make poor claims."""
    text = sentence.text
    n = len(text.split())
    return min_words <= n <= max_words and text.rstrip().endswith(_TERMINAL)


def answer_type_bonus(question: str, sentence: str) -> float:
    q = question.lower()
    if re.search(r"\bhow (many|much)\b|\bwhat (number|percentage|share)\b", q):
        return 0.12 if _NUMBER.search(sentence) else -0.05
    if re.search(r"\bwhen\b|\bwhat (date|day|year|time)\b", q):
        months = (
            r"january|february|march|april|may|june|july|august|september|october|november|december"
        )
        days = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
        pattern = rf"\b({months}|{days}|\d{{4}}|yesterday|today|last (week|month|year))\b"
        return 0.1 if re.search(pattern, sentence.lower()) else 0.0
    if re.search(r"\bwho\b", q):
        return 0.06 if re.search(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+", sentence) else 0.0
    return 0.0


def idf_weights(docs: Sequence[Sequence[str]]) -> dict[str, float]:
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(d))
    n = len(docs) or 1
    return {t: math.log(1 + n / c) for t, c in df.items()}


def lexical_coverage(q_terms: Sequence[str], s_terms: set[str], idf: dict[str, float]) -> float:
    """Share of the question's (idf-weighted) terms that the sentence contains."""
    if not q_terms:
        return 0.0
    default = max(idf.values(), default=1.0)
    total = sum(idf.get(t, default) for t in set(q_terms))
    hit = sum(idf.get(t, default) for t in set(q_terms) if t in s_terms)
    return hit / total if total else 0.0


@dataclass
class Scored:
    sentence: Sentence
    score: float
    relevance: float
    coverage: float


class VectorCache:
    """Sentence vectors by (article, version, span), shared by every request of a process.

    The same passages come back for related questions; embedding them again is what
    dominates the extractive engine's time.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._vectors: OrderedDict[tuple[str, str, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[tuple[str, str, int, int]]) -> list[np.ndarray | None]:
        with self._lock:
            out = []
            for key in keys:
                vector = self._vectors.get(key)
                if vector is not None:
                    self._vectors.move_to_end(key)
                out.append(vector)
            return out

    def put_many(self, items: Sequence[tuple[tuple[str, str, int, int], np.ndarray]]) -> None:
        with self._lock:
            for key, vector in items:
                self._vectors[key] = vector
            while len(self._vectors) > self.max_entries:
                self._vectors.popitem(last=False)


class SentenceScorer:
    """Embeds sentences (through the cache) and queries."""

    def __init__(self, embedder: Callable[[], Embedder], cache: VectorCache | None = None) -> None:
        self._embedder = embedder
        self.cache = cache or VectorCache()

    def vectors(self, sentences: Sequence[Sentence]) -> np.ndarray:
        if not sentences:
            return np.zeros((0, 384), dtype=np.float32)
        keys = [(s.article.id, s.article.content_hash, s.start, s.end) for s in sentences]
        found = self.cache.get_many(keys)
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            fresh = self._embedder().embed([sentences[i].text for i in missing])
            self.cache.put_many([(keys[i], fresh[k]) for k, i in enumerate(missing)])
            for k, i in enumerate(missing):
                found[i] = fresh[k]
        return np.vstack(found)  # type: ignore[arg-type]

    def query_vector(self, text: str) -> np.ndarray:
        return self._embedder().embed([text])[0]


# ---- answers ------------------------------------------------------------------------

# Calibrated on the seed questions: unanswerable questions (the ECB, the World Cup)
# peak well below this, answerable ones above it.
MIN_ANSWER_SCORE = 0.45
MIN_COVERAGE = 0.25


def rank_for_question(
    scorer: SentenceScorer,
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
    vectors = scorer.vectors(sentences)
    qv = scorer.query_vector(f"{context} {question}".strip())
    cos = vectors @ qv
    q_terms = [t for t in terms(question) if t not in QUESTION_WORDS]
    s_terms = [set(terms(s.text)) for s in sentences]
    idf = idf_weights(s_terms)
    out = []
    for i, s in enumerate(sentences):
        coverage = lexical_coverage(q_terms, s_terms[i], idf)
        bonus = answer_type_bonus(question, s.text)
        prose = 0.0 if is_prose(s, min_words=5) else -0.1
        score = float(cos[i]) + 0.35 * coverage + bonus + prose
        out.append(Scored(s, score, float(cos[i]), coverage))
    out.sort(key=lambda x: -x.score)
    return out


def pick_answer_sentences(
    ranked: list[Scored], vectors: dict[tuple[str, int], np.ndarray], max_sentences: int = 3
) -> list[Scored]:
    """The best sentence, plus close runners-up that add something (not near-duplicates)."""
    if not ranked or ranked[0].score < MIN_ANSWER_SCORE or ranked[0].coverage < MIN_COVERAGE:
        return []
    best = ranked[0].score
    chosen = [ranked[0]]
    for cand in ranked[1:]:
        if len(chosen) >= max_sentences or cand.score < best - 0.12:
            break
        if cand.coverage < MIN_COVERAGE:
            continue
        v = vectors.get(cand.sentence.key)
        if v is not None and any(
            float(v @ vectors[c.sentence.key]) > 0.8 for c in chosen if c.sentence.key in vectors
        ):
            continue
        chosen.append(cand)
    return chosen


# ---- summaries ----------------------------------------------------------------------


def centrality_scores(vectors: np.ndarray, topic_vector: np.ndarray | None) -> np.ndarray:
    """Closeness to what the whole cluster is about, blended with the topic if any."""
    if len(vectors) == 0:
        return np.zeros(0)
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    score = vectors @ centroid
    if topic_vector is not None:
        score = 0.5 * score + 0.5 * (vectors @ topic_vector)
    return score


def select_balanced(
    sentences: Sequence[Sentence],
    scores: np.ndarray,
    vectors: np.ndarray,
    *,
    max_words: int,
    max_points: int,
    redundancy: float = 0.72,
    min_score: float | None = None,
) -> list[int]:
    """Pick sentences round-robin across articles, best first, skipping near-repeats.

    Round-robin is the balance rule: no article gets its second sentence before every
    relevant article has had its first.
    """
    by_article: dict[str, list[int]] = defaultdict(list)
    for i in np.argsort(-scores):
        if min_score is not None and scores[i] < min_score:
            continue
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
                if chosen and float(np.max(vectors[chosen] @ vectors[i])) > redundancy:
                    continue
                n = len(sentences[i].text.split())
                if chosen and words + n > max_words * 1.1:
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


# ---- disagreements -------------------------------------------------------------------

_FIGURE = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(%|percent\b|per cent\b)?"
    r"(?:\s+(?:of\s+)?(?:the\s+)?)?([a-z]+(?:\s+[a-z]+)?)?",
    re.IGNORECASE,
)
_UNIT_SKIP = frozenset({"and", "or", "to", "in", "on", "at", "the", "a", "of", "by", "for"})

# Pairs of framings that describe the same thing from opposite sides.
FRAMINGS: tuple[tuple[str, str, str], ...] = (
    ("liberat", "occup", "how control of territory is described"),
    ("liberat", "invasion", "how the military advance is described"),
    ("terroris", "fighters", "how the armed groups are described"),
    ("provocation", "response", "how the attack is characterised"),
    ("incursion", "invasion", "how the cross-border operation is described"),
    ("recaptur", "seized control", "who holds the territory"),
)


def figures(text: str) -> dict[str, set[str]]:
    """Numbers keyed by the word they count ("people" -> {"121,000"})."""
    out: dict[str, set[str]] = defaultdict(set)
    for m in _FIGURE.finditer(text):
        number, pct, unit = m.group(1), m.group(2), m.group(3)
        if pct:
            key = "percent"
        elif unit:
            first = unit.split()[0].lower()
            if first in _UNIT_SKIP or first.isdigit():
                continue
            key = _stemmer().stemWord(first)
        else:
            continue
        if re.fullmatch(r"(19|20)\d\d", number):
            continue  # a year, not a figure
        out[key].add(number.replace(",", ""))
    return out


@dataclass
class Disagreement:
    topic: str
    a: Sentence
    b: Sentence


def find_disagreements(
    sentences: Sequence[Sentence],
    vectors: np.ndarray,
    *,
    min_similarity: float = 0.45,
    limit: int = 3,
) -> list[Disagreement]:
    """Sentence pairs from different articles on the same matter with different figures
    or opposite framings."""
    found: list[tuple[float, Disagreement]] = []
    figs = [figures(s.text) for s in sentences]
    lowered = [s.text.lower() for s in sentences]
    sims = vectors @ vectors.T if len(sentences) else np.zeros((0, 0))
    for i in range(len(sentences)):
        for j in range(i + 1, len(sentences)):
            if sentences[i].article.id == sentences[j].article.id:
                continue
            sim = float(sims[i, j])
            if sim < min_similarity:
                continue
            for unit in set(figs[i]) & set(figs[j]):
                if figs[i][unit].isdisjoint(figs[j][unit]):
                    a, b = sentences[i], sentences[j]
                    found.append((sim, Disagreement(f"figures for “{unit}”", a, b)))
                    break
            else:
                for x, y, topic in FRAMINGS:
                    if (x in lowered[i] and y in lowered[j] and x not in lowered[j]) or (
                        y in lowered[i] and x in lowered[j] and y not in lowered[j]
                    ):
                        found.append((sim - 0.1, Disagreement(topic, sentences[i], sentences[j])))
                        break
    found.sort(key=lambda x: -x[0])
    out: list[Disagreement] = []
    used: set[tuple[str, int]] = set()
    for _, d in found:
        if d.a.key in used or d.b.key in used:
            continue
        out.append(d)
        used |= {d.a.key, d.b.key}
        if len(out) >= limit:
            break
    return out


# ---- briefings ----------------------------------------------------------------------

_SPEECH = (
    r"(?:said|says|stated|told|warned|claimed|argued|insisted|emphasi[sz]ed|noted|"
    r"declared|announced|urged|called|described|characteri[sz]ed|accused|vowed|"
    r"suggest(?:ed|ing)|indicated|expressed|acknowledged|outlined|highlighted|explained)"
)
_NAME = r"(?:[A-Z][\w’'\-]+(?:\s+(?:of\s+)?[A-Z][\w’'\-]+){0,4})"
_ACTOR_BEFORE = re.compile(rf"({_NAME})(?:,[^,]{{1,60}},)?\s+(?:has\s+|had\s+)?{_SPEECH}\b")
_ACTOR_AFTER = re.compile(rf"\b(?:according to|{_SPEECH} by)\s+(?:the\s+)?({_NAME})")
_TITLES = re.compile(
    r"^(?:President|Prime Minister|Former|Minister|General|Genera|Commander|Governor|"
    r"Chancellor|Secretary|Mr|Mrs|Ms|Dr|Russian|Ukrainian|U\.S\.|US|The)\s+"
)
_NOT_ACTORS = frozenset(
    {
        "The",
        "This",
        "These",
        "It",
        "He",
        "She",
        "They",
        "His",
        "Her",
        "As",
        "While",
        "But",
        "And",
        "However",
        "Moreover",
        "In",
        "On",
        "At",
    }
)


def actor_of(text: str) -> str | None:
    """Who a sentence attributes its claim to, if anyone ("Putin", "Zelensky")."""
    for pattern in (_ACTOR_BEFORE, _ACTOR_AFTER):
        m = pattern.search(text)
        if not m:
            continue
        name = m.group(1).strip()
        while True:
            stripped = _TITLES.sub("", name)
            if stripped == name:
                break
            name = stripped
        words = name.split()
        if not words or words[0] in _NOT_ACTORS:
            continue
        # "Vladimir Putin" and "Putin" are one actor: key on the last name.
        return words[-1] if len(words) <= 3 else name
    return None


_OPEN = re.compile(
    r"\b(remains? (?:to be seen|unclear|uncertain)|unclear|uncertain|whether|could|may|might|"
    r"will|would|expected|looking ahead|questions?|next|future|prospects?|risk)\b",
    re.IGNORECASE,
)
_EVENT = re.compile(
    r"\b(\w+ed|began|took|made|met|seized|fled|won|lost|struck|hit|fell|rose|led|sent|"
    r"launched|announced|visited|captured|killed|evacuated)\b"
)


def is_open_question(text: str) -> bool:
    return bool(_OPEN.search(text))


def is_development(text: str) -> bool:
    return bool(_EVENT.search(text)) and (
        bool(_NUMBER.search(text)) or bool(re.search(r"\s[A-Z][a-z]+", text))
    )
