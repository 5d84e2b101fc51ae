"""What the store does the same on every database, now that the two
backends share their SQL (publisher/adapters/sql): a contract test that
each backend once did its own way, run on both through ``store_opener``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postgres import StoreOpener

from publisher.core.items import Item, RenderedItem, RenderedMessage

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _rendered(key: str, text: str = "hello", content_hash: str = "") -> RenderedItem:
    item = Item(source="news", key=key, title=key, content_hash=content_hash or "h-" + key)
    return RenderedItem(item, (RenderedMessage({"type": "text", "text": text}),))


def test_an_item_another_process_queued_meanwhile_is_not_queued_twice(
    store_opener: StoreOpener,
) -> None:
    with store_opener() as first, store_opener() as second:
        # Both planned on a snapshot where the item was new; the first queues it.
        assert first.queue_item(_rendered("a"), T0) != []
        assert second.queue_item(_rendered("a"), T0) == []
        routes = {"main": _rendered("a"), "other": _rendered("a")}
        assert list(second.queue_routes(routes, T0)) == ["other"]
        assert [(r.channel, r.item_key) for r in second.outbox(newest_first=False)] == [
            ("main", "a"),
            ("other", "a"),
        ]
        # An edit (another content hash) is queued again.
        assert second.queue_item(_rendered("a", "edited", "h-a-2"), T0) != []


def test_a_refunded_retry_does_not_count_the_attempt(store_opener: StoreOpener) -> None:
    with store_opener() as store:
        (row_id,) = store.queue_item(_rendered("a"), T0)
        assert store.claim(row_id, T0)
        store.mark_retry(row_id, "webhook not set", T0 + timedelta(minutes=1), T0, refund=True)
        assert store.get(row_id).attempts == 0
        assert store.claim(row_id, T0 + timedelta(minutes=2))
        store.mark_retry(row_id, "busy", T0 + timedelta(minutes=3), T0, refund=False)
        assert store.claim(row_id, T0 + timedelta(minutes=4))
        store.mark_retry(row_id, "token", T0 + timedelta(minutes=5), T0, refund=True)
        assert store.get(row_id).attempts == 1


def test_a_post_whose_fate_is_unknown_counts_for_the_limits_at_its_last_attempt(
    store_opener: StoreOpener,
) -> None:
    """A kill mid-request leaves a post that may have gone out: the limits
    (``history_since``) count it, at its latest ``sending``, as if posted."""
    with store_opener() as store:
        posted, unknown, requeued = (store.queue_item(_rendered(k), T0)[0] for k in "abc")
        assert store.claim(posted, T0 + timedelta(minutes=1))
        store.mark_posted(posted, 1, T0 + timedelta(minutes=1))
        assert store.claim(unknown, T0 + timedelta(minutes=2))
        store.mark_retry(unknown, "busy", T0 + timedelta(minutes=3), T0 + timedelta(minutes=2))
        assert store.claim(unknown, T0 + timedelta(minutes=4))  # the last attempt
        assert store.claim(requeued, T0 + timedelta(minutes=5))
        store.recover_after_crash(T0 + timedelta(minutes=9), "hold", channel="main")
        assert {r.status for r in store.outbox()} == {"posted", "unknown"}
        store.requeue(requeued, T0 + timedelta(minutes=10))  # the operator's call: not counted
        history = store.history_since(T0, channel="main")
        assert [(r.posted_at - T0) for r in history] == [
            timedelta(minutes=1),
            timedelta(minutes=4),
        ]
        assert store.history_since(T0 + timedelta(minutes=3), channel="main")[0].posted_at == (
            T0 + timedelta(minutes=4)
        )
        assert store.history_since(T0, channel="other") == []
