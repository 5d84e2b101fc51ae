"""A poll's writes are one transaction (``store.batch``), taken after the
parsing; poll bookkeeping is not synced row by row, the outbox's
transitions are."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from helpers import feed_server, rss

from publisher.adapters.sqlite import Store
from publisher.config import parse_config
from publisher.core.items import Item, RenderedItem, RenderedMessage
from publisher.service.runner import Service

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def feed_url() -> Iterator[str]:
    with feed_server(rss(30)) as url:
        yield url


@pytest.fixture
def service(tmp_path: Path, feed_url: str) -> Iterator[Service]:
    config = parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [{"name": "blog", "type": "rss", "url": feed_url, "backfill": 3}],
        }
    )
    running = Service(config, clock=lambda: T0, serve=False)
    try:
        yield running
    finally:
        running.close()


def _statements(store: Store) -> tuple[list[str], Callable[[], None]]:
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    return seen, lambda: store.db.conn.set_trace_callback(None)


def test_a_first_poll_of_thirty_items_is_one_transaction(service: Service) -> None:
    store = service.parts.store
    assert isinstance(store, Store)
    statements, stop = _statements(store)
    try:
        outcome = service.poll_source(service.config.source("blog"))
    finally:
        stop()
    assert outcome.ok and outcome.queued == 3 and outcome.seen == 30
    commits = [s for s in statements if s.strip().upper() == "COMMIT"]
    assert len(commits) == 1, statements
    assert not any("synchronous = FULL" in s for s in statements)
    assert store.get_source("blog").first_poll_done


def test_the_store_lock_is_free_while_the_feed_is_parsed(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = service.parts.store.db.lock  # type: ignore[attr-defined]
    free: list[bool] = []
    parse = feedparser.parse

    def checking_parse(*args: Any, **kwargs: Any) -> Any:
        taken: list[bool] = []

        def other_thread() -> None:
            got = lock.acquire(blocking=False)
            taken.append(got)
            if got:
                lock.release()

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        free.extend(taken)
        return parse(*args, **kwargs)

    monkeypatch.setattr(feedparser, "parse", checking_parse)
    assert service.poll_source(service.config.source("blog")).ok
    assert free == [True]


def _item(key: str) -> Item:
    return Item(source="s", key=key, title=key, content_hash=key)


def _rendered(key: str) -> RenderedItem:
    return RenderedItem(_item(key), (RenderedMessage({"type": "text", "text": key}),))


def test_a_batch_commits_once_and_rolls_back_whole() -> None:
    with Store.open(":memory:") as store:
        with store.batch():
            store.queue_item(_rendered("a"), T0)
            store.mark_seen("s", "b", "h", T0, "filtered")
            assert store.seen("s", "a") is not None  # reads see the batch's writes
        assert store.seen("s", "b") is not None
        with pytest.raises(KeyError), store.batch():
            store.queue_item(_rendered("c"), T0)
            raise KeyError("boom")
        assert store.seen("s", "c") is None
        assert len(store.outbox("queued")) == 1


def test_a_write_failing_inside_a_batch_changes_nothing_and_the_batch_goes_on() -> None:
    with Store.open(":memory:") as store:
        with store.batch():
            store.mark_seen("s", "a", "h", T0, "filtered")
            with pytest.raises(sqlite3.IntegrityError), store.db.write() as db:
                db.execute("INSERT INTO kv (key, value) VALUES ('x', '1')")
                db.execute("INSERT INTO kv (key, value) VALUES ('x', '2')")
            store.mark_seen("s", "b", "h", T0, "filtered")
        assert store.seen("s", "a") is not None and store.seen("s", "b") is not None
        assert store.db.conn.execute("SELECT count(*) FROM kv WHERE key = 'x'").fetchone()[0] == 0


def test_the_claim_is_synced_and_a_batch_cannot_hide_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        [post] = store.queue_item(_rendered("a"), T0)
        statements, stop = _statements(store)
        try:
            assert store.claim(post, T0)
        finally:
            stop()
        assert statements[0] == "PRAGMA synchronous = FULL"
        assert statements[-1] == "PRAGMA synchronous = NORMAL"
        assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        with pytest.raises(RuntimeError), store.batch():
            store.mark_posted(post, 1, T0)
        assert store.get(post).status == "sending"  # type: ignore[union-attr]
