"""A labelled set of claim/quote pairs built from the shared corpus (seeded, synthetic).

Every pair's quote is a real sentence of the MultiHop corpus. The claims are made from it by
deterministic rewrites: ``faithful`` keeps the meaning with two rewrites combined where two
apply (attribution dropped, "about" before a count, an opening clause moved or dropped,
contractions expanded, words swapped for synonyms from a short list); the lies change it
(``number`` swap; ``entity`` swap: a named entity the sentence contains, replaced by one of
the same kind from other articles; ``negation`` inserted or removed; ``unrelated``: another
article's sentence). Which sentence feeds which class is decided by the data (each sentence
goes to the smallest class it can make), not picked by hand. They are synthetic: a real
model's paraphrases and lies are more varied than these.

Entities, with no NER model offline: the outlets (``source``) and authors of the corpus,
and the capitalised multiword or single-word spans that occur in at least two articles.
Kinds: outlet, person (a span starting with an author's first name), surname, organisation
(a span ending in an organisation word), else its word count; each but outlet refined by the
corpus category the entity is mostly seen in. Shape and section only approximate a kind:
"Valve" may become "Best Buy", "Arrowhead Stadium" "Eras Tour".
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.claim_check import _NOT_NAMES, names, numbers
from vectorstore.sentences import sentence_spans

SEED = 13
SYNONYMS = {
    "said": "stated",
    "says": "states",
    "big": "large",
    "help": "assist",
    "buy": "purchase",
    "start": "begin",
    "began": "started",
    "shows": "indicates",
    "showed": "indicated",
    "about": "around",
    "people": "individuals",
    "company": "firm",
    "also": "additionally",
    "announced": "said",
    "reported": "said",
    "increase": "rise",
    "large": "big",
    "major": "big",
    "before": "prior to",
    "after": "following",
    "because": "as",
    "however": "but",
}
_ATTRIBUTION = re.compile(r"^(.{3,60}?) (?:said|says|added|noted) (?:that )?", re.IGNORECASE)
_TRAILING_ATTR = re.compile(r",[”\"]? (?:he|she|they|[A-Z][\w ]{0,40}) (?:said|says|added)\.?$")
_AUX = re.compile(r"\b(is|was|are|were|has|have|had|will|would|can|could|did|does|do)\b")
_NOT = re.compile(r"\b(?:not|never) |n[’']t\b")
_NUM = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
# A number counting what follows it ("12 civilians", not "$5,000", "top-10" or "Week 4").
# Years are left alone: "about 1997" is a different claim from "1997".
_BARE_NUM = re.compile(r"(?<= )(?!(?:19|20)\d\d\b)\d+(?:,\d{3})*(?:\.\d+)?(?= [a-z])")
_OPENER = re.compile(
    r"(?:When|While|After|Before|Although|Though|Even if|If|Since|Despite|In|On|From|During|"
    r"Following|Over|Under|According to|Earlier|Later|Last|This) "
)
# Expanded, a contraction says the same ("n't" -> "not" keeps the negation count).
_CONTRACTIONS = {
    "it's": "it is",
    "it’s": "it is",
    "don't": "do not",
    "don’t": "do not",
    "doesn't": "does not",
    "doesn’t": "does not",
    "didn't": "did not",
    "didn’t": "did not",
    "isn't": "is not",
    "isn’t": "is not",
    "can't": "cannot",
    "can’t": "cannot",
    "won't": "will not",
    "won’t": "will not",
    "we're": "we are",
    "we’re": "we are",
    "they're": "they are",
    "they’re": "they are",
    "we've": "we have",
    "we’ve": "we have",
}
_CONTRACTION = re.compile(
    r"\b(?:" + "|".join(re.escape(c) for c in _CONTRACTIONS) + r")\b", re.IGNORECASE
)
# Capitalised because they are days and months, not names.
_CALENDAR_WORDS = (
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April "
    "May June July August September October November December"
)
_CALENDAR = frozenset(_CALENDAR_WORDS.split())
_WORD = r"[A-Z][A-Za-z0-9&\-]*[A-Za-z0-9]"
_RUN = re.compile(rf"\b{_WORD}(?: {_WORD})*\b")
# Last words that make a span an organisation's name.
_ORG_WORDS = (
    "Department Ministry Agency Commission Court Bank Inc Corp Group Company Association "
    "Council University Institute Party Committee Administration Office Board Service "
    "Authority League Foundation Fund Reserve Congress Senate Police Army"
)
ORG_WORDS = frozenset(_ORG_WORDS.split())


def corpus_sentences(path: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for art in read_corpus(path):
        for s, e in sentence_spans(art["text"]):
            sent = art["text"][s:e].strip()
            if 8 <= len(sent.split()) <= 60:
                out.append((art["id"], sent))
    return out


def read_corpus(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def spans(text: str) -> list[re.Match[str]]:
    """Runs of capitalised words, less the grammar words a run may start with ("The Verge"
    is kept whole only when it is an outlet's name: see ``Entities``)."""
    return list(_RUN.finditer(text))


def _clean(span: str) -> str:
    words = span.split()
    while words and words[0].lower() in _NOT_NAMES:
        words.pop(0)
    return " ".join(words)


@dataclass
class Entities:
    """The corpus's named entities by kind, each with the articles it occurs in."""

    outlets: set[str]
    first_names: set[str]
    by_kind: dict[str, list[str]]
    kind_of: dict[str, str]
    articles: dict[str, set[str]]

    @classmethod
    def from_corpus(cls, arts: list[dict[str, Any]]) -> Entities:
        outlets = {a["source"] for a in arts if a.get("source")}
        authors = {
            name.strip()
            for a in arts
            for name in re.split(r",| and ", a.get("author") or "")
            if len(name.split()) >= 2
        }
        first_names = {a.split()[0] for a in authors}
        articles: dict[str, set[str]] = {}
        for a in arts:
            text = f"{a.get('title') or ''}. {a['text']}"
            found = {_clean(m.group()) for m in spans(text)}
            found |= {o for o in outlets if o in text} | {n for n in authors if n in text}
            for e in found:
                if e and len(e) > 2:
                    articles.setdefault(e, set()).add(a["id"])
        for name in outlets | authors:
            articles.setdefault(name, set())
        # Seen in two articles, or listed as an outlet or author: a name, not a word
        # capitalised by a sentence's grammar.
        keep = {e for e, ids in articles.items() if len(ids) >= 2} | outlets | authors
        people = authors | {
            e for e in keep if len(e.split()) in (2, 3) and e.split()[0] in first_names
        }
        surnames = {p.split()[-1] for p in people}
        kind_of: dict[str, str] = {}
        for e in keep:
            words = e.split()
            if not names(e):
                continue
            if e in outlets:
                kind_of[e] = "outlet"
            elif e in authors or (len(words) in (2, 3) and words[0] in first_names):
                kind_of[e] = "person"
            elif len(words) == 1 and (e in first_names or e in _CALENDAR):
                # A first name alone or a weekday is not a name of one thing to swap.
                continue
            elif len(words) == 1 and e in surnames:
                kind_of[e] = "surname"
            elif words[-1] in ORG_WORDS:
                kind_of[e] = "organisation"
            else:
                kind_of[e] = f"name{min(len(words), 3)}"
        # The kind's shape, refined by the corpus category the entity is mostly seen in:
        # a tech company is swapped for a tech company, a team for a team, as near as
        # shape and section get without an NER model.
        category = {a["id"]: a.get("category") or "" for a in arts}
        for e, k in kind_of.items():
            seen = Counter(category[i] for i in articles.get(e, ()))
            if k != "outlet" and seen:
                kind_of[e] = f"{k}/{seen.most_common(1)[0][0]}"
        by_kind: dict[str, list[str]] = {}
        for e, k in sorted(kind_of.items()):
            by_kind.setdefault(k, []).append(e)
        return cls(outlets, first_names, by_kind, kind_of, articles)

    def in_sentence(self, sent: str) -> list[tuple[int, int, str]]:
        """Known entities of a sentence as (start, end, entity), longest spans first."""
        found: list[tuple[int, int, str]] = []
        for m in spans(sent):
            cleaned = _clean(m.group())
            if cleaned in self.kind_of:
                start = m.start() + m.group().index(cleaned)
                found.append((start, start + len(cleaned), cleaned))
        for o in self.outlets:
            for m in re.finditer(rf"\b{re.escape(o)}\b", sent):
                found.append((m.start(), m.end(), o))
        found.sort(key=lambda f: (-(f[1] - f[0]), f[0]))
        return found


def faithful(sent: str, rng: random.Random) -> str | None:
    """Two meaning-keeping rewrites combined where two apply to the sentence, else one."""
    done: set[str] = set()
    text = sent
    for _ in range(2):
        options = [(k, t) for k, t in _rewrites(text) if k not in done and t != text]
        if not options:
            break
        kind, text = rng.choice(options)
        done.add(kind)
    return text if done else None


def _rewrites(sent: str) -> list[tuple[str, str]]:
    options: list[tuple[str, str]] = []
    m = _ATTRIBUTION.match(sent)
    if m and not _NOT.search(m.group(1)):
        rest = sent[m.end() :]
        options.append(("attribution", rest[:1].upper() + rest[1:]))
    t = _TRAILING_ATTR.search(sent)
    if t:
        options.append(("attribution", sent[: t.start()].strip('“”"') + "."))
    if _BARE_NUM.search(sent) and not re.search(r"\babout \d", sent):
        about = _BARE_NUM.sub(lambda n: "about " + n.group(), sent, count=1)
        options.append(("about", about))
    words = sent.split()
    swapped = [SYNONYMS.get(w, w) for w in words]
    if swapped != words:
        options.append(("synonyms", " ".join(swapped)))
    # Only an opening adverbial clause moves without changing what is said ("From a
    # security perspective, X." = "X, from a security perspective."); a split at any comma
    # made quotes and lists into nonsense.
    if ", " in sent and _OPENER.match(sent) and not re.search(r"[“”\"]", sent):
        a, b = sent.rstrip(".").split(", ", 1)
        if len(a.split()) >= 3 and len(b.split()) >= 3:
            options.append(("order", b[:1].upper() + b[1:] + ", " + a[:1].lower() + a[1:] + "."))
            # Saying less is still saying what the quote says.
            options.append(("order", b[:1].upper() + b[1:] + "."))
    expanded = _CONTRACTION.sub(lambda m: _CONTRACTIONS[m.group().lower()], sent)
    if expanded != sent:
        options.append(("contractions", expanded))
    return options


def number_swap(sent: str, rng: random.Random) -> str | None:
    found = list(_NUM.finditer(sent))
    if not found:
        return None
    m = rng.choice(found)
    value = float(m.group().replace(",", ""))
    new = value * rng.choice([2, 3, 10]) + rng.choice([1, 7])
    text = f"{new:,.0f}" if "," in m.group() else f"{new:g}"
    return sent[: m.start()] + text + sent[m.end() :]


def entity_swap(sent: str, aid: str, ents: Entities, rng: random.Random) -> str | None:
    """A named entity of the sentence replaced by one of the same kind that its article never
    mentions (so the claim is false of it, as far as the article says)."""
    found = ents.in_sentence(sent)
    if not found:
        return None
    start, end, entity = rng.choice(found)
    kind = ents.kind_of.get(entity, "outlet")
    others = [
        e
        for e in ents.by_kind.get(kind, [])
        if aid not in ents.articles.get(e, set())
        and not names(e) & names(sent)
        and e.lower() not in sent.lower()
    ]
    if not others:
        return None
    return sent[:start] + rng.choice(others) + sent[end:]


def negation(sent: str) -> str | None:
    # "not only X but also Y" negates nothing: dropping its "not" is no lie.
    if re.search(r"\bnot only\b", sent):
        return None
    if _NOT.search(sent):
        first = _NOT.search(sent)
        # "can't" loses its "n't" as "can", "won't" as "will".
        for short, full in (("ca", "can"), ("wo", "will")):
            if first and sent[: first.start()].lower().endswith(short):
                cut = first.start() - len(short)
                return sent[:cut] + sent[cut : cut + 1] + full[1:] + sent[first.end() :]
        return _NOT.sub(lambda m: "" if m.group().strip() in ("not", "never") else "", sent, 1)
    m = _AUX.search(sent)
    return sent[: m.end()] + " not" + sent[m.end() :] if m else None


def build(corpus: Path, per_class: int = 60) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    sents = corpus_sentences(corpus)
    rng.shuffle(sents)
    ents = Entities.from_corpus(read_corpus(corpus))
    made: dict[str, list[dict[str, str]]] = {
        k: [] for k in ("faithful", "number", "entity", "negation", "unrelated")
    }
    for aid, sent in sents:
        other = next(s for a, s in rng.sample(sents, 5) if a != aid)
        makers = {
            "faithful": lambda s=sent: faithful(s, rng),
            "number": lambda s=sent: number_swap(s, rng) if numbers(s) else None,
            "entity": lambda s=sent, a=aid: entity_swap(s, a, ents, rng),
            "negation": lambda s=sent: negation(s),
            "unrelated": lambda o=other: o,
        }
        # Each sentence feeds the class that has the fewest pairs so far, if it can.
        for label in sorted(made, key=lambda k: len(made[k])):
            if len(made[label]) >= per_class:
                continue
            claim = makers[label]()
            if claim and claim != sent:
                made[label].append({"label": label, "claim": claim, "quote": sent})
                break
    return [p for rows in made.values() for p in rows]
