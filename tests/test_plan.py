"""The pure planning helpers, by tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from publisher.core.identity import item_key, normalise_link
from publisher.core.items import Item
from publisher.core.plan import matches_filters, select_backfill


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM/Path", "http://example.com/Path"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a?", "https://example.com/a"),
        ("https://example.com/a#section", "https://example.com/a"),
        ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
        ("https://example.com/a?id=3&utm_campaign=x&b=2", "https://example.com/a?id=3&b=2"),
        ("https://example.com/a?fbclid=1&gclid=2&mc_cid=3&mc_eid=4", "https://example.com/a"),
        ("https://example.com/a?UTM_Source=x&q=a%20b", "https://example.com/a?q=a%20b"),
        ("https://example.com/a?z=1&a=2", "https://example.com/a?z=1&a=2"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("not a url#frag", "not a url"),
        ("https://example.com:notaport/", "https://example.com:notaport/"),
    ],
)
def test_normalise_link(url: str, expected: str) -> None:
    assert normalise_link(url) == expected


@pytest.mark.parametrize(
    ("guid", "link", "title", "body", "expected"),
    [
        ("abc", "https://x/1", "t", "b", "id:abc"),
        ("  abc  ", None, None, None, "id:abc"),
        ("", "https://X/1?utm_source=a", "t", "b", "link:https://x/1"),
        ("null", "https://x/1", "t", "b", "link:https://x/1"),
        (None, "  ", "t", "b", None),
        (None, None, "t", "b", None),
    ],
)
def test_item_key(
    guid: str | None, link: str | None, title: str, body: str, expected: str | None
) -> None:
    key = item_key(guid, link, title, body)
    if expected is None:
        assert key.startswith("hash:") and len(key) == 45
        assert key == item_key(None, None, title, body)
        assert key != item_key(None, None, title, body + "!")
    else:
        assert key == expected


ITEM = Item(
    source="s",
    key="k",
    title="Python 3.13 released",
    html="<p>The <b>new</b> JIT is here. C++ fans rejoice.</p>",
    categories=("Release Notes",),
)


@pytest.mark.parametrize(
    ("include", "exclude", "passes"),
    [
        ((), (), True),
        (("python",), (), True),
        (("PYTHON",), (), True),
        (("pyth",), (), False),  # word boundaries
        (("jit",), (), True),  # in the body, tags stripped
        (("new JIT",), (), True),  # a phrase across a tag
        (("release notes",), (), True),  # categories
        (("c++",), (), True),
        (("rust", "python"), (), True),  # any include
        (("rust",), (), False),
        ((), ("rust",), True),
        ((), ("jit",), False),
        (("python",), ("released",), False),
        (("re:3\\.1[0-9]",), (), True),
        (("re:^python",), (), True),
        (("re:java(script)?",), (), False),
        (("re:[unclosed",), (), False),  # a bad regex never matches
        ((), ("re:[unclosed",), True),
    ],
)
def test_matches_filters(include: tuple[str, ...], exclude: tuple[str, ...], passes: bool) -> None:
    decision = matches_filters(ITEM, include, exclude)
    if passes:
        assert decision is None
    else:
        assert decision is not None and decision.code == "filtered" and decision.detail


def test_filter_decision_names_the_pattern() -> None:
    decision = matches_filters(ITEM, (), ("jit",))
    assert decision is not None and "'jit'" in decision.detail


def _item(key: str, day: int | None) -> Item:
    published = None if day is None else datetime(2026, 1, day, tzinfo=UTC)
    return Item(source="s", key=key, published=published)


@pytest.mark.parametrize(
    ("days", "n", "queued", "seen"),
    [
        # feed order newest first, dated
        ([5, 4, 3, 2, 1], 2, ["b", "a"], ["c", "d", "e"]),
        # dates out of order in the feed
        ([1, 5, 3], 2, ["c", "b"], ["a"]),
        # no dates: feed order (first = newest), output oldest first
        ([None, None, None], 2, ["b", "a"], ["c"]),
        # mixed: dated rank before undated (in feed order); queue reversed
        ([None, 3, None, 4], 3, ["a", "b", "d"], ["c"]),
        ([1, 2], 0, [], ["a", "b"]),
        ([1, 2], 10, ["a", "b"], []),
        ([], 3, [], []),
    ],
)
def test_select_backfill(
    days: list[int | None], n: int, queued: list[str], seen: list[str]
) -> None:
    items = [_item(chr(ord("a") + i), day) for i, day in enumerate(days)]
    to_queue, to_mark_seen = select_backfill(items, n)
    assert [i.key for i in to_queue] == queued
    assert [i.key for i in to_mark_seen] == seen


def test_backfill_queue_is_oldest_first() -> None:
    items = [_item(str(day), day) for day in (9, 2, 7, 4)]
    to_queue, _ = select_backfill(items, 3)
    assert [i.key for i in to_queue] == ["4", "7", "9"]
