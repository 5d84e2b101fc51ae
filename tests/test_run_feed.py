"""Acceptance: a feed served from 127.0.0.1 becomes exactly one post per new
item, once, across restarts (the real CLI, the stand-in channel, a real
SQLite file)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import helpers
import pytest
from helpers import STANDIN_TOKEN, posted_texts, posted_titles, run_once

from publisher.adapters.httpserver import HTTPServer
from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn
from publisher.config import load_config
from publisher.service.runner import Service

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Entry:
    guid: str
    title: str
    link: str
    body: str
    published: datetime


@dataclass
class FeedSite:
    """An RSS feed whose entries the test changes; served on 127.0.0.1."""

    entries: list[Entry] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int, body: str = "") -> Entry:
        entry = Entry(
            guid=f"urn:item:{n}",
            title=f"Item {n}",
            link=f"https://example.org/posts/{n}",
            body=body or f"Body of item {n}.",
            published=BASE + timedelta(hours=n),
        )
        with self.lock:
            self.entries.append(entry)
        return entry

    def document(self) -> bytes:
        with self.lock:
            newest_first = sorted(self.entries, key=lambda e: e.published, reverse=True)
        items = "".join(
            f"<item><title>{escape(e.title)}</title><link>{escape(e.link)}</link>"
            f'<guid isPermaLink="false">{escape(e.guid)}</guid>'
            f"<description>{escape(e.body)}</description>"
            f"<pubDate>{format_datetime(e.published)}</pubDate></item>"
            for e in newest_first
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Test feed</title><link>https://example.org/</link>{items}"
            "</channel></rss>"
        ).encode()

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = self.document()
        start_response(
            "200 OK",
            [("Content-Type", "application/rss+xml"), ("Content-Length", str(len(body)))],
        )
        return [body]


@pytest.fixture
def feed() -> Iterator[FeedSite]:
    site = FeedSite()
    with HTTPServer(site.app) as server:
        site.url = server.url + "/feed.xml"
        yield site


def write_config(tmp_path: Path, standin: ViberStandIn, sources: str) -> Path:
    return helpers.write_config(tmp_path, standin.api_url, rest=sources)


def feed_source(name: str, url: str, **extra: str | int) -> str:
    lines = [f'[[sources]]\nname = "{name}"\ntype = "rss"\nurl = "{url}"']
    for key, value in extra.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def test_backfill_posts_newest_then_only_new_items_across_restarts(
    tmp_path: Path, standin: ViberStandIn, feed: FeedSite
) -> None:
    for n in range(1, 6):
        feed.add(n)
    config = write_config(tmp_path, standin, feed_source("news", feed.url, backfill=3))

    run_once(config)
    assert posted_titles(standin) == ["Item 3", "Item 4", "Item 5"]  # the newest 3, oldest first
    assert all(post.payload["type"] == "text" for post in standin.posts)
    assert "https://example.org/posts/3" in posted_texts(standin)[0]

    run_once(config)  # a restart with nothing new
    assert len(standin.posts) == 3

    feed.add(6)
    feed.add(7)
    run_once(config)
    assert posted_titles(standin) == ["Item 3", "Item 4", "Item 5", "Item 6", "Item 7"]

    run_once(config)
    run_once(config)
    assert len(standin.posts) == 5

    with Store.open(tmp_path / "state.sqlite3") as store:
        state = store.get_source("news")
        assert state.last_error is None
        assert state.first_poll_done
        outcomes = {n: store.seen("news", f"id:urn:item:{n}") for n in range(1, 8)}
        assert {n: s.outcome for n, s in outcomes.items() if s is not None} == {
            1: "backfill-skipped",
            2: "backfill-skipped",
            3: "queued",
            4: "queued",
            5: "queued",
            6: "queued",
            7: "queued",
        }


def test_a_changed_guid_for_the_same_link_is_a_new_item(
    tmp_path: Path, standin: ViberStandIn, feed: FeedSite
) -> None:
    """Dedup is by guid when the feed gives one: a feed that re-issues an item
    under a new guid (same link) gets it posted again. Documented behaviour:
    the guid is the publisher's word for "this is a different item"."""
    entry = feed.add(1)
    config = write_config(tmp_path, standin, feed_source("news", feed.url, backfill=5))
    run_once(config)
    assert posted_titles(standin) == ["Item 1"]

    entry.guid = "urn:item:1:v2"
    run_once(config)
    assert posted_titles(standin) == ["Item 1", "Item 1"]

    run_once(config)  # and the new guid is then stable: no third post
    assert len(standin.posts) == 2


def test_on_update_repost_reposts_an_edited_item_and_ignore_does_not(
    tmp_path: Path, standin: ViberStandIn, feed: FeedSite
) -> None:
    entry = feed.add(1, body="The first version.")
    sources = feed_source("plain", feed.url, backfill=5) + feed_source(
        "edits", feed.url, backfill=5, on_update="repost"
    )
    config = write_config(tmp_path, standin, sources)
    run_once(config)
    assert len(standin.posts) == 2
    assert all("The first version." in text for text in posted_texts(standin))

    entry.body = "The corrected version."
    run_once(config)
    assert len(standin.posts) == 3
    assert "The corrected version." in posted_texts(standin)[2]

    run_once(config)  # the edit is posted once, not on every poll
    assert len(standin.posts) == 3

    with Store.open(tmp_path / "state.sqlite3") as store:
        by_source = [row.source for row in store.recent_posts(limit=10)]
    assert sorted(by_source) == ["edits", "edits", "plain"]


def test_a_stored_hash_of_the_old_kind_is_replaced_not_taken_for_an_edit(
    tmp_path: Path, standin: ViberStandIn, feed: FeedSite
) -> None:
    """A state from before bodies were hashed as the feed gave them (its
    hashes were made over the sanitised body, without the ``raw:`` mark):
    the first poll stores the new hash and reposts nothing; a real edit
    after that is noticed as before."""
    entry = feed.add(1, body="The first version.")
    config = write_config(
        tmp_path, standin, feed_source("edits", feed.url, backfill=5, on_update="repost")
    )
    run_once(config)
    assert len(standin.posts) == 1
    with Store.open(tmp_path / "state.sqlite3") as store:
        fresh = store.seen("edits", "id:urn:item:1")
        assert fresh is not None and fresh.content_hash.startswith("raw:")
        with store.db.write() as db:  # as an older version left it
            db.execute("UPDATE seen SET content_hash = ?", ("0" * 64,))

    feed.add(2)  # the feed changes: it is read again
    run_once(config)
    assert posted_titles(standin) == ["Item 1", "Item 2"]  # item 1 not taken for an edit
    with Store.open(tmp_path / "state.sqlite3") as store:
        stored = store.seen("edits", "id:urn:item:1")
        assert stored is not None and stored.content_hash == fresh.content_hash

    entry.body = "The corrected version."
    run_once(config)
    assert posted_titles(standin) == ["Item 1", "Item 2", "Item 1"]
    assert "The corrected version." in posted_texts(standin)[2]


def test_remember_forgets_keys_gone_from_the_feed_and_keeps_the_rest(
    tmp_path: Path, standin: ViberStandIn, feed: FeedSite
) -> None:
    """Keys still in the feed are touched on every poll; keys gone from it
    are forgotten once older than ``remember``; an item that comes back
    after that is new again."""
    old = feed.add(1)
    feed.add(2)
    config_path = write_config(
        tmp_path, standin, feed_source("news", feed.url, backfill=5, remember="2d")
    )
    config = load_config(config_path)
    now = [BASE]
    service = Service(config, token=STANDIN_TOKEN, clock=lambda: now[0], serve=False)
    try:
        source = config.source("news")
        assert service.poll_source(source).queued == 2

        feed.entries.remove(old)
        feed.add(3)
        now[0] = BASE + timedelta(days=1)
        assert service.poll_source(source).queued == 1
        # one day later: the gone item is still remembered
        assert service.store.seen("news", "id:urn:item:1") is not None

        feed.add(4)
        now[0] = BASE + timedelta(days=3)
        assert service.poll_source(source).queued == 1
        assert service.store.seen("news", "id:urn:item:1") is None  # forgotten
        # first seen three days ago, but still in the feed: remembered
        assert service.store.seen("news", "id:urn:item:2") is not None

        feed.entries.append(old)  # it comes back after it was forgotten
        now[0] = BASE + timedelta(days=3, hours=1)
        outcome = service.poll_source(source)
        assert outcome.ok, outcome.error
        assert outcome.queued == 1
    finally:
        service.close()
