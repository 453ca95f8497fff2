"""Canonical URLs: one article reached through share links, tracking parameters, an
uppercase host or a default port gets one id; different articles keep different ones."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vectorstore.sources.identity import InvalidURL, canonical_url, url_article_id

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,12}\.(com|org|co\.uk|news)", fullmatch=True)
segments = st.lists(st.from_regex(r"[A-Za-z0-9._~-]{1,10}", fullmatch=True), max_size=4)
names = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True).filter(
    lambda n: (
        not n.startswith(("utm", "mtm", "pk", "hsa", "mc", "ga"))
        and n not in ("fbclid", "gclid", "share", "ito", "ocid", "smid", "cmpid", "dclid", "igshid")
    )
)
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
params = st.lists(st.tuples(names, values), max_size=4, unique_by=lambda kv: kv[0])
tracking = st.lists(
    st.tuples(
        st.sampled_from(["utm_source", "utm_medium", "UTM_Campaign", "fbclid", "gclid", "mc_cid"]),
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
    ),
    max_size=3,
)


def build(scheme: str, host: str, port: str, path: list[str], query: list, fragment: str) -> str:
    from urllib.parse import quote

    q = "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    return f"{scheme}://{host}{port}/{'/'.join(path)}" + (f"?{q}" if q else "") + fragment


@given(hosts, segments, params, tracking, st.sampled_from(["", "#top", "#comments"]))
def test_share_variants_of_one_article_have_one_identity(
    host: str, path: list[str], query: list, extra: list, fragment: str
) -> None:
    plain = build("https", host, "", path, query, "")
    variant = build("HTTPS", host.upper(), ":443", path, list(reversed(query)) + extra, fragment)
    assert canonical_url(variant) == canonical_url(plain)
    assert url_article_id(variant) == url_article_id(plain)


@given(st.sampled_from(["http", "https"]), hosts, segments, params, tracking)
def test_canonical_is_idempotent_and_keeps_what_names_the_article(
    scheme: str, host: str, path: list[str], query: list, extra: list
) -> None:
    url = build(scheme, host, "", path, query + extra, "#x")
    once = canonical_url(url)
    assert canonical_url(once) == once
    parts = urlsplit(once)
    assert parts.fragment == ""
    kept = parse_qsl(parts.query, keep_blank_values=True)
    assert sorted(kept) == sorted(query)  # every real parameter, no tracking one
    assert [k for k, _ in kept] == sorted(k for k, _ in kept)


@given(hosts, segments, segments)
def test_different_paths_stay_different_articles(host: str, a: list[str], b: list[str]) -> None:
    if a == b:
        return
    assert url_article_id(build("https", host, "", a, [], "")) != url_article_id(
        build("https", host, "", b, [], "")
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "HTTPS://WWW.Example.COM:443/World/Story?utm_source=tw&b=2&a=1&fbclid=x#frag",
            "https://www.example.com/World/Story?a=1&b=2",
        ),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/a?gclid=1", "http://example.com:8080/a"),
        ("https://example.com/%7Euser/caf%c3%a9", "https://example.com/~user/caf%C3%A9"),
        # A repeated parameter keeps its values' order: it may matter to the server.
        ("https://example.com/a?x=2&x=1", "https://example.com/a?x=2&x=1"),
    ],
)
def test_examples(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://example.com/a", "example.com/a", "https://", "http://[::1"])
def test_what_is_not_a_web_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidURL):
        canonical_url(url)


def test_article_ids_are_short_and_url_safe() -> None:
    article_id = url_article_id("https://example.com/a/b?c=d")
    assert article_id.startswith("url-") and len(article_id) <= 128
    assert "/" not in article_id


@given(
    st.text(max_size=60).map(lambda t: "https://" + t)
    | st.text(max_size=60).map(lambda t: "http://example.com/" + t)
)
def test_any_text_is_refused_cleanly_or_canonicalised_for_good(url: str) -> None:
    try:
        once = canonical_url(url)
    except InvalidURL:
        return
    assert canonical_url(once) == once
