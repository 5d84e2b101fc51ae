"""Hostile documents, made here: absurd nesting, huge numbers, fields of the
wrong type. Each is refused (the document or the one item) with a reason,
never a traceback, and the other items are kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from publisher.adapters.sources.feed import parse_feed
from publisher.core.errors import SourceError
from publisher.core.render.html import MAX_DEPTH, html_to_body, html_to_text, nesting_depth
from publisher.core.render.style import TextStyle

NOW = datetime(2025, 1, 1, tzinfo=UTC)
DEEP = "<div>" * 100_000 + "deep text" + "</div>" * 100_000
UNCLOSED = "<span>" * 100_000 + "deep text"


def parse(body: bytes) -> tuple[list[str], list[str]]:
    parsed = parse_feed(body, {}, "https://example.org/feed", "s", NOW)
    return [item.title for item in parsed.items], parsed.warnings


@pytest.mark.parametrize("markup", [DEEP, UNCLOSED])
def test_renderers_flatten_absurd_nesting(markup: str) -> None:
    assert nesting_depth(markup) > MAX_DEPTH
    assert html_to_text(markup) == "deep text"
    body = html_to_body(markup, TextStyle())
    assert body.text == "deep text"
    assert any("nested more than" in note for note in body.notes)


@pytest.mark.parametrize(
    ("markup", "depth"),
    [("plain", 0), ("<p>a<p>b<br><img src=x>", 2), ("<ul><li><b>x</b></li></ul>", 3)],
)
def test_nesting_depth_of_ordinary_html(markup: str, depth: int) -> None:
    assert nesting_depth(markup) == depth


def rss(description: str) -> bytes:
    return (
        '<rss version="2.0"><channel><title>T</title>'
        f"<item><title>deep</title><link>https://example.org/1</link>"
        f"<description><![CDATA[{description}]]></description></item>"
        "<item><title>fine</title><link>https://example.org/2</link></item>"
        "</channel></rss>"
    ).encode()


def test_rss_item_with_absurd_nesting_is_skipped_with_a_reason() -> None:
    titles, warnings = parse(rss(DEEP))
    assert titles == ["fine"]
    assert any("entry 1: skipped, its HTML nests more than" in w for w in warnings)


def test_deeply_nested_xml_is_read_or_refused_without_a_traceback() -> None:
    body = (
        '<rss version="2.0"><channel><title>T</title>'
        + "<x>" * 100_000
        + "</x>" * 100_000
        + "<item><title>fine</title><link>https://example.org/2</link></item></channel></rss>"
    ).encode()
    try:
        titles, _ = parse(body)
    except SourceError as exc:
        assert "\n" not in str(exc)
    else:
        assert titles == ["fine"]


def jsonfeed(*items: object) -> bytes:
    return json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": list(items)}
    ).encode()


FINE = {"id": "2", "title": "fine", "url": "https://example.org/2"}


def test_json_feed_with_a_5000_digit_number() -> None:
    huge = "9" * 5000
    body = jsonfeed({"id": "1", "title": "huge", "url": "https://example.org/1"}, FINE)
    body = body.replace(b'"id": "1"', f'"id": {huge}'.encode())
    titles, warnings = parse(body)
    assert titles == ["fine"]
    assert any("item 1: skipped, 'id' is a number of more than 100 digits" in w for w in warnings)


def test_json_feed_huge_number_in_an_unused_field_is_harmless() -> None:
    body = jsonfeed({**FINE, "_ext": {"n": 1}}).replace(b'"n": 1', b'"n": ' + b"7" * 5000)
    assert parse(body)[0] == ["fine"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("title", 5, "'title' is a number, not a string"),
        ("content_html", ["x"], "'content_html' is a list, not a string"),
        ("url", {"a": 1}, "'url' is an object, not a string"),
        ("date_published", 1700000000, "'date_published' is a number, not a string"),
        ("attachments", "x.jpg", "'attachments' is a string, not a list"),
        ("tags", "news", "'tags' is a string, not a list"),
        ("author", "me", "'author' is a string, not an object"),
        ("id", True, "'id' is true/false, not a string"),
        ("image", 3, "'image' is a number, not a string"),
    ],
)
def test_json_feed_wrong_typed_field_skips_the_item(field: str, value: object, reason: str) -> None:
    titles, warnings = parse(jsonfeed({"id": "1", "title": "bad", field: value}, FINE))
    assert titles == ["fine"]
    assert f"item 1: skipped, {reason}" in warnings


def test_json_feed_numeric_id_is_still_read() -> None:
    assert parse(jsonfeed({**FINE, "id": 42}))[0] == ["fine"]


def test_json_feed_item_with_absurd_nesting_is_skipped() -> None:
    titles, warnings = parse(jsonfeed({"id": "1", "content_html": DEEP}, FINE))
    assert titles == ["fine"]
    assert any("item 1: skipped, its HTML nests more than" in w for w in warnings)


def test_deeply_nested_json_is_refused_with_a_reason() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [' + b"[" * 100_000
    body += b"]" * 100_000 + b"]}"
    with pytest.raises(SourceError, match=r"nested too deeply.*tell the site's owner") as info:
        parse(body)
    assert "\n" not in str(info.value)
