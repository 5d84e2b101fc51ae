"""Relative links in an entry's HTML are resolved against the document URL
once; a body whose links are all absolute is not parsed a second time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import feedparser.urls
import pytest

from publisher.adapters.sources import feed

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def _rss(description: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
        "<item><title>One</title><link>https://example.org/1</link><guid>one</guid>"
        f"<description><![CDATA[{description}]]></description></item></channel></rss>"
    ).encode()


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    resolve = feedparser.urls.resolve_relative_uris

    def counting(html: str, *args: Any) -> Any:
        calls.append(html)
        return resolve(html, *args)

    # feed.py imports it where it resolves: the module's own name is what it calls
    monkeypatch.setattr(feedparser.urls, "resolve_relative_uris", counting)
    return calls


@pytest.mark.parametrize(
    "body",
    [
        '<p><a href="https://example.org/a">a</a> <img src="http://example.org/i.png"></p>',
        "<p>no links at all</p>",
        '<p><a href="mailto:me@example.org">mail</a></p>',
    ],
)
def test_absolute_links_are_not_resolved_again(passes: list[str], body: str) -> None:
    parsed = feed.parse_feed(_rss(body), {}, "https://example.org/feed.xml", "blog", NOW)
    assert passes == []
    assert parsed.items[0].html


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('<p><a href="/a">a</a></p>', 'href="https://example.org/a"'),
        ("<p><img src='pic.png'></p>", 'src="https://example.org/blog/pic.png"'),
        ('<p><a href="//cdn.example.net/x">x</a></p>', 'href="https://cdn.example.net/x"'),
        ('<p><a HREF = "b">b</a></p>', 'href="https://example.org/blog/b"'),
    ],
)
def test_relative_links_are_resolved(passes: list[str], body: str, expected: str) -> None:
    parsed = feed.parse_feed(_rss(body), {}, "https://example.org/blog/feed.xml", "blog", NOW)
    assert len(passes) == 1
    assert expected in parsed.items[0].html
