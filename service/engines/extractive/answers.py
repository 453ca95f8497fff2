"""What kind of answer a question wants, and the parts of an extractive answer that are
not quotes: the name the quotes agree on, and the labels that say who said what, when."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from service.engines.extractive.relevance import names_in
from service.engines.extractive.scoring import Scored
from service.engines.extractive.sentences import Sentence
from service.neutrality import source_label

# A who/which/what answer leads with a name only when quotes from at least this many
# different articles name it: one article naming someone is that article's claim, not
# what the evidence agrees on.
MIN_AGREEING_ARTICLES = 2
# Names are looked for among the answer's candidates scoring within this of the best one.
NAME_MARGIN = 0.2

COMPARE_YOURSELF = (
    "The engine does not judge this: the relevant statements are quoted side by side "
    "below, each with its outlet and date, for you to compare."
)

_VERDICT = re.compile(
    r"^\s*(?:(?:based on|considering|according to|given|following|after|before|between)"
    r"\b[^?]*?,\s*)?"
    r"(?:does|did|do|is|are|was|were|has|have|had|can|could|would|will|should)\b",
    re.IGNORECASE,
)
_COMPARISON = re.compile(
    r"\b(?:consisten(?:t|cy)|both|same|compar\w*|differ\w*|change[ds]?|shift\w*|"
    r"before|after|earlier|later|agree\w*|contradict\w*)\b",
    re.IGNORECASE,
)
_ASKS_NAME = re.compile(
    r"\b(?:who|whom|whose|which|what (?:is|was) the name|what (?:company|person|platform|"
    r"organi[sz]ation|team|player|individual|entity|firm|country|city))\b",
    re.IGNORECASE,
)


def asks_for_verdict(question: str) -> bool:
    """A yes/no question ("Does ... ?", "Did ... ?") or one asking whether reports agree,
    changed or came before one another: questions an extractive engine cannot decide."""
    if _VERDICT.search(question):
        return True
    return bool(re.search(r"\bwhether\b", question, re.IGNORECASE)) and bool(
        _COMPARISON.search(question)
    )


def asks_for_name(question: str) -> bool:
    return bool(_ASKS_NAME.search(question)) and not asks_for_verdict(question)


def mentioned_outlets(question: str, outlets: Iterable[str]) -> list[str]:
    """Outlets of the articles read that the question names."""
    lowered = question.lower()
    found = []
    for outlet in outlets:
        name = outlet.lower()
        bare = name[4:] if name.startswith("the ") else name
        if len(bare) >= 3 and re.search(rf"(?<!\w){re.escape(bare)}(?!\w)", lowered):
            found.append(outlet)
    return sorted(found)


def agreed_name(question: str, ranked: Sequence[Scored], outlets: Iterable[str]) -> str | None:
    """The name (as written in the quotes, so its span is exact) that the most articles
    among the best candidates mention and the question does not: what a who/which
    question asks for, when the evidence agrees on it."""
    if not ranked:
        return None
    best = ranked[0].score
    lowered_q = question.lower()
    lowered_outlets = [o.lower() for o in outlets]
    articles: dict[str, set[str]] = defaultdict(set)
    weight: dict[str, float] = defaultdict(float)
    pool = [r for r in ranked if r.score >= best - NAME_MARGIN]
    candidates: set[str] = set()
    for r in pool:
        for name in names_in(r.sentence.text, skip_first=True):
            low = name.lower()
            if low in lowered_q or any(low in o or o in low for o in lowered_outlets):
                continue
            candidates.add(name)
    for name in candidates:
        pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
        for r in pool:
            if pattern.search(r.sentence.text):
                articles[name].add(r.sentence.article.id)
                weight[name] += r.score
    if not articles:
        return None
    name = max(articles, key=lambda n: (len(articles[n]), weight[n], len(n)))
    return name if len(articles[name]) >= MIN_AGREEING_ARTICLES else None


def labelled_quote(sentence: Sentence) -> str:
    """A quote with its outlet and date; a quote from an article with neither stays bare,
    since "source unknown, undated" would tell the reader nothing the citation does not."""
    article = sentence.article
    date = article.published_at[:10] if article.published_at else None
    if not article.source and not date:
        return sentence.text
    label = source_label(article.title, article.source)
    return f"{label} ({date or 'undated'}): “{sentence.text}”"
