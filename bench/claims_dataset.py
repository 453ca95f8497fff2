"""A labelled set of claim/quote pairs built from the shared corpus (seeded, synthetic).

Every pair's quote is a real sentence of the MultiHop corpus. The claims are made from it by
deterministic rewrites: ``faithful`` keeps the meaning (attribution dropped, "about" before a
number, clause order swapped, a word swapped for a synonym from a short list); the lies change
it (``number`` swap, ``entity`` swap with a name from another article, ``negation``
inserted or removed, ``unrelated``: another article's sentence). They are synthetic: a real
model's paraphrases and lies are more varied than these.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from service.claim_check import names, numbers
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
}
_ATTRIBUTION = re.compile(r"^(.{3,60}?) (?:said|says|added|noted) (?:that )?", re.IGNORECASE)
_TRAILING_ATTR = re.compile(r",[”\"]? (?:he|she|they|[A-Z][\w ]{0,40}) (?:said|says|added)\.?$")
_AUX = re.compile(r"\b(is|was|are|were|has|have|had|will|would|can|could|did|does|do)\b")
_NOT = re.compile(r"\b(?:not|never) |n[’']t\b")
_NUM = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def corpus_sentences(path: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        art = json.loads(line)
        for s, e in sentence_spans(art["text"]):
            sent = art["text"][s:e].strip()
            if 8 <= len(sent.split()) <= 60:
                out.append((art["id"], sent))
    return out


def faithful(sent: str, rng: random.Random) -> str | None:
    options: list[str] = []
    m = _ATTRIBUTION.match(sent)
    if m and not _NOT.search(m.group(1)):
        rest = sent[m.end() :]
        options.append(rest[:1].upper() + rest[1:])
    t = _TRAILING_ATTR.search(sent)
    if t:
        options.append(sent[: t.start()].strip('“”"') + ".")
    if _NUM.search(sent):
        options.append(_NUM.sub(lambda n: "about " + n.group(), sent, count=1))
    words = sent.split()
    swapped = [SYNONYMS.get(w, w) for w in words]
    if swapped != words:
        options.append(" ".join(swapped))
    if ", " in sent and not sent.startswith("“"):
        a, b = sent.rstrip(".").split(", ", 1)
        if len(a.split()) >= 3 and len(b.split()) >= 3:
            options.append(b[:1].upper() + b[1:] + ", " + a[:1].lower() + a[1:] + ".")
    return rng.choice(options) if options else None


def number_swap(sent: str, rng: random.Random) -> str | None:
    found = list(_NUM.finditer(sent))
    if not found:
        return None
    m = rng.choice(found)
    value = float(m.group().replace(",", ""))
    new = value * rng.choice([2, 3, 10]) + rng.choice([1, 7])
    text = f"{new:,.0f}" if "," in m.group() else f"{new:g}"
    return sent[: m.start()] + text + sent[m.end() :]


def entity_swap(sent: str, pool: list[str], rng: random.Random) -> str | None:
    # A capitalised word past the first, replaced by a name from another article.
    cands = [m for m in re.finditer(r"\b[A-Z][a-z]{2,}\b", sent) if m.start() > 0]
    cands = [m for m in cands if m.group().lower() in names(sent)]
    if not cands:
        return None
    m = rng.choice(cands)
    other = rng.choice([p for p in pool if p.lower() != m.group().lower()])
    return sent[: m.start()] + other + sent[m.end() :]


def negation(sent: str) -> str | None:
    if _NOT.search(sent):
        return _NOT.sub(lambda m: "" if m.group().strip() in ("not", "never") else "", sent, 1)
    m = _AUX.search(sent)
    return sent[: m.end()] + " not" + sent[m.end() :] if m else None


def build(corpus: Path, per_class: int = 60) -> list[dict[str, str]]:
    rng = random.Random(SEED)
    sents = corpus_sentences(corpus)
    rng.shuffle(sents)
    pool = sorted({w for _, s in sents for w in re.findall(r"(?<=\s)[A-Z][a-z]{3,}\b", s)})
    pool = [w for w in pool if w.lower() in names(w)]
    made: dict[str, list[dict[str, str]]] = {
        k: [] for k in ("faithful", "number", "entity", "negation", "unrelated")
    }
    for aid, sent in sents:
        other = next(s for a, s in rng.sample(sents, 5) if a != aid)
        makers = {
            "faithful": lambda s=sent: faithful(s, rng),
            "number": lambda s=sent: number_swap(s, rng) if numbers(s) else None,
            "entity": lambda s=sent: entity_swap(s, pool, rng),
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
