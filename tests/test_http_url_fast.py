"""``http_url`` gives an absolute http(s) URL that ``urljoin`` and
``urlsplit`` would give back unchanged without calling them (issue 14: a
feed's links, media and body pictures are mostly such URLs). The shortcut
must answer exactly what the long way answers."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.core.sourceurls import _PLAIN_HTTP_URL, http_url

BASES = [None, "https://example.org/blog/feed.xml", "http://127.0.0.1:8080/f", "ftp://x.example/"]


def long_way(value: str, base: str | None) -> str | None:
    """``http_url`` without its shortcut."""
    text = value.strip()
    if not text or text.lower().startswith(("data:", "javascript:", "mailto:")):
        return None
    try:
        resolved = urljoin(base, text) if base else text
        parts = urlsplit(resolved)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return resolved


@settings(max_examples=400, deadline=None)
@given(st.from_regex(_PLAIN_HTTP_URL, fullmatch=True), st.sampled_from(BASES))
def test_a_plain_url_is_what_the_long_way_gives(url: str, base: str | None) -> None:
    assert http_url(url, base) == long_way(url, base) == url


URLISH = st.text(alphabet="hHtps:/.;?#[]@%ab1 \t\x00é-", max_size=30)


@settings(max_examples=400, deadline=None)
@given(st.one_of(URLISH, st.builds(lambda tail: "http://" + tail, URLISH)), st.sampled_from(BASES))
def test_any_string_gets_the_long_ways_answer(value: str, base: str | None) -> None:
    assert http_url(value, base) == long_way(value, base)


@pytest.mark.parametrize(
    "value",
    [
        "http://a.example/x?",
        "http://a.example/x#",
        "HTTP://a.example/",
        "http://a.example/x;p",
        "http://[::1]/",
        "http://u@a.example/",
        " http://a.example/ ",
    ],
)
def test_urls_the_long_way_changes_are_not_taken_as_they_are(value: str) -> None:
    assert not _PLAIN_HTTP_URL.fullmatch(value)
    for base in BASES:
        assert http_url(value, base) == long_way(value, base)
