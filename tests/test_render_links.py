"""Links, formatting, hashtags, caps and splitting in the text of posts (core, pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.core.identity import strip_tracking
from publisher.core.items import Item
from publisher.core.render import TextStyle, check_template, render_posts, render_text
from publisher.core.render.html import html_to_body
from publisher.core.render.links import hashtags
from publisher.core.render.markup import neutralise, segments, to_html
from publisher.core.render.text import split_text, truncate, utf16_len

LINK = "https://example.org/post?utm_source=rss&id=7"
HTML = '<p>See the <a href="https://ex.org/map?utm_campaign=a&amp;x=1">stall map</a> now.</p>'


def item(html: str = HTML, **kw: object) -> Item:
    fields: dict[str, object] = {
        "source": "s",
        "key": "k",
        "title": "Market day",
        "html": html,
        "link": LINK,
        "published": datetime(2026, 5, 1, tzinfo=UTC),
    }
    fields.update(kw)
    return Item(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        pytest.param(TextStyle(), "See the stall map (https://ex.org/map?x=1) now.", id="inline"),
        pytest.param(
            TextStyle(links="footnotes"),
            "See the stall map [1] now.\n\n[1] https://ex.org/map?x=1",
            id="footnotes",
        ),
        pytest.param(TextStyle(links="drop"), "See the stall map now.", id="drop"),
        pytest.param(
            TextStyle(clean_links=False),
            "See the stall map (https://ex.org/map?utm_campaign=a&x=1) now.",
            id="keep-tracking",
        ),
    ],
)
def test_links_in_the_text(style: TextStyle, expected: str) -> None:
    text = render_text(item(), style=style).text
    assert text == f"Market day\n\n{expected}\n\n" + (
        LINK if not style.clean_links else "https://example.org/post?id=7"
    )


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param('<a href="javascript:alert(1)">x</a>', "x", id="javascript"),
        pytest.param('<a href="data:text/html,hi">x</a>', "x", id="data"),
        pytest.param('<a href="mailto:a@b.c">x</a>', "x", id="mailto"),
        pytest.param('<a href="/rel">x</a>', "x (https://example.org/rel)", id="relative"),
        pytest.param('<a href="https://a.org/">https://a.org/</a>', "https://a.org/", id="url"),
        pytest.param(f'<a href="{LINK}">Read more</a>', "Read more", id="own-link"),
    ],
)
def test_only_http_links_are_written(html: str, expected: str) -> None:
    assert html_to_body(html, TextStyle(), base_url=LINK, own_link=LINK).text == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.org/x?utm_source=rss&utm_medium=feed", "https://a.org/x"),
        ("https://a.org/x?id=1&fbclid=z&gclid=y#top", "https://a.org/x?id=1#top"),
        ("https://a.org/x?mc_cid=1&mc_eid=2&igshid=3&b=2", "https://a.org/x?b=2"),
        ("https://A.org/x?b=2&a=1", "https://A.org/x?b=2&a=1"),
    ],
)
def test_strip_tracking(url: str, expected: str) -> None:
    assert strip_tracking(url) == expected


def test_viber_format() -> None:
    html = "<p><b>Bold</b>, <em>it</em>, <del>old</del> and <code>x = 1</code> *nix *BSD* too</p>"
    text = render_text(item(html, link=None), style=TextStyle(format="viber")).text
    assert text == "*Market day*\n\n*Bold,* _it,_ ~old~ and ```x = 1``` *nix *BSD*\u2060 too"
    shown = segments(text)
    assert ("Bold,", "bold") in shown and ("it,", "italic") in shown
    assert ("x = 1", "mono") in shown and ("BSD", "bold") not in shown
    assert "<b>Market day</b>" in to_html(text)


def test_plain_format_neutralises_accidental_runs() -> None:
    text = render_text(item("<p>a *b* c _d_</p>", link=None)).text
    assert all(style is None for _, style in segments(text))


def test_hashtags() -> None:
    cats = ("street food", "Markets!", "street-food", "2024", "iPhone", "a", "b", "c")
    assert hashtags(cats, 5) == "#StreetFood #Markets #iPhone #a #b"
    assert hashtags(cats, 1) == "#StreetFood"
    out = render_text(item(categories=("open source",)), "{title} {hashtags}").text
    assert out == "Market day #OpenSource"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{title} {text:280} {link}", None),
        ("{hashtags}", None),
        ("{titel}", "'titel' is not a field"),
        ("{text:0}", "at least 1"),
    ],
)
def test_check_template(template: str, problem: str | None) -> None:
    found = check_template(template)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_field_cap_cuts_at_a_word_and_keeps_links_whole() -> None:
    html = "<p>" + "word " * 30 + '<a href="https://ex.org/a/long/path">here</a> and more</p>'
    text = render_text(item(html), "{text:160}\n{link}").text
    body = text.split("\n")[0]
    assert utf16_len(body) <= 160 and body.endswith("…")
    assert "https://ex.org/a/long/pat" not in body or "https://ex.org/a/long/path)" in body


def test_long_text_splits_into_marked_posts_with_the_link_last() -> None:
    body = "\n\n".join(["A sentence. " * 100] * 12)
    posts = render_posts(item(link="https://ex.org/x", html="", text=body))
    assert len(posts.texts) > 1
    assert all(utf16_len(t) <= 7000 for t in posts.texts)
    assert [t.split(" ", 1)[0] for t in posts.texts] == [
        f"({i}/{len(posts.texts)})" for i in range(1, len(posts.texts) + 1)
    ]
    assert posts.texts[-1].endswith("https://ex.org/x")
    assert any(d.code == "split" for d in posts.decisions)
    cut = render_posts(item(link="https://ex.org/x", html="", text=body), overflow="truncate")
    assert len(cut.texts) == 1 and cut.texts[0].endswith("https://ex.org/x")


def test_escaped_html_and_bidi_overrides() -> None:
    body = html_to_body("Hello&lt;br&gt;world \u202eevil\u202c", TextStyle()).text
    assert body == "Hello\nworld evil"


_URL = st.from_regex(r"\Ahttps://[a-z]{1,8}\.org/[a-z0-9/]{0,40}\Z")
_WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


def _urls(text: str) -> set[str]:
    return set(re.findall(r"https://[a-z]+\.org/[a-z0-9/]*", text))


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.one_of(_WORDS, _URL), max_size=12), limit=st.integers(1, 400))
def test_truncate_and_split_never_cut_a_url(parts: list[str], limit: int) -> None:
    text = " ".join(parts)
    whole = _urls(text)
    cut = truncate(text, limit)
    assert utf16_len(cut) <= limit
    assert _urls(cut) <= whole  # every URL left is one of the text's, whole
    if limit >= 70:  # room for the longest URL and the (n/m) mark
        for part in split_text(text, limit):
            assert utf16_len(part) <= limit
            assert _urls(part) <= whole


@settings(max_examples=200, deadline=None)
@given(text=_WORDS)
def test_neutralised_text_never_formats(text: str) -> None:
    assert all(style is None for _, style in segments(neutralise(text)))


@settings(max_examples=100, deadline=None)
@given(body=st.lists(st.one_of(_WORDS, _URL), max_size=20), cap=st.integers(80, 400))
def test_max_length_posts_fit_with_the_link_whole(body: list[str], cap: int) -> None:
    link = "https://example.org/the/item"
    posts = render_posts(item(html="", text=" ".join(body), link=link), max_length=cap)
    (text,) = posts.texts
    assert utf16_len(text) <= cap
    assert text.endswith(link)
