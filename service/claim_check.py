"""Does a claim say what its quotes say? The check every engine's claims pass before shown.

A located quote proves only that the quote is real; the claim beside it is the model's own
words. ``check_claim`` compares the two on what a lie usually changes: numbers, names,
polarity, and whether the claim is about the quote at all. Each signal is cheap and
explainable; bench/claims.py measures them on a labelled set (bench/results/claims.json).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from os.path import commonprefix

from number_parser import parse

from service.engines.extractive.terms import STOPWORDS, terms

# A quote shorter than this (non-space characters) cannot carry a claim that says more than
# the quote: "8 characters that occur somewhere in the article" is the attack it stops.
MIN_QUOTE_CHARS = 20
# Share of the claim's content words (stemmed) that the quotes must contain: what four of
# the five training splits chose in bench/claims.py's cross-validation (the fifth chose
# 0.4); bench/results/claims.json reports the held-out rates.
MIN_OVERLAP = 0.3
# Cosine similarity of claim and quotes (all-MiniLM-L6-v2) below which a claim is dropped,
# for a caller that passes a ``similarity``. Production passes none: in bench/claims.py's
# cross-validation no training split chose the signal over none (it tells topics apart,
# which the overlap already does, not facts).
MIN_SIMILARITY = 0.35

_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?!\w)")
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_SCALED = re.compile(r"(\d+(?:\.\d+)?)\s+(thousand|million|billion|trillion)\b")
# A figure, unless glued to letters before it ("G7", "ABC7", "F-35": names, not counts).
_QUANTITY = re.compile(r"(?<![\w.])(?<![A-Za-z]-)(\d+(?:,\d{3})*(?:\.\d+)?)(?:(e)(\d+)|x(\w+))?")
_ORDINAL_WORDS = re.compile(
    r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|"
    r"twelfth|twentieth|thirtieth|hundredth|thousandth|millionth)\b",
    re.IGNORECASE,
)
_ONE_WORD = re.compile(r"\bone\b(?!\s+(?:thousand|million|billion|trillion|hundred)\b)", re.I)
# Words that flip a statement: "did not", "no", "never", "didn't".
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot)\b|n['’]t\b",
    re.IGNORECASE,
)
_NEGATION_CUES = frozenset(
    ["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot"]
)
# Words between a negation and the word it governs: "not yet found", "never really said".
# Contractions written without their apostrophe, as quick typing and transcripts do.
_BARE_CONTRACTIONS = frozenset(
    [
        *("cant", "dont", "didnt", "doesnt", "isnt", "wasnt", "werent", "arent"),
        *("couldnt", "wouldnt", "shouldnt", "hasnt", "havent", "hadnt", "wont"),
    ]
)
_NEGATION_ADVERBS = frozenset(
    ["yet", "even", "really", "ever", "always", "just", "also", "longer", "still"]
)
_SCOPE_TOKENS = 6
_PUNCTUATION = frozenset(".,;:!?")
_TOKEN = re.compile(r"[\w']+|[.,;:!?]")
# A sentence's first word, capitalised by grammar whatever it is.
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?:;]\s)|(?<=^[“\"‘']))[A-Z][a-z]+")
_CAPITALISED = re.compile(r"\b[A-Z][\w’'.-]*")
# Capitalised for grammar, not because they name someone: sentence starts, titles, months
# are checked as words by the overlap instead.
_NOT_NAME_WORDS = (
    "i mr mrs ms dr the a an in on at this that these those it he she they we but and or if "
    "after before when while as for with by from however meanwhile still yet also "
    "earlier later last next now then today yesterday tonight"
)
_NOT_NAMES = STOPWORDS | frozenset(_NOT_NAME_WORDS.split())
# A name written over several capitalised words or initials, small joining words allowed.
_NAME_RUN = re.compile(r"\b[A-Z][\w’'.&-]*(?:\s+(?:(?:of|for|and|the|de)\s+)?[A-Z][\w’'.&-]*)*")
# "Russia's", "They're", "We'll": the name, or grammar word, is what comes before.
_CLITIC = re.compile(r"['’](?:s|re|ve|ll|d|m)$")
_CODE = re.compile(r"\b[A-Za-z]+-?\d+[A-Za-z]*\b")
_DOTTED = re.compile(r"\b(?:[A-Za-z]\.){2,}")
_JOINERS = frozenset(["of", "for", "and", "the", "de", "s"])

Similarity = Callable[[str, str], float]


@dataclass(frozen=True)
class Support:
    ok: bool
    reason: str | None = None  # why it failed: "number", "name", "negation", ...


SUPPORTED = Support(True)


def words_to_digits(text: str) -> str:
    """Number words as digits ("two hundred" -> "200"), read as English."""
    # Left to guess, number-parser tries all five of its languages on every call (~80% of
    # the check's time, bench/service_overhead.py's profile) and can pick Spanish for an
    # English sentence whose "de", "y" or "once" outnumber its number words.
    return parse(text, language="en")


def numbers(text: str) -> set[str]:
    """The quantities in a text as canonical strings: "1,000" = "1000" = "one thousand",
    "1.5 million" = "1500000". Number words are read by number-parser.

    Not quantities: spelled ordinals ("the first time", "a second woman": idiom as often as
    count) and digits that are part of a name ("G7", "ABC7", "F-35", "COVID-19")."""
    text = _ORDINAL_WORDS.sub("\u2063", text)
    digits = words_to_digits(text) if any(c.isalpha() for c in text) else text
    # number-parser writes "1.5 million" as "1.5 1000000": fold the scale back in.
    digits = re.sub(r"(\d+(?:\.\d+)?) 1(000|000000|000000000|000000000000)\b", r"\1e\2", digits)
    digits = _SCALED.sub(lambda m: f"{m.group(1)}x{m.group(2)}", digits)
    found: set[str] = set()
    for m in _QUANTITY.finditer(digits):
        value = float(m.group(1).replace(",", ""))
        if m.group(2):
            value *= 10 ** len(m.group(3))
        elif m.group(4):
            value *= _SCALES[m.group(4)]
        found.add(f"{value:g}" if value < 1e15 else str(value))
    return found


def _word_one_only(text: str) -> bool:
    """Whether the text's only 1 is the word "one" ("one of the staff"), which says no more
    than "a" does when the quote gives no figure at all."""
    return "1" not in numbers(_ONE_WORD.sub("a", text)) and "1" in numbers(text)


def polarity(text: str) -> int:
    """0 when the text affirms, 1 when it negates (an even number of negations affirms)."""
    return len(_NEGATION.findall(text)) % 2


@dataclass(frozen=True)
class Polarity:
    """What a text says is and is not so, word by word: the head word a negation governs
    ("did not *attend*", "no *evidence*") counts as negated; every other content word, and
    the head of a double negation ("not no *remedy*", "not by no *means*"), as affirmed.
    ``scopes`` keeps each negation's content words up to the clause's end, head first."""

    negated: Counter[str]
    affirmed: Counter[str]
    scopes: list[list[str]]
    cues: int
    elliptic: bool  # a negation with nothing after it in its clause
    pairs: dict[tuple[str, str], bool]  # (token before, word): whether negated there

    @classmethod
    def of(cls, text: str) -> Polarity:
        tokens = _TOKEN.findall(text.lower().replace("’", "'"))
        cue_at = [_is_cue(t, tokens[i + 1 : i + 2]) for i, t in enumerate(tokens)]
        negated: Counter[str] = Counter()
        heads: set[int] = set()
        scopes: list[list[str]] = []
        cancelled: set[int] = set()
        elliptic = False
        for i in (i for i, cue in enumerate(cue_at) if cue):
            scope: list[tuple[int, list[str]]] = []
            for j in range(i + 1, min(len(tokens), i + 1 + _SCOPE_TOKENS)):
                if tokens[j] in _PUNCTUATION:
                    break
                if cue_at[j]:
                    # A negation of a negation affirms ("not no remedy"), unless a head
                    # came first ("not here, no").
                    if not scope:
                        cancelled.add(j)
                    break
                words = terms(tokens[j])
                if words and tokens[j] not in _NEGATION_ADVERBS:
                    scope.append((j, words))
            if i in cancelled:
                continue
            if not scope:
                # "..., but I can't.": what is negated went before; only the count can tell.
                elliptic = elliptic or i + 1 == len(tokens) or tokens[i + 1] in _PUNCTUATION
                continue
            head_at, head = scope[0]
            negated.update(head)
            heads.add(head_at)
            scopes.append([w for _, words in scope for w in words])
        affirmed = Counter(
            t
            for j, tok in enumerate(tokens)
            if j not in heads and not cue_at[j]
            for t in terms(tok)
        )
        # Each content word with the token before it, so one mention can be told from
        # another: "if I didn't have Kid Cudi ... Kid Cudi saved".
        pairs = {
            (tokens[j - 1], t): j in heads
            for j, tok in enumerate(tokens)
            if j and not cue_at[j]
            for t in terms(tok)
        }
        return cls(negated, affirmed, scopes, sum(cue_at), elliptic, pairs)


def _is_cue(token: str, following: list[str]) -> bool:
    if token.endswith("n't") or token in _BARE_CONTRACTIONS:
        return True
    # "not only X but also Y" affirms both.
    return token in _NEGATION_CUES and not (token == "not" and following == ["only"])


def polarity_agrees(claim: str, quoted: str) -> bool:
    """Whether the claim negates what the quotes negate, word by word.

    Counting negations over the whole quote (the old rule) dropped a faithful claim that
    repeats one clause of a quote whose *other* clause has a "not". Here a word the claim
    negates more often than the quote does ("was not arrested" / "was arrested"), or
    affirms where the quote only negates it ("attended" / "did not attend"), is a
    contradiction. When the word a claim negates is not in the quote ("have not *sought*
    to justify" / "have tried to justify"), the rest of its clause is compared instead, and
    failing that the number of negations."""
    c, q = Polarity.of(claim), Polarity.of(quoted)
    in_quote = q.negated.keys() | q.affirmed.keys()
    for t, n in c.negated.items():
        if t in in_quote and n > q.negated[t]:
            return False
    for t, n in q.negated.items():
        if c.negated[t] < n and c.affirmed[t] > q.affirmed[t]:
            return False
    # Affirmed in the claim right where the quote negates it: "did have Kid Cudi".
    if any(
        q.pairs.get(pair) and c.pairs.get(pair) is False for pair in q.pairs.keys() & c.pairs.keys()
    ):
        return False
    for scope in c.scopes:
        if scope[0] in in_quote:
            continue
        shared = [t for t in scope[1:] if t in in_quote]
        if shared and not any(q.negated[t] for t in shared):
            return False
    if (c.cues and not any(t in in_quote for t in c.negated)) or c.elliptic or q.elliptic:
        return polarity(claim) == polarity(quoted)
    return True


def names(text: str) -> set[str]:
    """Capitalised words that look like names (people, places, organisations), lower-cased.

    A heuristic rather than an NER model: no offline-installable NER model ships on PyPI
    under a maintained name, and a claim's names only need to be *found* in the quote.
    """
    out: set[str] = set()
    for m in _CAPITALISED.finditer(text):
        word = _CLITIC.sub("", m.group().rstrip(".-’'")).lower()
        if word in _NOT_NAMES:
            continue
        # "U.S." and "Jean-Luc" are matched part by part, as the quote's words are split.
        out.update(w for w in re.findall(r"\w+", word) if len(w) > 1 and not w.isdigit())
        # A code's digits are part of its name: "Pac-12" is not "Pac-121", "G7" not "G20".
        if _CODE.fullmatch(word):
            out.add(re.sub(r"\W", "", word))
    return out


@lru_cache(maxsize=4096)
def _words(text: str) -> frozenset[str]:
    """The text's words, plus each run of capitalised words written the other ways a claim
    may write it: closed up ("J.C. Penney" -> "jcpenney") and as initials ("United States"
    -> "us", "U.N." -> "un", "London School of Economics" -> "lse")."""
    words = set(re.findall(r"[\w]+", text.lower().replace("’", "'")))
    words.update(m.group().replace(".", "").lower() for m in _DOTTED.finditer(text))
    words.update(re.sub(r"\W", "", m.group()).lower() for m in _CODE.finditer(text))
    for run in _NAME_RUN.finditer(text):
        parts = [w for w in re.findall(r"[\w]+", run.group()) if w.lower() not in _JOINERS]
        if len(parts) >= 2:
            words.add("".join(parts).lower())
            words.add("".join(w[0] for w in parts).lower())
    return frozenset(words)


# What may follow a shared stem of at least 4 letters in a name's other form: plurals,
# possessives and demonyms ("Russia"/"Russian", "Ukraine"/"Ukrainians", "China"/"Chinese",
# "Israel"/"Israeli"). Anything longer is another name: "Blacks" is not "Blackburn".
_NAME_ENDINGS = frozenset(["", "s", "es", "n", "ns", "an", "ans", "ian", "ians", "ese", "i", "is"])


def _named(name: str, known: frozenset[str]) -> bool:
    """A name is found as a word, or as the same stem with a plural or demonym ending: a
    demonym says the same place, a swap changes the stem."""
    if name in known:
        return True
    for w in known:
        stem = len(commonprefix((w, name)))
        if stem < 4:
            continue
        short, long = sorted((w[stem:], name[stem:]), key=len)
        if len(short) <= 1 and long in _NAME_ENDINGS:
            return True
    return False


def overlap(claim: str, quotes: str) -> float:
    """Share of the claim's content words (stemmed, stop words out) found in the quotes."""
    # Numbers are the number check's business; spelled out they'd count as unmatched words.
    wanted = [t for t in terms(words_to_digits(claim)) if not t.isdigit()]
    if not wanted:
        return 1.0
    have = set(terms(quotes))
    return sum(1 for t in wanted if t in have) / len(wanted)


def check_claim(
    claim: str,
    quotes: Sequence[str],
    context: str | Callable[[], str] = "",
    *,
    articles: str | Callable[[], str] = "",
    similarity: Similarity | None = None,
    min_overlap: float = MIN_OVERLAP,
    min_similarity: float = MIN_SIMILARITY,
    ignore_polarity: bool = False,
) -> Support:
    """Whether ``claim`` says what ``quotes`` say.

    ``context`` is the text around the cited sentences in their articles (and their outlet,
    author and title): a name there may stand behind a pronoun of the quote. ``articles``
    is the cited articles' whole text, used only to tell a sentence's capitalised first word
    from a name: "Facing prison, ..." starts with a word the article also writes in lower
    case."""
    quoted = " ".join(q.strip() for q in quotes)
    text = claim.strip()
    if not text or not quoted:
        return Support(False, "empty")
    # The extractive engine's claims are the quotes themselves: nothing to compare.
    if text == quoted or text in quotes:
        return SUPPORTED
    if sum(1 for c in quoted if not c.isspace()) < MIN_QUOTE_CHARS:
        return Support(False, "short quote")
    missing = numbers(text) - (quoted_numbers := numbers(quoted))
    if missing and not (missing == {"1"} and not quoted_numbers and _word_one_only(text)):
        return Support(False, "number")
    if not _names_found(text, quoted, context, articles):
        return Support(False, "name")
    if not ignore_polarity and not polarity_agrees(text, quoted):
        return Support(False, "negation")
    if overlap(text, quoted) < min_overlap:
        return Support(False, "overlap")
    if similarity is not None and similarity(text, quoted) < min_similarity:
        return Support(False, "similarity")
    return SUPPORTED


def _text(value: str | Callable[[], str]) -> str:
    return value() if callable(value) else value


def _names_found(
    claim: str,
    quoted: str,
    context: str | Callable[[], str],
    articles: str | Callable[[], str],
) -> bool:
    known = _words(quoted)
    missing = {n for n in names(claim) if not _named(n, known)}
    if missing:
        known |= _words(_text(context))
        missing = {n for n in missing if not _named(n, known)}
    if missing:
        first = {m.group().lower() for m in _SENTENCE_START.finditer(claim)}
        if missing <= first:
            lower = _lowercase_words(_text(articles))
            missing = {n for n in missing if n not in lower}
    return not missing


@lru_cache(maxsize=256)
def _lowercase_words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\b[a-z][a-z'’-]+\b", text))
