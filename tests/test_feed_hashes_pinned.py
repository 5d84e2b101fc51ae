"""The items a feed yields stay exactly what they were (issue 14: the feed
parser was made cheaper). Their keys and content hashes are what a state
remembers: a change would make every item of every feed look new, or
changed. The values below were computed with the parser before it was
sped up."""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.adapters.sources.feed import parse_feed

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
CORPUS = Path(__file__).parent / "data" / "feeds"
BENCH = Path(__file__).parent.parent / "bench"

#: What the whole-item digest covers.
FIELDS = (
    "source",
    "key",
    "title",
    "html",
    "text",
    "link",
    "author",
    "published",
    "categories",
    "media",
    "content_hash",
)
#: file → (sha256 of "key content_hash" lines, sha256 of every item's fields)
PINNED = {
    "netnewswire/atp.rss": (
        "dd20a7cc2c5959a6d7d1989e7b2434878d5f8e8436b1bfc36a4e6f33674bf0c4",
        "fdbd2024474b02d44b608594ef832ceb11e03ffe47fcf3d170f4cd331a9f6b80",
    ),
    "netnewswire/dcrainmaker.xml": (
        "ebf2d8137cd40c442b08c418a6ba8b79bb65f649b1fc5e2553498029212d2aa1",
        "b2012eba5dc71c279d0383b2bed0a5b8826f4fb4201c1ce5a073c7dbff8707f6",
    ),
    "netnewswire/russcox.atom": (
        "75f8001d6f3c18bf6f11d95920d4fa427cb52e952fa74f5ce6a3ff14d8735c70",
        "dec6c0ce441d334d4ea14615705466369944ff1103e400684397d12232420751",
    ),
    "netnewswire/kc0011.rss": (
        "671dc2fb12750a4c7ee30b40037c389c2bdcae40071d4d7adc6c2246535ae1c7",
        "f02a51ae2ded69f8dbd83d11a038b550d5176fc227ada7b046b1946c9a0458bf",
    ),
    "netnewswire/allthis.atom": (
        "d3ae077e782e6a84eae80083344be92f96c3b8d7eba6693927c15e1d13ab9183",
        "f4ca130f15c072b4dff8554adcb5349e36b6934dcb370f29b19f945e933cfb3d",
    ),
    "miniflux/parser/encoding_ISO-8859-1.xml": (
        "59e2c37f6b5723037ac3e987675f4dd1b1baf117dfb40862765932c66db16952",
        "ce3506523cdba5529240a96413b9fb514fc60bc109e7189c1792ebf464beb240",
    ),
    "feedparser-wellformed/sanitize/large_atom_feed_that_needs_css_sanitisation.xml": (
        "e0f7fd99fe4fef6c4676b74ccfafd61dd7a6a177130835ee57c52d6349a47977",
        "ef8bd51e71cc4fcac7f85e3457b7eedec511772ddac51f0f00f1a52273895161",
    ),
}
#: The benchmark's generated feed (bench/polls.py feed_body(7)).
PINNED_BENCH = (
    "9eff9fef7a0b6771408d832966e77be2688bc9b8f92b9aa971b30de55f3ce59f",
    "e8f5d9ec882ce6473af17ac3367e155b6aae28b1f17a19842a2ac995177a50b9",
)


def _digests(body: bytes, url: str) -> tuple[str, str]:
    parsed = parse_feed(body, {}, url, "s", NOW)
    keys = "\n".join(f"{item.key} {item.content_hash}" for item in parsed.items)
    whole = repr([tuple(getattr(item, name) for name in FIELDS) for item in parsed.items]) + repr(
        parsed.warnings
    )
    return (
        hashlib.sha256(keys.encode()).hexdigest(),
        hashlib.sha256(whole.encode()).hexdigest(),
    )


@pytest.mark.parametrize("name", sorted(PINNED))
def test_corpus_items_are_unchanged(name: str) -> None:
    body = (CORPUS / name).read_bytes()
    keys, whole = _digests(body, f"https://example.org/feeds/{name}")
    assert (keys, whole) == PINNED[name]


def test_the_benchmarks_items_are_unchanged() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from polls import feed_body  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    assert _digests(feed_body(7), "http://127.0.0.1:8000/feed/7") == PINNED_BENCH
