"""The claim check: its verbatim shortcut (a claim that is its own quote always passes) and
how names are matched."""

from __future__ import annotations

from service.claim_check import SUPPORTED, check_claim
from service.context import Newsdesk
from service.engines.extractive.engine import sentence_point
from service.engines.extractive.sentences import article_sentences
from service.verify import CitationLedger
from vectorstore.ingest import make_article

# Shorter than MIN_QUOTE_CHARS, and negated: a paraphrase of it would be dropped.
SHORT = "Kyiv said no."
LONGER = "Officials in Kyiv did not confirm the figure of 400 captured troops on Monday."


def never_similar(_claim: str, _quote: str) -> float:
    return 0.0


def test_a_claim_equal_to_its_quote_passes_every_signal() -> None:
    assert check_claim(SHORT, [SHORT]) == SUPPORTED
    # equal to one of several quotes, with a similarity that rejects everything else
    assert check_claim(LONGER, [SHORT, LONGER], similarity=never_similar) == SUPPORTED
    # the shortcut is for verbatim claims only: the same short quote can't carry more
    assert not check_claim("Kyiv said no to talks.", [SHORT]).ok


def test_extractive_points_pass_the_check_however_short_their_sentence(newsdesk: Newsdesk) -> None:
    newsdesk.indexer.index([make_article(f"{LONGER} {SHORT} It rained.", article_id="kyiv")])
    article = newsdesk.store.get_article("kyiv")
    assert article is not None
    ledger = CitationLedger([], similarity=never_similar)
    sentences = article_sentences(article)
    assert SHORT in [s.text for s in sentences]
    # sentence_point raises if the check drops an extractive point
    points = [sentence_point(ledger, s) for s in sentences]
    assert [c.quote for c in ledger.citations] == [s.text for s in sentences]
    assert len(points) == len(sentences) and ledger.claims_dropped == 0


MATCH = "Blackburn beat the Russian side 2-1 at Ewood Park on Saturday, officials said."


def test_a_name_matches_its_plural_or_demonym_but_not_a_longer_name() -> None:
    assert check_claim("Blackburn beat the Russia side 2-1 at Ewood Park.", [MATCH]).ok
    # "Blacks" shares five letters with "Blackburn": another team all the same.
    assert not check_claim("Blacks beat the Russian side 2-1 at Ewood Park.", [MATCH]).ok
