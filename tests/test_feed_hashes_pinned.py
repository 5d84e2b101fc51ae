"""The items a feed yields stay what they were (issue 14: the feed parser
was made cheaper). Their keys are what a state remembers: a change would
make every item of a feed look new. The keys below were computed with the
parser before it was sped up, and before feedparser's sanitiser was left
out; the whole items (bodies as the feed gave them, content hashes marked
``raw:``) since then. A state's hashes of the old kind are not compared: see
``test_a_stored_hash_of_the_old_kind_is_replaced_not_taken_for_an_edit``."""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.adapters.sources.feed import looks_like_json, parse_feed
from publisher.core.errors import SourceError

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
#: file → (sha256 of its items' keys, one a line: as before the sanitiser was
#: left out; sha256 of every item's fields: since)
PINNED = {
    "feedparser-wellformed/sanitize/large_atom_feed_that_needs_css_sanitisation.xml": (
        "974575aec11945905ee929d982b45d1cb3bd2af408cce8f9eb61b5fc1dcd1d51",
        "8b2b0c0416cee23c35fe5cd3db1a9af7e4ecda06526c518b8875f26eab23c397",
    ),
    "miniflux/parser/encoding_ISO-8859-1.xml": (
        "99a72b6c4a0477626f415dee5154a40d8238797b512d3ba5be25a37ac18ecfc6",
        "83f15faccd974bed8fb87cde1ed23afdd6f2cbb461534ecc15e3da8fcdaafa84",
    ),
    "netnewswire/allthis.atom": (
        "01552b5ce4fb530f4857a1ae3a78405a3edf222021cfd9f100fec2f45326ffaa",
        "ce1d5125aa0d0280cc7c5d94434aaddb4542d246aefa50fa01140c9e6a2b8854",
    ),
    "netnewswire/atp.rss": (
        "f3aa81cad60498b0cfc40b76e828a9fa00f94c8916f3cdb7dbdf7cd145bd2f07",
        "117f24e2a4451d40e7694a16fea9e4e2b076fd2415b88dcab99734fe4311f3ab",
    ),
    "netnewswire/dcrainmaker.xml": (
        "a92dac1ccf703ac6fd08b1d454c3bb375881dd124a957f42c6110a720b31fae2",
        "fbbd9799c97d256a564efe292c96087785579a38cc7df7dd0c9b3cd83a72b09b",
    ),
    "netnewswire/kc0011.rss": (
        "80ec0df9d563a6378addec6d74adeaa41ea9865487a58388ae5816708b92deba",
        "b6813cc260d8fc09c2cfc1e906bf6d658a89da18d6614ae9af5d43bb51e6e601",
    ),
    "netnewswire/russcox.atom": (
        "6b1a0d555321942d04e98d3f6db43f2ac2336d11cd89a4a90e64a395d7a9dc8a",
        "2f8f8e248dfcad0442ba9bb81c4dd0546d7a47d80d2420653ef084733352a3be",
    ),
}
#: The benchmark's generated feed (bench/polls.py feed_body(7)).
PINNED_BENCH = (
    "46b30e45d123ee5507ab7d9e48c7480f39c2177ce1dc50200c113dacef306cad",
    "a405a55bece2c719419f5a68e69920be57a10e60634b9ca8e9f08adcef7923ad",
)


def _digests(body: bytes, url: str) -> tuple[str, str]:
    parsed = parse_feed(body, {}, url, "s", NOW)
    keys = "\n".join(item.key for item in parsed.items)
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


#: sha256 of "file key" lines of every item of every RSS/Atom/RDF document in
#: tests/data/feeds (1,230 items), computed before the sanitiser was left out.
#: Among them are items keyed by a hash of their body (no id, no link), which
#: are still made from the sanitised body.
ALL_KEYS = "135cdc68667baef0afeab9aae21f23e47dfdbcfe05f6b6c5e44ddbca595b3feb"


def test_no_key_of_any_corpus_item_changed() -> None:
    digest = hashlib.sha256()
    count = 0
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
        if path.suffix in (".md", ".json"):
            continue
        body = path.read_bytes()
        if looks_like_json(body):
            continue
        name = path.relative_to(CORPUS)
        try:
            items = parse_feed(body, {}, f"https://example.org/feeds/{name}", "s", NOW).items
        except SourceError:
            continue
        for item in items:
            digest.update(f"{name} {item.key}\n".encode())
            count += 1
    assert (count, digest.hexdigest()) == (1230, ALL_KEYS)
