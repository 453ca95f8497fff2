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


# What each signal must tell apart, in the forms real summaries write (bench/claims.py has
# the measured rates; these pin one case of each rule).
TARIFFS = "The United States has already imposed 25% tariffs on Chinese goods worth $34 billion."


def test_names_match_their_initials_and_closed_up_forms() -> None:
    assert check_claim("The US hit $34 billion of Chinese goods with a 25% tariff.", [TARIFFS]).ok
    penney = "Graber said she went to J.C. Penney and bought a small ring for the patient."
    assert check_claim("Graber went to JCPenney and bought a ring for the patient.", [penney]).ok
    un = "U.N. Secretary-General Ban Ki-moon demanded international action to stop the war."
    assert check_claim("UN chief Ban Ki-moon demanded action to stop the war.", [un]).ok
    # initials are no licence for another name
    assert not check_claim(
        "The UK hit $34 billion of Chinese goods with a 25% tariff.", [TARIFFS]
    ).ok


def test_a_code_keeps_its_digits_and_is_no_quantity() -> None:
    final = "Washington beat Oregon in the Pac-12 championship game on Friday night in Las Vegas."
    assert check_claim("Washington beat Oregon in the Pac-12 title game on Friday.", [final]).ok
    assert not check_claim(
        "Washington beat Oregon in the Pac-121 title game on Friday.", [final]
    ).ok
    abc = "Prosecutors said Cosme tried to cover up what happened to the burned children."
    # "ABC7" is an outlet's name, not the number 7; the name check still sees it
    assert check_claim(
        "Prosecutors said Cosme tried to cover up what happened, per ABC7.", [abc], "ABC7"
    ).ok
    assert not check_claim(
        "Prosecutors said Cosme tried to cover up what happened, per ABC7.", [abc]
    ).ok


def test_spelled_ordinals_and_a_lone_one_are_not_figures_to_find() -> None:
    arrest = "A Disneyland employee has been arrested over the dry ice bomb in the park's Toontown."
    assert check_claim(
        "Disneyland says one of its employees was arrested over the dry ice bomb.", [arrest]
    ).ok
    assert check_claim(
        "It is the first arrest over the dry ice bomb in Disneyland's Toontown.", [arrest]
    ).ok
    # "one" against a quote with a figure is a figure: "one" is not "two"
    two = "Two Disneyland employees have been arrested over the dry ice bomb in Toontown."
    assert not check_claim("One Disneyland employee was arrested over the dry ice bomb.", [two]).ok


def test_number_words_are_read_as_english_whatever_other_words_the_sentence_has() -> None:
    # Left to guess the language, the parser took "once" for Spanish 11 and lost "two".
    quote = "Once the storm passed, two men were found alive at Casa de la Cruz y Garcia."
    assert check_claim("Two men were found alive at Casa de la Cruz y Garcia.", [quote]).ok
    assert not check_claim("Eleven men were found alive at Casa de la Cruz y Garcia.", [quote]).ok


def test_negation_is_compared_word_by_word_not_by_count() -> None:
    lion = (
        "If the rangers had the right equipment, this lion would not have died. You can't keep "
        "a lion in the midst of people for so many hours without stressing it."
    )
    # one clause of a quote whose other clause has its own negation
    assert check_claim(
        "You can't keep a lion among people for hours without stressing it.", [lion]
    ).ok
    assert not check_claim(
        "You can keep a lion among people for hours without stressing it.", [lion]
    ).ok
    teams = "The teams have tried to justify the low pay by labeling cheerleaders as contractors."
    # the negated verb is not in the quote: the rest of its clause is
    assert not check_claim(
        "The teams have not sought to justify the low pay of cheerleaders.", [teams]
    ).ok
    remedy = "Right now there is no legislative remedy to potential AI risks outside those rules."
    assert not check_claim("Right now there is not no legislative remedy to AI risks.", [remedy]).ok
    # "not only" negates nothing
    assert check_claim(
        "The club not only has history, it has a legislative remedy.",
        ["The club has history and it has a legislative remedy for everything."],
    ).ok
    cant = "If I could take it all back, I would, but I can't."
    assert not check_claim("If I could take it all back, I would, but I can.", [cant]).ok
    cudi = "I would have killed myself if I didn't have Kid Cudi. Kid Cudi saved your life."
    assert not check_claim("He would have killed himself if he did have Kid Cudi.", [cudi]).ok
    assert check_claim("He would have killed himself if he didn't have Kid Cudi.", [cudi]).ok
    bare = "I cant imagine being inside that column and just baking in the heat."
    assert not check_claim("I can imagine being inside that column and just baking.", [bare]).ok


def test_a_sentence_first_word_the_article_writes_in_lower_case_is_no_name() -> None:
    quote = "Egeland had his son shoot him in the leg, hoping to delay his prison sentence."
    article = f"Egeland was facing prison for fraud. {quote}"
    claim = "Facing prison, Egeland had his son shoot him in the leg."
    assert check_claim(claim, [quote], articles=article).ok
    assert not check_claim(claim, [quote]).ok
    # a real name at the start is still a name
    assert not check_claim(
        "Rylan had his son shoot him in the leg to delay prison.", [quote], articles=article
    ).ok


def test_the_cited_articles_outlet_counts_as_context_for_names(newsdesk: Newsdesk) -> None:
    text = "The Pentagon's account retweeted a call for the president to resign, officials said."
    newsdesk.indexer.index([make_article(text, article_id="dod", source="Reuters")])
    article = newsdesk.store.get_article("dod")
    assert article is not None
    ledger = CitationLedger([])
    span = (article, 0, len(text))
    assert ledger.supports(
        "The Pentagon's account retweeted a call to resign, Reuters reports.", [span]
    )
    assert not ledger.supports(
        "The Pentagon's account retweeted a call to resign, CNN reports.", [span]
    )
