"""History pruning (``[storage] history_retention``) and the channel's state."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from postgres import StoreOpener

from publisher import ports
from publisher.adapters.sqlite import MIGRATIONS, SCHEMA_VERSION, Store, migrate
from publisher.config import parse_config
from publisher.core.config import StorageConfig
from publisher.core.errors import ConfigError
from publisher.core.items import Item, RenderedItem, RenderedMessage

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CUTOFF = T0 + timedelta(days=10)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def rendered(key: str, messages: int = 1, source: str = "blog") -> RenderedItem:
    item = Item(source=source, key=key, title=key, content_hash="h")
    msgs = tuple(RenderedMessage({"type": "text", "text": f"{key} {i}"}) for i in range(messages))
    return RenderedItem(item, msgs)


@pytest.fixture
def store(store_opener: StoreOpener) -> Iterator[Store]:
    """The store under test: SQLite, then PostgreSQL."""
    with store_opener() as s:
        yield s


def post(s: Store, row_id: int, when: datetime) -> None:
    assert s.claim(row_id, when)
    s.mark_posted(row_id, row_id, when)


def posted(s: Store, ids: list[int]) -> None:
    for row_id in ids:
        post(s, row_id, day(1))


def failed(s: Store, ids: list[int]) -> None:
    s.mark_failed(ids[0], "Viber status 3", day(1))  # the second is skipped with it


def skipped(s: Store, ids: list[int]) -> None:
    s.mark_skipped(ids[0], "expired", day(1))


def queued(s: Store, ids: list[int]) -> None:
    pass


def sending(s: Store, ids: list[int]) -> None:
    s.claim(ids[0], day(1))


def unknown(s: Store, ids: list[int]) -> None:
    s.claim(ids[0], day(1))
    s.mark_unknown(ids[0], "timeout", day(1))


def second_unknown(s: Store, ids: list[int]) -> None:
    post(s, ids[0], day(1))
    s.claim(ids[1], day(1))
    s.mark_unknown(ids[1], "timeout", day(1))


def finished_after_the_cutoff(s: Store, ids: list[int]) -> None:
    post(s, ids[0], day(1))
    post(s, ids[1], day(11))


def failed_then_requeued(s: Store, ids: list[int]) -> None:
    s.mark_failed(ids[0], "no", day(1))
    s.requeue(ids[0], day(2))


# Each case queues one item (two messages) on day 0 and takes it somewhere;
# pruning at day 10 either removes its posts and story, or keeps both whole.
@pytest.mark.parametrize(
    ("setup", "pruned"),
    [
        pytest.param(posted, True, id="posted"),
        pytest.param(failed, True, id="failed"),
        pytest.param(skipped, True, id="skipped"),
        pytest.param(queued, False, id="queued"),
        pytest.param(sending, False, id="sending"),
        pytest.param(unknown, False, id="unknown"),
        pytest.param(second_unknown, False, id="first-posted-second-unknown"),
        pytest.param(finished_after_the_cutoff, False, id="finished-after-the-cutoff"),
        pytest.param(failed_then_requeued, False, id="failed-then-requeued"),
    ],
)
def test_prune_history_removes_only_items_finished_before_the_cutoff(
    store: Store, setup: Callable[[Store, list[int]], None], pruned: bool
) -> None:
    ids = store.queue_item(rendered("item", messages=2), day(0))
    setup(store, ids)
    story = store.item_story("blog", "item")
    rows = [store.get(i) for i in ids]
    posts, events = store.prune_history(CUTOFF)
    if pruned:
        assert (posts, events) == (2, len(story))
        assert [store.get(i) for i in ids] == [None, None]
        assert store.item_story("blog", "item") == []
    else:
        assert (posts, events) == (0, 0)
        assert [store.get(i) for i in ids] == rows
        assert store.item_story("blog", "item") == story
    seen = store.seen("blog", "item")
    assert seen is not None, "seen items are never pruned (the source's `remember` is)"


def test_prune_history_keeps_what_is_newer_and_what_the_policy_needs(store: Store) -> None:
    (old,) = store.queue_item(rendered("old"), day(0))
    post(store, old, day(1))
    (new,) = store.queue_item(rendered("new"), day(9))
    post(store, new, day(10.5))
    store.set_paused("blog", True, day(2), "5 failures")
    store.set_paused("blog", False, day(12), "by the operator")
    store.mark_seen("blog", "filtered", "h", day(3), "filtered", "exclude matched")
    # old's story (seen, queued, sending, posted), "paused" and "filtered" go.
    assert store.prune_history(CUTOFF) == (1, 6)
    story = [e.event for e in store.item_story("blog", "new")]
    assert story == ["seen", "queued", "sending", "posted"], "a kept post keeps its whole story"
    assert store.get(old) is None and store.get(new) is not None
    assert [r.posted_at for r in store.history_since(day(10))] == [day(10.5)]
    assert [e.event for e in store.events(source="blog")][:1] == ["resumed"]
    assert "paused" not in [e.event for e in store.events(source="blog")]
    assert store.item_story("blog", "filtered") == []
    assert store.seen("blog", "filtered") is not None
    assert store.prune_history(CUTOFF) == (0, 0), "a second run finds nothing"


def test_pruned_item_is_not_posted_again(store: Store) -> None:
    (row,) = store.queue_item(rendered("k"), day(0))
    post(store, row, day(1))
    store.prune_history(CUTOFF)
    seen = store.seen("blog", "k")
    assert seen is not None and seen.outcome == "queued"


# ---- configuration


def test_history_retention_defaults_to_180_days() -> None:
    assert parse_config({}).storage.history_retention == timedelta(days=180)
    assert StorageConfig().history_retention == timedelta(days=180)


def test_history_retention_is_read() -> None:
    config = parse_config({"storage": {"history_retention": "30d"}})
    assert config.storage.history_retention == timedelta(days=30)


@pytest.mark.parametrize(
    ("value", "delivery", "message"),
    [
        ("soon", {}, 'storage.history_retention: "soon" is not a duration'),
        ("12h", {}, 'storage.history_retention: "12h" is too short.*at least "2d"'),
        ("3d", {"min_interval": "7d"}, 'storage.history_retention: "3d" is too short.*"8d"'),
    ],
)
def test_history_retention_too_short_or_wrong_is_refused(
    value: str, delivery: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"storage": {"history_retention": value}, "delivery": delivery})


# ---- channel state


def test_channel_state_is_typed_and_kept_per_channel(store_opener: StoreOpener) -> None:
    with store_opener() as s:
        main = s.channel()
        assert main.name == "main"
        assert (main.stopped_reason(), main.webhook_url(), main.last_post_at()) == (None,) * 3
        main.set_stopped("Viber status 2: check VIBER_AUTH_TOKEN")
        main.set_webhook_url("https://bot.example.org/viber/webhook")
        main.set_last_post_at(day(1))
        main.extend_cooldown(day(2))
        main.extend_cooldown(day(1))  # an earlier one does not shorten it
        assert s.channel("other").stopped_reason() is None
        s.channel("other").set_stopped("other reason")
    with store_opener(read_only=True) as ro:
        main = ro.channel("main")
        assert main.stopped_reason() == "Viber status 2: check VIBER_AUTH_TOKEN"
        assert main.webhook_url() == "https://bot.example.org/viber/webhook"
        assert main.last_post_at() == day(1)
        assert main.cooldown_until() == day(2)
        assert ro.channel("other").stopped_reason() == "other reason"
    with store_opener() as s:
        s.channel().set_stopped(None)
        s.channel().extend_cooldown(day(3))
        assert s.channel().stopped_reason() is None
        assert s.channel().cooldown_until() == day(3)


def test_version_1_kv_state_moves_to_the_channels_table(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:1])
    db.executemany(
        "INSERT INTO kv (key, value) VALUES (?, ?)",
        [
            ("posting_stopped", "token refused"),
            ("cooldown_until", "2024-01-02T00:00:00.000000Z"),
            ("webhook_url", "https://bot.example.org/hook"),
            ("readyz_probe", "2024-01-01T00:00:00+00:00"),
        ],
    )
    db.close()
    with Store.open(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        main = s.channel()
        assert main.stopped_reason() == "token refused"
        assert main.cooldown_until() == day(1)
        assert main.webhook_url() == "https://bot.example.org/hook"
        assert main.last_post_at() is None
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT count(*) FROM kv").fetchone()[0] == 0
    raw.close()


def test_the_store_is_a_ports_store(store: Store) -> None:
    typed: ports.Store = store  # mypy checks the match
    channel: ports.ChannelState = typed.channel()
    assert channel.name == "main"
