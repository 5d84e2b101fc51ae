"""Post text and captions from items (publisher.core.render.post)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.core.identity import strip_tracking
from publisher.core.items import Item
from publisher.core.render.post import (
    format_published,
    render_caption,
    render_posts,
    render_text,
)
from publisher.core.render.text import utf16_len

LINK = "https://example.org/news/2024/05/01/cafe-opens?utm=feed&id=42"


def make(**fields: object) -> Item:
    values: dict[str, object] = {"source": "news", "key": "k1"}
    values.update(fields)
    return Item(**values)  # type: ignore[arg-type]


def long_article(paragraphs: int = 60) -> str:
    """An HTML article of well over 10,000 characters, with the usual feed junk."""
    body = "".join(
        f"<p>Paragraph {n}: the council met on Tuesday &amp; agreed the plan. "
        f"Residents said the caf&eacute; would bring life back to the street. "
        f"Work starts in spring and should be finished within a year, officials said.</p>"
        for n in range(1, paragraphs + 1)
    )
    return (
        "<h1>Caf&eacute; opens</h1>"
        "<script>track()</script>"
        f'{body}<img src="https://pixel.example.com/p.gif" width="1" height="1">'
    )


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(make(title="T", text="Body", link=LINK), f"T\n\nBody\n\n{LINK}", id="all"),
        pytest.param(make(text="Body", link=LINK), f"Body\n\n{LINK}", id="no-title"),
        pytest.param(make(title="T", text="Body"), "T\n\nBody", id="no-link"),
        pytest.param(make(title="T", link=LINK), f"T\n\n{LINK}", id="no-body"),
        pytest.param(make(title="Only"), "Only", id="title-only"),
        pytest.param(make(), "", id="nothing"),
        pytest.param(
            make(title="Big news", html="<p>Big  news: the cafe opens.</p>", link=LINK),
            f"Big news: the cafe opens.\n\n{LINK}",
            id="title-repeated-by-body",
        ),
        pytest.param(
            make(title="Caf&eacute; <b>opens</b>", html="<p>x</p>"),
            "Café opens\n\nx",
            id="title-cleaned",
        ),
        pytest.param(
            make(html="<p><img src='https://e.org/a.jpg'></p>", text="fallback text"),
            "fallback text",
            id="html-without-text-falls-back",
        ),
        pytest.param(
            make(text="line 1\r\nline 2\n\n\n\nline 3", link=f"  {LINK} "),
            f"line 1\nline 2\n\nline 3\n\n{LINK}",
            id="plain-text-kept",
        ),
    ],
)
def test_default_layout(item: Item, expected: str) -> None:
    rendered = render_text(item)
    assert rendered.text == expected
    assert rendered.decisions == ()


def test_template_fields() -> None:
    item = make(
        title="T",
        html="<p>Body &amp; more</p>",
        link=LINK,
        author="  Ann   Lee ",
        published=datetime(2024, 5, 1, 16, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    template = "{source}: {title} by {author}, {published}\n{summary}\n\n\n\n{text}\n{link}"
    assert render_text(item, template).text == (
        f"news: T by Ann Lee, 2024-05-01 14:00 UTC\nBody & more\n\nBody & more\n{LINK}"
    )


def test_template_empty_parts_leave_no_blank_runs() -> None:
    item = make(title="T", link=LINK)
    assert render_text(item, "{title}\n\n{author}\n\n{text}\n\n{link}").text == f"T\n\n{LINK}"


def test_bad_template_falls_back_to_default() -> None:
    rendered = render_text(make(title="T", text="B"), "{nope} {title}")
    assert rendered.text == "T\n\nB"
    assert [d.code for d in rendered.decisions] == ["fallback"]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (datetime(2024, 5, 1, 14, 0, tzinfo=UTC), "2024-05-01 14:00 UTC"),
        (
            datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-3))),
            "2024-05-02 02:30 UTC",
        ),
        (datetime(2024, 5, 1, 14, 0), "2024-05-01 14:00 UTC"),
        (None, ""),
    ],
)
def test_format_published(when: datetime | None, expected: str) -> None:
    assert format_published(when) == expected


def test_long_article_fits_with_link_intact() -> None:
    html = long_article()
    assert len(html) > 10_000
    rendered = render_text(make(title="Café opens today", html=html, link=LINK))
    assert utf16_len(rendered.text) <= 7000
    assert rendered.text.endswith(f"…\n\n{LINK}")
    assert rendered.text.startswith("Café opens today\n\nCafé opens\n\nParagraph 1: the council")
    assert "track()" not in rendered.text and "&amp;" not in rendered.text
    # cut at a sentence end, using most of the room
    assert (
        rendered.text.endswith(f"said. …\n\n{LINK}")
        or rendered.text.endswith(f"plan. …\n\n{LINK}")
        or rendered.text.endswith(f"street. …\n\n{LINK}")
    )
    assert utf16_len(rendered.text) > 6500
    [decision] = rendered.decisions
    assert decision.code == "truncated"
    assert decision.detail.startswith("text cut from ")
    assert decision.detail.endswith("to fit 7000")


def test_title_cut_when_body_cannot_fit() -> None:
    item = make(title="A rather long title for a tiny limit", text="Body " * 50, link=LINK)
    limit = utf16_len(LINK) + 20
    rendered = render_text(item, limit=limit)
    assert utf16_len(rendered.text) <= limit
    assert rendered.text.endswith("\n\n" + LINK)
    assert rendered.text.startswith("A rather long…")
    details = [d.detail for d in rendered.decisions]
    assert details[0].startswith("text of ") and "left out" in details[0]
    assert details[1].startswith("title cut from ")


def test_link_longer_than_limit_is_cut_as_last_resort() -> None:
    rendered = render_text(make(title="T", link=LINK), limit=20)
    assert utf16_len(rendered.text) <= 20
    assert "link" in rendered.decisions[-1].detail


def test_astral_text_counts_utf16() -> None:
    rendered = render_text(make(text="😀" * 100, link=LINK), limit=120)
    assert utf16_len(rendered.text) <= 120
    assert len(rendered.text) < 120 // 2 + len(LINK)  # code points: emoji count double
    assert rendered.text.endswith(LINK)


# --------------------------------------------------------------------------
# Captions


def test_caption_short_text_is_the_caption() -> None:
    result = render_caption(make(title="T", text="Short body", link=LINK))
    assert result.caption == f"T\n\nShort body\n\n{LINK}"
    assert result.follow_up == ()
    assert result.decisions == ()


def test_caption_split_with_title() -> None:
    item = make(title="Café opens today", html=long_article(), link=LINK)
    result = render_caption(item, None, "split")
    assert result.caption == f"Café opens today\n\n{LINK}"
    # the whole text follows, split as a text post's is: nothing is cut
    assert result.follow_up == render_posts(item).texts
    first, second = result.follow_up
    assert first.startswith("(1/2) Café opens today") and second.startswith("(2/2) ")
    assert all(utf16_len(text) <= 7000 for text in result.follow_up)
    assert second.endswith(LINK) and "Paragraph 40:" in second
    assert [d.code for d in result.decisions] == ["split", "split"]
    assert "follows as 2 text posts" in result.decisions[0].detail


def test_caption_split_without_title_starts_the_text() -> None:
    item = make(html=long_article(5), link=LINK)
    result = render_caption(item, None, "split")
    assert utf16_len(result.caption) <= 768
    assert result.caption.startswith("Café opens\n\nParagraph 1")
    assert result.caption.endswith(f"…\n\n{LINK}")
    assert result.follow_up == (render_text(item).text,)
    assert result.decisions[0].code == "split"


def test_caption_truncate_single_caption() -> None:
    item = make(title="Café opens today", html=long_article(5), link=LINK)
    result = render_caption(item, None, "truncate")
    assert result.follow_up == ()
    assert utf16_len(result.caption) <= 768
    assert result.caption.startswith("Café opens today\n\n")
    assert result.caption.endswith(f"…\n\n{LINK}")
    assert [d.code for d in result.decisions] == ["truncated"]


def test_caption_empty_item() -> None:
    assert render_caption(make()).caption == ""


def test_caption_rejects_unknown_overflow() -> None:
    with pytest.raises(ValueError, match="overflow"):
        render_caption(make(), overflow="drop")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Properties

ATOMS = [
    "👨\u200d👩\u200d👧\u200d👦", "🇺🇦", "e\u0301", "😀", "𝔘", "&amp;", "&#8217;", " ", "\n",
    ". ", "word", "<p>", "</p>", "<br>", "<b>", "<li>", "<script>x</script>", "Ü", "한국",
]  # fmt: skip
fragments = st.lists(st.one_of(st.sampled_from(ATOMS), st.text(max_size=6)), max_size=30).map(
    "".join
)
links = st.one_of(
    st.none(),
    st.text(alphabet="abcdefghij/-_?=&%", max_size=120).map(lambda s: "https://e.org/" + s),
)


@settings(max_examples=120, deadline=None)
@given(
    title=fragments,
    body=fragments,
    as_html=st.booleans(),
    link=links,
    limit=st.integers(min_value=1, max_value=300),
    template=st.sampled_from([None, "{title}\n{text}\n{link}", "{link}\n\n{summary} ({source})"]),
)
def test_render_text_properties(
    title: str, body: str, as_html: bool, link: str | None, limit: int, template: str | None
) -> None:
    item = make(title=title, link=link, **({"html": body} if as_html else {"text": body}))
    rendered = render_text(item, template, limit=limit)
    assert utf16_len(rendered.text) <= limit
    rendered.text.encode("utf-16-le")
    posted = strip_tracking(link) if link else None
    if posted and utf16_len(posted) <= limit and template is None:
        assert posted in rendered.text


@settings(max_examples=60, deadline=None)
@given(title=fragments, body=fragments, link=links, overflow=st.sampled_from(["split", "truncate"]))
def test_render_caption_properties(title: str, body: str, link: str | None, overflow: str) -> None:
    item = make(title=title, html=body * 40, link=link)
    result = render_caption(item, None, overflow, caption_limit=200, text_limit=1000)  # type: ignore[arg-type]
    assert utf16_len(result.caption) <= 200
    # The posted link is the item's link without tracking parameters (and
    # without an empty query left behind): whole, wherever it goes.
    posted = strip_tracking(link) if link else None
    if posted:
        assert posted in result.caption
    if result.follow_up:
        assert overflow == "split"
        assert all(utf16_len(text) <= 1000 for text in result.follow_up)
        if posted:
            assert posted in result.follow_up[-1]
