"""Benchmark: the extractive engine's answers on MultiHop-RAG dev, with its refusal rule
cross-validated, and refusals of off-topic summary and briefing topics.

Every dev question is asked over the 326-article corpus the way `newsdesk ask` asks it
(retrieval, then the engine). Reported: answered/refused by question type (null questions
are the unanswerable ones), the share of answers citing a gold evidence sentence, the share
of entity questions whose gold entity is in the answer or its quotes, and every citation
checked to be exact. The refusal thresholds (service/engines/extractive/relevance.py) are
chosen by 2-fold cross-validation over question groups (questions sharing a gold article
are one group, so no fold sees another's articles): each fold's thresholds are picked on
the other fold, and the numbers on the fold they never saw are reported next to the
in-sample ones (thresholds picked on all of dev, the shipped values).

The store is built once under data/bench/multihop (git-ignored) and reused.

    python -m bench.answers [--corpus FILE] [--queries FILE] [--rebuild]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, SHARED_EVAL, embedder, emit, quiet, rel, require_files, table

CACHE = ROOT / "data" / "bench" / "multihop"
FOLDS = 2
SEED = 15
# Thresholds tried by the cross-validation (relevance.Rule).
SUPPORT_GRID = [round(0.30 + 0.025 * i, 3) for i in range(17)]
COVERAGE_GRID = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
NAMES_GRID = [0.0, 0.5, 0.75, 1.0]
ARTICLE_COVERAGE_GRID = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.01]
# Topics the corpus does not cover (the first three are the issue's); a summary or
# briefing on any of them must be refused.
OFF_TOPIC = [
    "asdfghjkl qwertyuiop",
    "Mars colony water supply",
    "What is the capital of Mongolia?",
    "Sourdough starter feeding schedule",
    "Volcanic eruption in Iceland",
    "Medieval castle architecture in Wales",
    "Coral reef bleaching in the Maldives",
    "Knitting patterns for winter scarves",
]
# Topics for calibrating (with the questions) and checking the rule on summaries and
# briefings: the titles of this many random corpus articles (covered; their text, not
# their title, must carry the topic), and the first sentences of this many Multi-News
# reference summaries (stories of other years the corpus does not cover).
TOPICS_PER_SIDE = 60
NO_ENTITY = {"yes", "no", "insufficient information.", "consistent", "inconsistent"}
_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub("", text).lower()


@dataclass
class TopicRow:
    text: str
    covered: bool
    group: int
    support: Any = None
    summary_refused: bool | None = None
    briefing_refused: bool | None = None


@dataclass
class Row:
    id: str
    qtype: str
    gold: str
    evidence: list[str]
    support: Any = None
    answer: Any = None
    group: int = 0
    cited_gold: bool = False
    entity_found: bool | None = None
    exact: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def open_store(corpus: Path, emb: Any, rebuild: bool) -> Any:
    from service.context import Newsdesk
    from service.settings import Settings
    from vectorstore.ingest import read_paths

    if rebuild and CACHE.exists():
        shutil.rmtree(CACHE)
    CACHE.mkdir(parents=True, exist_ok=True)
    nd = Newsdesk(Settings(data_dir=CACHE, chroma_host=None), embedder=emb)
    if nd.store.count_articles() == 0:
        t0 = time.perf_counter()
        nd.indexer.index(read_paths([corpus]))
        print(f"built the bench store in {time.perf_counter() - t0:.0f}s")
    return nd


def groups_of(rows: list[Row], corpus: list[dict[str, Any]]) -> None:
    """Questions sharing a gold article are one group (union-find); null questions are
    their own."""
    article_of: dict[str, str] = {}
    for a in corpus:
        text = squash(a["text"])
        for r in rows:
            for e in r.evidence:
                if squash(e) in text:
                    article_of.setdefault(squash(e), a["id"])
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_article: dict[str, int] = {}
    for i, r in enumerate(rows):
        for e in r.evidence:
            aid = article_of.get(squash(e))
            if aid is None:
                continue
            if aid in by_article:
                parent[find(i)] = find(by_article[aid])
            else:
                by_article[aid] = i
    roots = sorted({find(i) for i in range(len(rows))})
    rng = random.Random(SEED)
    rng.shuffle(roots)
    sizes: dict[int, int] = defaultdict(int)
    for i in range(len(rows)):
        sizes[find(i)] += 1
    # Largest groups first, each to the smaller fold: balanced folds.
    load = [0] * FOLDS
    fold_of: dict[int, int] = {}
    for root in sorted(roots, key=lambda r: -sizes[r]):
        f = load.index(min(load))
        fold_of[root] = f
        load[f] += sizes[root]
    for i, r in enumerate(rows):
        r.group = fold_of[find(i)]


def ask_all(nd: Any, rows: list[Row], questions: dict[str, str]) -> None:
    """Each question through retrieval and the engine, with the refusal rule off (so the
    answer it would give is known for every threshold), and its Support recorded."""
    from service.answer import AnswerService
    from service.engines.extractive.relevance import Rule
    from service.requests import AskBody

    engine = nd.engine
    anything = Rule(min_support=float("-inf"), min_coverage=0.0, min_names=0.0)
    service = AnswerService(nd)
    for k, r in enumerate(rows):
        job = service.job(AskBody(questions[r.id]))
        if job is None:
            from service.engines.extractive.relevance import NO_SUPPORT

            r.support = NO_SUPPORT
            r.answer = None
            continue
        _, r.support = engine.evidence(job)
        r.answer = engine.answer(job, rule=anything)
        quotes = [squash(c.quote) for c in r.answer.citations]
        gold = [squash(e) for e in r.evidence]
        r.cited_gold = any(g in q or q in g for g in gold for q in quotes)
        if r.gold.strip().lower() not in NO_ENTITY:
            seen = (r.answer.answer + " " + " ".join(c.quote for c in r.answer.citations)).lower()
            r.entity_found = r.gold.strip().lower() in seen
        for c in r.answer.citations:
            article = nd.store.get_article(c.article_id)
            r.exact &= article is not None and article.text[c.start : c.end] == c.quote
        if (k + 1) % 50 == 0:
            print(f"  {k + 1}/{len(rows)} questions")


def stats(rows: list[Row], rule: Any) -> dict[str, Any]:
    """What the engine shows under ``rule``: the confusion table and the quality rates."""
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"answered": 0, "refused": 0})
    answered_gold = answered = entity_q = entity_hit = entity_refused = 0
    for r in rows:
        ok = r.answer is not None and not r.answer.refused and r.support.covered(rule)
        by_type[r.qtype]["answered" if ok else "refused"] += 1
        if ok:
            answered += 1
            answered_gold += r.cited_gold
        if r.entity_found is not None:
            entity_q += 1
            entity_hit += bool(ok and r.entity_found)
            entity_refused += not ok
    answerable = [r for r in rows if r.qtype != "null_query"]
    null = [r for r in rows if r.qtype == "null_query"]
    ans_ok = sum(by_type[t]["answered"] for t in by_type if t != "null_query")
    return {
        "questions": len(rows),
        "by_type": {t: dict(v) for t, v in sorted(by_type.items())},
        "answerable_refused": round(1 - ans_ok / max(len(answerable), 1), 4),
        "unanswerable_refused": round(by_type["null_query"]["refused"] / max(len(null), 1), 4),
        "gold_evidence_cited_of_all_answerable": round(
            sum(1 for r in answerable if r.cited_gold and r.support.covered(rule))
            / max(len(answerable), 1),
            4,
        ),
        "gold_evidence_cited_of_answered": round(answered_gold / max(answered, 1), 4),
        "entity_questions": entity_q,
        "entity_questions_refused": round(entity_refused / max(entity_q, 1), 4),
        "entity_in_answer": round(entity_hit / max(entity_q, 1), 4),
    }


def topic_stats(topics: list[TopicRow], rule: Any) -> dict[str, Any]:
    pos = [t for t in topics if t.covered]
    neg = [t for t in topics if not t.covered]
    return {
        "covered_topics": len(pos),
        "covered_refused": round(
            sum(not t.support.covered(rule) for t in pos) / max(len(pos), 1), 4
        ),
        "uncovered_topics": len(neg),
        "uncovered_refused": round(
            sum(not t.support.covered(rule) for t in neg) / max(len(neg), 1), 4
        ),
    }


def objective(rows: list[Row], topics: list[TopicRow], rule: Any) -> float:
    """Balanced accuracy of answering (answerable answered + unanswerable refused), plus
    the same for topics (covered kept + uncovered refused): one rule for both."""
    s = stats(rows, rule)
    t = topic_stats(topics, rule)
    return (
        (1 - s["answerable_refused"])
        + s["unanswerable_refused"]
        + (1 - t["covered_refused"])
        + t["uncovered_refused"]
    )


def choose(rows: list[Row], topics: list[TopicRow]) -> Any:
    from service.engines.extractive.relevance import Rule

    best: tuple[float, Any] | None = None
    # Article coverage runs strictest first, so where the data cannot tell (no question
    # reaches it) the way stays off.
    grid = itertools.product(
        SUPPORT_GRID, COVERAGE_GRID, NAMES_GRID, sorted(ARTICLE_COVERAGE_GRID, reverse=True)
    )
    for sup, cov, names, whole in grid:
        rule = Rule(sup, cov, names, whole)
        score = objective(rows, topics, rule)
        # Ties go to the first rule found.
        if best is None or score > best[0] + 1e-9:
            best = (score, rule)
    assert best is not None
    return best[1]


def topic_rows(corpus: list[dict[str, Any]], multinews: Path) -> list[TopicRow]:
    rng = random.Random(SEED)
    titles = [a["title"] for a in rng.sample(corpus, TOPICS_PER_SIDE)]
    stories = [
        json.loads(x)["reference_summary"]
        for x in multinews.read_text("utf-8").splitlines()
        if x.strip()
    ]
    firsts = [re.split(r"(?<=[.!?])\s", s.strip(), maxsplit=1)[0] for s in stories]
    firsts = rng.sample(firsts, TOPICS_PER_SIDE)
    rows = [TopicRow(t, True, i % FOLDS) for i, t in enumerate(titles)]
    rows += [TopicRow(t, False, i % FOLDS) for i, t in enumerate(firsts)]
    return rows


def topic_supports(nd: Any, topics: list[TopicRow]) -> None:
    """Each topic's Support over the articles a summary of it would read."""
    from service.articles import select_articles
    from service.engines.extractive.relevance import topic_support
    from service.engines.extractive.vectors import SentenceEmbedder

    emb = SentenceEmbedder(nd.embedder, nd.sentence_vectors)
    for t in topics:
        t.support = topic_support(emb, t.text, select_articles(nd, t.text, None, None))


def off_topic(nd: Any, topics: list[TopicRow]) -> dict[str, Any]:
    """The shipped services on the issue's off-topic topics (never used to choose
    anything) and on the calibration topics: refused or not."""
    from service.brief import BriefingService
    from service.requests import BriefingBody, SummaryBody
    from service.summarize import SummaryService

    def refused(topic: str) -> dict[str, bool]:
        s = SummaryService(nd).summarize(SummaryBody(topic=topic))
        b = BriefingService(nd).brief(BriefingBody(topic=topic))
        return {"summary_refused": s.refused, "briefing_refused": b.refused}

    out: dict[str, Any] = {"off_topic": {t: refused(t) for t in OFF_TOPIC}}
    for t in topics:
        r = refused(t.text)
        t.summary_refused, t.briefing_refused = r["summary_refused"], r["briefing_refused"]
    items = out["off_topic"].values()
    out["off_topic_refused"] = {
        "summaries": round(sum(i["summary_refused"] for i in items) / len(items), 4),
        "briefings": round(sum(i["briefing_refused"] for i in items) / len(items), 4),
    }
    for kind, flag in (("covered_topics", True), ("uncovered_topics", False)):
        chosen = [t for t in topics if t.covered is flag]
        out[f"{kind}_refused_by_the_services"] = {
            "summaries": round(sum(bool(t.summary_refused) for t in chosen) / len(chosen), 4),
            "briefings": round(sum(bool(t.briefing_refused) for t in chosen) / len(chosen), 4),
        }
    out["uncovered_topics_answered"] = [
        t.text for t in topics if not t.covered and not t.briefing_refused
    ]
    out["covered_topics_refused"] = [t.text for t in topics if t.covered and t.briefing_refused]
    return out


def run(
    corpus_path: Path, queries_path: Path, multinews: Path, rebuild: bool = False
) -> dict[str, Any]:
    from service.engines.extractive.relevance import Rule

    emb = embedder()
    corpus = [json.loads(x) for x in corpus_path.read_text("utf-8").splitlines() if x.strip()]
    raw = [json.loads(x) for x in queries_path.read_text("utf-8").splitlines() if x.strip()]
    rows = [
        Row(str(q["id"]), q["question_type"], str(q["answer"]), list(q.get("evidence") or []))
        for q in raw
    ]
    questions = {str(q["id"]): q["query"] for q in raw}
    groups_of(rows, corpus)
    nd = open_store(corpus_path, emb, rebuild)
    t0 = time.perf_counter()
    ask_all(nd, rows, questions)
    ask_seconds = time.perf_counter() - t0
    topics = topic_rows(corpus, multinews)
    topic_supports(nd, topics)

    shipped = Rule()
    in_sample_rule = choose(rows, topics)
    folds = []
    held_out_rows_stats = []
    held_out_topics = []
    for f in range(FOLDS):
        train = [r for r in rows if r.group != f]
        test = [r for r in rows if r.group == f]
        t_train = [t for t in topics if t.group != f]
        t_test = [t for t in topics if t.group == f]
        rule = choose(train, t_train)
        folds.append(
            {
                "fold": f,
                "questions": len(test),
                "topics": len(t_test),
                "rule_chosen_on_other_fold": rule.__dict__,
                "held_out": stats(test, rule),
                "held_out_topics": topic_stats(t_test, rule),
                "in_sample": stats(test, in_sample_rule),
            }
        )
        held_out_rows_stats.append((test, rule))
        held_out_topics += [
            TopicRow(t.text, t.covered, t.group, _Decided(t.support.covered(rule))) for t in t_test
        ]
    # Held-out numbers pooled over the folds: each question judged by the rule chosen
    # without it.
    pooled = pooled_stats(held_out_rows_stats)
    result = {
        "benchmark": "answers",
        "data": {
            "corpus": rel(corpus_path),
            "queries": rel(queries_path),
            "questions": len(rows),
            "fold_sizes": [sum(1 for r in rows if r.group == f) for f in range(FOLDS)],
        },
        "rule": {
            "shipped": shipped.__dict__,
            "chosen_on_all_dev": in_sample_rule.__dict__,
            "grid": {
                "min_support": SUPPORT_GRID,
                "min_coverage": COVERAGE_GRID,
                "min_names": NAMES_GRID,
                "min_article_coverage": ARTICLE_COVERAGE_GRID,
            },
        },
        "in_sample": stats(rows, in_sample_rule),
        "shipped": stats(rows, shipped),
        "held_out_pooled": pooled,
        "topics_in_sample": topic_stats(topics, in_sample_rule),
        "topics_held_out_pooled": topic_stats(held_out_topics, None),
        "folds": folds,
        "all_citations_exact": all(r.exact for r in rows),
        "seconds_per_question": round(ask_seconds / len(rows), 3),
        "refusal_of_topics": off_topic(nd, topics),
    }
    return result


def pooled_stats(parts: list[tuple[list[Row], Any]]) -> dict[str, Any]:
    """stats() over the union of the folds, each under its own rule."""

    marked: list[Row] = []
    for rows, rule in parts:
        for r in rows:
            # Bake the fold's decision into a copy so one stats() call covers all folds.
            copy = Row(r.id, r.qtype, r.gold, r.evidence, r.support, r.answer, r.group)
            copy.cited_gold, copy.entity_found, copy.exact = r.cited_gold, r.entity_found, r.exact
            copy.support = _Decided(r.support.covered(rule))
            marked.append(copy)
    return stats(marked, None)


class _Decided:
    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def covered(self, rule: Any = None) -> bool:
        return self.ok


def render(result: dict[str, Any]) -> str:
    def line(name: str, s: dict[str, Any]) -> list[Any]:
        bt = s["by_type"]
        return [
            name,
            *(f"{bt[t]['answered']}/{bt[t]['refused']}" for t in sorted(bt)),
            s["answerable_refused"],
            s["unanswerable_refused"],
            s["gold_evidence_cited_of_all_answerable"],
            s["entity_questions_refused"],
            s["entity_in_answer"],
        ]

    types = sorted(result["in_sample"]["by_type"])
    head = [
        "rule",
        *(f"{t} answered/refused" for t in types),
        "answerable refused",
        "unanswerable refused",
        "gold evidence cited",
        "entity qs refused",
        "entity in answer",
    ]
    rows = [
        line("held-out folds (pooled)", result["held_out_pooled"]),
        line("in-sample (chosen on all dev)", result["in_sample"]),
        line("shipped constants", result["shipped"]),
    ]
    t = result["refusal_of_topics"]
    return (
        f"Answers, MultiHop-RAG dev ({result['data']['questions']} questions)\n"
        + table(head, rows)
        + f"\nall citations exact: {result['all_citations_exact']}"
        + "\ntopics (summaries/briefings) held-out: "
        + f"{result['topics_held_out_pooled']}; in-sample: {result['topics_in_sample']}"
        + f"\nthe issue's off-topic topics refused by the services: {t['off_topic_refused']}"
        + "\ncovered topics refused by the services: "
        + f"{t['covered_topics_refused_by_the_services']}; uncovered: "
        + f"{t['uncovered_topics_refused_by_the_services']}"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.answers", description=__doc__)
    p.add_argument("--corpus", type=Path, default=SHARED_EVAL / "multihop_corpus.jsonl")
    p.add_argument("--queries", type=Path, default=SHARED_EVAL / "multihop_dev.jsonl")
    p.add_argument("--multinews", type=Path, default=SHARED_EVAL / "multinews_dev.jsonl")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    p.add_argument("--out-dir", type=Path, default=None, help="default: bench/results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    quiet()
    args = parse(argv)
    require_files(args.corpus, args.queries, args.multinews)
    result = run(args.corpus, args.queries, args.multinews, args.rebuild)
    kwargs = {"out_dir": args.out_dir} if args.out_dir else {}
    emit("answers", result, render(result), **kwargs)
    return result


if __name__ == "__main__":
    main()
