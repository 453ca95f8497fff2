"""Tests for service.citations: locating (possibly imperfect) quotes as exact spans."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from service.citations import (
    Located,
    clean_quote,
    locate_quote,
    normalize_with_map,
    span_with_context,
)

_SEED_DIRS = (Path(__file__).resolve().parents[1] / "seeds", Path("/work/shared/seeds"))


def _seed(prefix: str) -> str:
    for d in _SEED_DIRS:
        hits = sorted(d.glob(f"{prefix}_*.txt"))
        if hits:
            return hits[0].read_text(encoding="utf-8")
    pytest.skip(f"seed {prefix} not available")


def _norm(s: str) -> str:
    return normalize_with_map(s)[0]


def _assert_valid(r: Located, text: str) -> str:
    assert 0 <= r.start < r.end <= len(text)
    return text[r.start : r.end]


@pytest.fixture(scope="module")
def text002() -> str:
    return _seed("002")


@pytest.fixture(scope="module")
def text001() -> str:
    return _seed("001")


@pytest.fixture(scope="module")
def sentence(text002: str) -> tuple[str, int, int]:
    """The seed 002 sentence mentioning 121,000 evacuees, with its span."""
    start = text002.index("The humanitarian consequences")
    end = text002.index("violence.", start) + len("violence.")
    s = text002[start:end]
    assert "121,000" in s
    return s, start, end


# --- exact -----------------------------------------------------------------


def test_exact_hit(text002: str, sentence: tuple[str, int, int]) -> None:
    s, start, end = sentence
    r = locate_quote(s, text002)
    assert r == Located(start, end, "exact", 1.0)
    assert text002[r.start : r.end] == s


def test_surrounding_quote_marks_are_stripped(text002: str, sentence: tuple[str, int, int]) -> None:
    s, start, end = sentence
    for q in (f'"{s}"', f"\u201c{s}\u201d", f"  '{s}'\n", f"\u2018{s}\u2019"):
        r = locate_quote(q, text002)
        assert r is not None and (r.start, r.end, r.method) == (start, end, "exact")


def test_trailing_ellipsis(text002: str) -> None:
    full = "The governor of the Kursk region has reported that at least 12 civilians"
    for q in (full + "...", full + "\u2026", f'"{full}..."'):
        r = locate_quote(q, text002)
        assert r is not None and r.method == "exact"
        assert text002[r.start : r.end] == full


def test_missing_trailing_period(text002: str, sentence: tuple[str, int, int]) -> None:
    s, start, end = sentence
    r = locate_quote(s[:-1], text002)
    assert r is not None and (r.start, r.end) == (start, end - 1)
    assert text002[r.start : r.end] == s[:-1]


def test_extra_trailing_period_where_source_has_comma(text002: str) -> None:
    q = "The governor of the Kursk region has reported that at least 12 civilians have died."
    r = locate_quote(q, text002)
    assert r is not None and r.method == "normalized"
    assert text002[r.start : r.end] == q[:-1]
    assert text002[r.end] == ","


def test_first_occurrence_wins(text002: str) -> None:
    r = locate_quote("the Kursk region", text002)
    assert r is not None and r.method == "exact"
    assert r.start == text002.index("the Kursk region")
    assert text002.count("Kursk region") >= 2

    text = "Alpha beta gamma delta. Alpha beta gamma delta."
    r = locate_quote("ALPHA BETA GAMMA", text)
    assert r is not None and (r.start, r.end, r.method) == (0, 16, "normalized")


# --- normalized ------------------------------------------------------------


def test_straight_apostrophe_matches_curly(text002: str) -> None:
    q = "President Volodymyr Zelensky's comments resonate with the belief"
    r = locate_quote(q, text002)
    assert r is not None and r.method == "normalized" and r.score == 1.0
    assert text002[r.start : r.end] == q.replace("'", "\u2019")


def test_straight_double_quotes_match_curly(text002: str) -> None:
    q = '"Russia brought war to others, now it\'s coming home."'
    r = locate_quote(q, text002)
    assert r is not None and r.method == "normalized"
    assert text002[r.start : r.end] == "Russia brought war to others, now it\u2019s coming home."


@pytest.mark.parametrize(
    "q",
    [
        "the setting of his visit-the maps spread out before him",
        "the setting of his visit - the maps spread out before him",
        "the setting of his visit -- the maps spread out before him",
        "the setting of his visit \u2013 the maps spread out before him",
    ],
)
def test_dash_variants_match_em_dash(text001: str, q: str) -> None:
    r = locate_quote(q, text001)
    assert r is not None and r.method == "normalized"
    assert (
        text001[r.start : r.end] == "the setting of his visit\u2014the maps spread out before him"
    )


def test_space_matches_newline(text002: str) -> None:
    q = "civilian safety in both Ukraine and Russia. As the Ukrainian forces extend"
    r = locate_quote(q, text002)
    assert r is not None and r.method == "normalized"
    assert text002[r.start : r.end] == q.replace("Russia. As", "Russia.\nAs")


def test_newline_and_extra_spaces_match_single_space(
    text002: str, sentence: tuple[str, int, int]
) -> None:
    s, start, end = sentence
    q = s.replace(" with over ", "\n  with\u00a0over   ").replace(" their ", "\t\ttheir\r\n")
    r = locate_quote(q, text002)
    assert r is not None and (r.start, r.end, r.method) == (start, end, "normalized")


def test_case_difference(text002: str, sentence: tuple[str, int, int]) -> None:
    s, start, end = sentence
    for q in (s.upper(), s.lower(), s.title()):
        r = locate_quote(q, text002)
        assert r is not None and (r.start, r.end, r.method) == (start, end, "normalized")


def test_combined_variations(text002: str) -> None:
    q = "\u201cpresident volodymyr zelensky\u2019s  comments\nresonate\u201d"
    r = locate_quote(q, text002)
    assert r is not None and r.method == "normalized"
    assert text002[r.start : r.end] == "President Volodymyr Zelensky\u2019s comments resonate"


def test_casefold_expansion_maps_back_to_original_chars() -> None:
    text = "Die STRASSE heißt Große Straße im Zentrum."
    r = locate_quote("GROSSE STRASSE", text)
    assert r is not None and r.method == "normalized"
    assert text[r.start : r.end] == "Große Straße"


def test_match_does_not_start_inside_casefold_expansion() -> None:
    # "ß" folds to "ss"; the first normalised hit starts at its second "s" and
    # would map back to "ßxxxxxxxx", so the later, clean occurrence must win.
    text = "Maßxxxxxxxx and later sxxxxxxxx."
    r = locate_quote("Sxxxxxxxx", text)
    assert r is not None and r.method == "normalized"
    assert text[r.start : r.end] == "sxxxxxxxx"
    assert r.start == text.index(" sxxx") + 1


# --- fuzzy -----------------------------------------------------------------


def test_typo_accepted_by_fuzzy(text002: str, sentence: tuple[str, int, int]) -> None:
    s, start, end = sentence
    q = s.replace("fleeing", "fleing").replace("escalating", "escalting")
    r = locate_quote(q, text002)
    assert r is not None and r.method == "fuzzy"
    assert 0.9 <= r.score < 1.0
    assert (r.start, r.end) == (start, end)


def test_typo_fuzzy_span_is_trimmed(text002: str) -> None:
    q = "humanitarian consequences are alredy unfolding"
    r = locate_quote(q, text002)
    assert r is not None and r.method == "fuzzy"
    assert text002[r.start : r.end] == "humanitarian consequences are already unfolding"


def test_fuzzy_respects_min_score(text002: str, sentence: tuple[str, int, int]) -> None:
    q = sentence[0].replace("fleeing", "fleing")
    assert locate_quote(q, text002, min_fuzzy_score=1.0) is None


def test_fuzzy_needs_twenty_chars(text002: str) -> None:
    assert locate_quote("individals fleeing", text002) is None


def test_fabricated_sentence_is_not_found(text002: str) -> None:
    q = "The Kremlin announced a complete withdrawal of all troops from the Kursk region today."
    assert locate_quote(q, text002) is None


def test_fuzzy_on_long_text_uses_anchors(text002: str, sentence: tuple[str, int, int]) -> None:
    s, start, end = sentence
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 5000
    text = filler + text002 + filler
    assert len(text) > 200_000
    r = locate_quote(s.replace("fleeing", "fleing"), text)
    assert r is not None and r.method == "fuzzy"
    assert (r.start, r.end) == (len(filler) + start, len(filler) + end)


def test_fabricated_quote_in_a_100kb_article_is_not_found(text002: str) -> None:
    # Speed is measured by bench/, not asserted here.
    text = (text002 * 40)[:100_000]
    q = "The Kremlin announced a complete withdrawal of all troops from the region today."
    assert locate_quote(q, text) is None


# --- rejects ---------------------------------------------------------------


@pytest.mark.parametrize(
    "q", ["", "   ", "Russia", "'Kursk'", "a b c d e f g", "\u201c\u201d...", "…"]
)
def test_too_short_quotes_are_rejected(text002: str, q: str) -> None:
    assert locate_quote(q, text002) is None


def test_too_long_quote_is_rejected(text002: str, sentence: tuple[str, int, int]) -> None:
    assert locate_quote(sentence[0], text002, max_quote_chars=50) is None


def test_empty_text() -> None:
    assert locate_quote("some perfectly fine quote", "") is None


# --- helpers ---------------------------------------------------------------


def test_clean_quote() -> None:
    assert clean_quote('  "\u201chello world\u201d..."  ') == "hello world"
    assert clean_quote("\u2026and then\u2026") == "and then"


def test_normalize_with_map_examples() -> None:
    src = "A\u00a0\u00a0B\u200bC \u2014 \u201cD\u2019s\u201d \n Stra\u00dfe"
    norm, m = normalize_with_map(src)
    assert norm == 'a bc-"d\'s" strasse'
    assert len(m) == len(norm)
    assert m == sorted(m)
    # The two "s" produced by the sharp s both point at it.
    assert src[m[-2]] == src[m[-3]] == "\u00df"
    assert normalize_with_map("") == ("", [])
    assert normalize_with_map("  \n\u200b ") == ("", [])


def test_span_with_context(text002: str, sentence: tuple[str, int, int]) -> None:
    _, start, end = sentence
    lo, hi = span_with_context(text002, start, end, context=40)
    assert lo <= start and end <= hi
    assert start - lo <= 40 and hi - end <= 40
    assert text002[lo - 1].isspace() and text002[hi].isspace()
    assert span_with_context(text002, start, end, context=0) == (start, end)
    assert span_with_context("short text", 2, 5, context=200) == (0, 10)
    assert span_with_context("short text", -5, 99) == (0, 10)
    with pytest.raises(ValueError):
        span_with_context("short text", 6, 2)


# --- properties ------------------------------------------------------------

_PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _nonspace(s: str) -> int:
    return sum(1 for c in s if not c.isspace())


@_PROPS
@given(pre=st.text(), mid=st.text(min_size=8), post=st.text())
def test_prop_slice_is_found_exactly(pre: str, mid: str, post: str) -> None:
    text = pre + mid + post
    q = clean_quote(mid)
    assume(_nonspace(q) >= 8)
    r = locate_quote(mid, text)
    assert r is not None and r.method == "exact"
    assert _assert_valid(r, text) == q
    assert r.start == text.find(q)


_WS_SUBS = st.sampled_from([" ", "\n", "  ", "\u00a0", "\t\n", "\u2009"])


@_PROPS
@given(
    pre=st.text(),
    mid=st.text(min_size=8),
    post=st.text(),
    swap_case=st.booleans(),
    ws=_WS_SUBS,
    curl=st.booleans(),
)
def test_prop_varied_slice_is_found_normalized(
    pre: str, mid: str, post: str, swap_case: bool, ws: str, curl: bool
) -> None:
    text = pre + mid + post
    out = []
    for c in mid:
        if c.isspace():
            c = ws
        elif swap_case and c.isascii() and c.isalpha():
            c = c.swapcase()
        elif curl and c == "'":
            c = "\u2019"
        elif curl and c == '"':
            c = "\u201d"
        out.append(c)
    q = "".join(out)
    cq = clean_quote(q)
    assume(_nonspace(cq) >= 8 and _norm(cq))
    r = locate_quote(q, text)
    assert r is not None and r.method in ("exact", "normalized")
    event(r.method)
    found = _assert_valid(r, text)
    assert _norm(found) == _norm(cq)
    if r.method == "exact":
        assert found == cq


@_PROPS
@given(quote=st.text(), text=st.text())
def test_prop_invariant_arbitrary_pairs(quote: str, text: str) -> None:
    r = locate_quote(quote, text)
    if r is None:
        return
    found = _assert_valid(r, text)
    if r.method == "exact":
        assert found == clean_quote(quote)


_WORDS = st.text(alphabet="abcdefghij \n'\u2019-\u2014.,\u00df", min_size=20, max_size=400)


@_PROPS
@given(text=_WORDS, data=st.data())
def test_prop_invariant_mutated_slices(text: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(text) - 20), label="i")
    n = data.draw(st.integers(20, min(160, len(text) - i)), label="n")
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from("xyz \u201c")), max_size=2),
        label="edits",
    )
    q = list(text[i : i + n])
    for pos, ch in edits:
        q[pos] = ch
    quote = "".join(q)
    r = locate_quote(quote, text)
    event(r.method if r else "none")
    if r is None:
        return
    found = _assert_valid(r, text)
    cq = clean_quote(quote)
    if r.method == "exact":
        assert found == cq
    elif r.method == "normalized":
        nq = _norm(cq)
        assert _norm(found) in (nq, nq[:-1].rstrip(" "))
    else:
        assert 0.9 <= r.score <= 1.0
        assert not found[0].isspace() and not found[-1].isspace()
