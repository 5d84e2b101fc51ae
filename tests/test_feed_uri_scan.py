"""The scan that decides whether a body's URIs need a pass of feedparser's
resolver (issue 14: a pattern starting with the twelve attribute names cost
50 µs a body, the scan 3 µs) says what the patterns it replaced said: the
reference patterns are kept here, and compared on generated markup."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.adapters.sources.feed import _uri_attributes

NAMES = r"href|src|cite|background|action|longdesc|profile|usemap|classid|codebase|data|poster"
RELATIVE = re.compile(
    rf"""\b(?:{NAMES})\s*=\s*(?!["']?\s*[a-zA-Z][a-zA-Z0-9+.-]*:)""", re.IGNORECASE
)
PADDED = re.compile(
    rf"""\b(?:{NAMES})\s*=\s*(?:"(?:\s|[^"]*\s")|'(?:\s|[^']*\s'))""", re.IGNORECASE
)
#: A relative value by RELATIVE only because its ``\s*`` gives back the
#: space before a quoted absolute URL (``href = "http:..."``): not relative.
QUIRK = re.compile(rf"""\b(?:{NAMES})\s*=\s+["']\s*[a-zA-Z][a-zA-Z0-9+.-]*:""", re.IGNORECASE)

pieces = st.sampled_from(
    [
        "<a ",
        "<img ",
        ">",
        "</a>",
        " ",
        "\t",
        "=",
        '"',
        "'",
        "href",
        "HREF",
        "src",
        "data",
        "data-src",
        "datasrc",
        "x1src",
        "_src",
        "poster",
        "background",
        "backgrounds",
        "http:",
        "https://e.org/",
        "mailto:a",
        "javascript:x",
        "/rel",
        "rel",
        "pic.png",
        "text ",
        "é",
    ]
)


attribute = st.tuples(
    st.sampled_from(["", " ", "<a ", "x1", "_", "data-", "é", "a"]),
    st.sampled_from(["href", "Src", "data", "poster", "srcs", "codebase", "background"]),
    st.sampled_from(["", " ", "\t"]),
    st.just("="),
    st.sampled_from(["", " "]),
    st.sampled_from(['"', "'", ""]),
    st.sampled_from(["", " ", "http://e.org/", " https:x", "/rel", "rel ", "a.png", "\n"]),
    st.sampled_from(['"', "'", "", ">"]),
).map("".join)
markup = st.lists(st.one_of(pieces, attribute), max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(markup)
def test_the_scan_says_what_the_patterns_said(html: str) -> None:
    relative, padded = _uri_attributes(html)
    assert padded == bool(PADDED.search(html))
    if relative:
        assert RELATIVE.search(html)
    elif RELATIVE.search(html):
        # every place RELATIVE saw is the quirk's
        assert all(QUIRK.match(html, m.start()) for m in RELATIVE.finditer(html))


def test_examples() -> None:
    assert _uri_attributes('<a href="https://e.org/">x</a>') == (False, False)
    assert _uri_attributes('<a href="/rel">x</a>') == (True, False)
    assert _uri_attributes('<img data-src=" https://e.org/a.png">') == (False, True)
    assert _uri_attributes('<img datasrc="/a.png" title="a = b">') == (False, False)
    assert _uri_attributes("<video poster='p.png '>") == (True, True)
    assert _uri_attributes("<p>x = 1</p>") == (False, False)
