"""Seen items read and written in bulk: ``seen_many`` (one read for every
item of a poll) and ``mark_seen_many`` (the items a poll only remembers, in
one write) give what ``seen`` and ``mark_seen`` one by one give, on both
stores; a poll uses them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import feed_server, rss
from postgres import StoreOpener

from publisher.adapters.sqlite import Store
from publisher.config import parse_config
from publisher.service.runner import Service

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(store_opener: StoreOpener) -> Iterator[Store]:
    s = store_opener()
    yield s
    s.close()


def test_seen_many_gives_what_seen_gives_key_by_key(store: Store) -> None:
    store.mark_seen("blog", "a", "ha", at(0), "filtered", "why")
    store.mark_seen("blog", "b", "hb", at(1), "backfill-skipped")
    store.mark_seen("news", "c", "hc", at(2), "filtered")
    found = store.seen_many("blog", ["a", "b", "c", "nope", "a"])
    assert set(found) == {"a", "b"}
    assert found["a"] == store.seen("blog", "a")
    assert found["b"] == store.seen("blog", "b")
    assert store.seen_many("blog", []) == {}
    assert store.seen_many("other", ["a"]) == {}


def test_seen_many_answers_for_more_keys_than_one_statement_takes(store: Store) -> None:
    keys = [f"k{n}" for n in range(1_200)]
    store.mark_seen_many("blog", [(k, f"h{k}", "backfill-skipped", "") for k in keys], at(0))
    found = store.seen_many("blog", [*keys, "missing"])
    assert len(found) == 1_200
    assert found["k1199"].content_hash == "hk1199"


def test_touch_seen_keeps_more_keys_than_one_statement_takes(store: Store) -> None:
    keys = [f"k{n}" for n in range(1_200)]
    store.mark_seen_many("blog", [(k, f"h{k}", "backfill-skipped", "") for k in keys], at(0))
    store.mark_seen("blog", "later", "h", at(200), "filtered")
    store.mark_seen("news", "k0", "h", at(0), "filtered")
    assert store.touch_seen("blog", [*keys, "k5", "later", "missing"], at(100)) == 1_200
    assert store.forget_older_than("blog", at(50)) == 0
    later = store.seen("blog", "later")
    assert later is not None and later.last_seen == at(200), "never moved back"
    assert store.forget_older_than("news", at(50)) == 1


def test_mark_seen_many_writes_what_mark_seen_writes(store_opener: StoreOpener) -> None:
    marks = [("a", "ha", "filtered", "matches exclude 'x'"), ("b", "hb", "backfill-skipped", "")]
    with store_opener() as store:
        store.mark_seen("one", "a", "old", at(-5), "filtered")  # first_seen is kept
        store.mark_seen("many", "a", "old", at(-5), "filtered")
        for key, digest, outcome, detail in marks:
            store.mark_seen("one", key, digest, at(0), outcome, detail)
        store.mark_seen_many("many", marks, at(0))
        store.mark_seen_many("many", [], at(0))  # nothing to write: no error
        for key in ("a", "b"):
            one, many = store.seen("one", key), store.seen("many", key)
            assert one is not None and many is not None
            assert (one.first_seen, one.last_seen, one.content_hash, one.outcome) == (
                many.first_seen,
                many.last_seen,
                many.content_hash,
                many.outcome,
            )
            story = [(e.time, e.event, e.detail) for e in store.item_story("one", key)]
            assert story == [(e.time, e.event, e.detail) for e in store.item_story("many", key)]
        assert store.get_source("many").name == "many"


# ---- a poll uses them


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with feed_server(rss(30)) as url:
        config = parse_config(
            {
                "viber": {"api_url": "local"},
                "storage": {
                    "path": str(tmp_path / "state.sqlite3"),
                    "media_dir": str(tmp_path / "m"),
                },
                "sources": [
                    {
                        "name": "blog",
                        "type": "rss",
                        "url": url,
                        "backfill": 3,
                        "exclude": ["Post 7"],
                    }
                ],
            }
        )
        running = Service(config, clock=lambda: T0, serve=False)
        try:
            yield running
        finally:
            running.close()


def test_a_poll_reads_its_seen_items_once_and_remembers_them_in_one_write(
    service: Service,
) -> None:
    store = service.parts.store
    assert isinstance(store, Store)
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        outcome = service.poll_source(service.config.source("blog"))
    finally:
        store.db.conn.set_trace_callback(None)
    assert outcome.ok and outcome.queued == 3 and outcome.seen == 30 and outcome.filtered == 1
    lookups = [s for s in statements if "FROM seen WHERE source" in s and "key IN" in s]
    assert len(lookups) == 1, statements
    # key by key: only the queueing of the 3 posts (it notes how each was seen)
    by_key = [s for s in statements if "FROM seen WHERE source" in s and "key = " in s]
    assert len(by_key) <= 2 * 3, by_key
    # one savepoint for the 27 remembered items, one per queued item, a few more
    assert sum(s == "SAVEPOINT write" for s in statements) < 12, statements
    story = store.item_story("blog", "id:post-7")
    assert [(e.event, e.detail) for e in story] == [
        ("filtered", "matches exclude pattern 'Post 7'")
    ]
    assert store.seen("blog", "id:post-29") is not None
    assert [e.event for e in store.item_story("blog", "id:post-29")] == ["backfill-skipped"]

    again = service.parts.poller.plan(
        service.parts.sources["blog"], store.get_source("blog"), at(10), conditional=False
    )
    assert {step.action for step in again.steps} == {"seen"}
