"""The SQLite store, on real temporary files."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from postgres import StoreOpener

from publisher.adapters import sqlite as store_module
from publisher.adapters.sqlite import KEEP, SCHEMA_VERSION, Store, migrate, user_version
from publisher.core.errors import StoreError, TransitionError
from publisher.core.items import Decision, Item, MediaInfo, RenderedItem, RenderedMessage
from publisher.core.policy import PostedRecord

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = 5925484936191962157


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rendered(
    key: str = "k1",
    source: str = "blog",
    messages: int = 1,
    content_hash: str = "h1",
    published: datetime | None = None,
    media: tuple[str, ...] = (),
    payload: dict[str, Any] | None = None,
) -> RenderedItem:
    item = Item(
        source=source,
        key=key,
        title=f"title {key}",
        published=published,
        content_hash=content_hash,
        files=(Path("/srv/in/a.jpg"),),
    )
    msgs = []
    for i in range(messages):
        infos = (
            tuple(MediaInfo("image", name, 10, "image/jpeg") for name in media) if i == 0 else ()
        )
        msgs.append(
            RenderedMessage(
                payload=payload or {"type": "text", "text": f"{key} part {i}"}, media=infos
            )
        )
    return RenderedItem(item, tuple(msgs), (Decision("split", "caption over 768"),))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "publisher.sqlite3"


@pytest.fixture
def store(store_opener: StoreOpener) -> Iterator[Store]:
    """The store under test: SQLite, then PostgreSQL (the contract tests run on both)."""
    s = store_opener()
    yield s
    s.close()


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[Store]:
    s = Store.open(db_path)
    yield s
    s.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- schema


def test_new_file_is_migrated_to_current_version(db_path: Path) -> None:
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
    raw = sqlite3.connect(db_path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sources", "seen", "outbox", "events", "kv"} <= tables
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_existing_version_0_file_is_migrated_and_reopen_keeps_data(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA user_version = 0")
    raw.close()
    with Store.open(db_path) as s:
        s.channel().set_webhook_url("https://bot.example.org/hook")
        ids = s.queue_item(rendered(), T0)
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.channel().webhook_url() == "https://bot.example.org/hook"
        assert [r.id for r in s.pending(T0)] == ids


def test_a_version_4_file_gains_the_sender_and_keeps_its_channels(db_path: Path) -> None:
    """The last schema step (5) adds whom a channel's posts go out as; a
    channel's row from before reads it as not known."""
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path, isolation_level=None)
    migrate(raw, store_module.MIGRATIONS[:4])
    raw.execute("INSERT INTO channels (name, webhook_url) VALUES ('main', 'https://h.example/')")
    raw.close()
    with Store.open(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION == 5
        assert s.channel().webhook_url() == "https://h.example/"
        assert s.channel().sender() is None
        s.channel().set_sender("Owner (01234567890A=)")
    with Store.open(db_path, read_only=True) as s:
        assert s.channel().sender() == "Owner (01234567890A=)"


def test_each_migration_step_is_its_own_transaction() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db, store_module.MIGRATIONS[:1])

    def step_two(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE extra (x)")
        raise RuntimeError("step two breaks")

    with pytest.raises(RuntimeError):
        migrate(db, (store_module.MIGRATIONS[0], step_two))
    assert user_version(db) == 1
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "outbox" in names
    assert "extra" not in names


def test_a_new_file_is_set_up_in_one_transaction() -> None:
    """A reader (``status`` while the service starts) finds a new state
    empty or whole: every step of a new file commits together."""
    db = sqlite3.connect(":memory:", isolation_level=None)

    def step_two(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE extra (x)")
        raise RuntimeError("step two breaks")

    with pytest.raises(RuntimeError):
        migrate(db, (store_module.MIGRATIONS[0], step_two))
    assert user_version(db) == 0
    assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    assert migrate(db) == SCHEMA_VERSION


def test_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(db_path)


# ---- read-only


def test_read_only_open_leaves_the_file_bytes_unchanged(db_path: Path) -> None:
    with Store.open(db_path) as s:
        s.queue_item(rendered(), T0)
    before = sha(db_path)
    with Store.open(db_path, read_only=True) as ro:
        assert len(ro.outbox()) == 1
        assert ro.counts_by_source()["blog"]["queued"] == 1
        assert ro.item_story("blog", "k1")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.channel().set_stopped("x")
    assert sha(db_path) == before


def test_read_only_on_an_older_schema_says_so_and_does_not_migrate(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE t (x)")
    raw.close()
    before = sha(db_path)
    with pytest.raises(StoreError, match="run the service once"):
        Store.open(db_path, read_only=True)
    assert sha(db_path) == before


def test_read_only_on_a_missing_file_creates_nothing(db_path: Path) -> None:
    with pytest.raises(StoreError, match="no database yet"):
        Store.open(db_path, read_only=True)
    assert not db_path.exists()


# ---- queueing


def test_queue_item_writes_seen_outbox_and_events(store: Store) -> None:
    ids = store.queue_item(rendered(messages=2, published=at(-60), media=("abc.jpg",)), at(0))
    assert len(ids) == 2 and ids[0] < ids[1]
    seen = store.seen("blog", "k1")
    assert seen is not None and seen.outcome == "queued" and seen.content_hash == "h1"
    first, second = store.get(ids[0]), store.get(ids[1])
    assert first is not None and second is not None
    assert (first.seq, second.seq) == (0, 1)
    assert first.group_id == second.group_id == ids[0]
    assert first.status == "queued" and first.attempts == 0
    assert first.media == ("abc.jpg",) and second.media == ()
    assert first.item_published == at(-60)
    assert first.created_at == at(0) and first.created_at.tzinfo is not None
    assert first.decisions == (("split", "caption over 768"),)
    assert first.files == ("/srv/in/a.jpg",)
    events = [e.event for e in store.item_story("blog", "k1")]
    assert events == ["seen", "split", "queued"]


def test_payload_never_keeps_auth_token_or_from(store: Store) -> None:
    payload = {"type": "text", "text": "hi", "auth_token": "secret", "from": "admin"}
    (row_id,) = store.queue_item(rendered(payload=payload), T0)
    row = store.get(row_id)
    assert row is not None and row.payload == {"type": "text", "text": "hi"}


def test_queue_item_is_one_transaction(sqlite_store: Store) -> None:
    store = sqlite_store
    # Fail at the very end of the transaction: after seen and outbox rows are written.
    store.db.conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.event = 'queued'"
        " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        store.queue_item(rendered(messages=2), T0)
    assert store.seen("blog", "k1") is None
    assert store.outbox() == []
    assert store.item_story("blog", "k1") == []
    store.db.conn.execute("DROP TRIGGER boom")
    assert len(store.queue_item(rendered(messages=2), T0)) == 2


def test_refused_item_is_only_marked_seen(store: Store) -> None:
    item = rendered().item
    assert store.queue_item(RenderedItem(item, (), (), refused="image too large"), T0) == []
    seen = store.seen("blog", "k1")
    assert seen is not None and seen.outcome == "refused"
    assert store.outbox() == []
    story = store.item_story(None, "k1")
    assert [(e.event, e.detail) for e in story] == [("refused", "image too large")]


def test_mark_seen_and_content_change(store: Store) -> None:
    store.mark_seen("blog", "k1", "h1", at(0), "filtered", "exclude matched 'sponsored'")
    store.mark_seen("blog", "k1", "h2", at(5), "filtered", "exclude matched 'sponsored'")
    seen = store.seen("blog", "k1")
    assert seen is not None
    assert (seen.first_seen, seen.last_seen, seen.content_hash) == (at(0), at(5), "h2")
    assert store.seen("blog", "other") is None
    assert store.seen("news", "k1") is None


def test_rehash_seen_replaces_only_the_hashes_of_the_items_named(store: Store) -> None:
    store.mark_seen("blog", "a", "old-a", at(0), "filtered")
    store.mark_seen("blog", "b", "old-b", at(0), "filtered")
    store.mark_seen("news", "a", "old-a", at(0), "filtered")
    store.rehash_seen("blog", [("a", "raw:new-a"), ("gone", "raw:x")])
    store.rehash_seen("blog", [])
    a, b, other = store.seen("blog", "a"), store.seen("blog", "b"), store.seen("news", "a")
    assert a is not None and (a.content_hash, a.last_seen, a.outcome) == (
        "raw:new-a",
        at(0),
        "filtered",
    )
    assert b is not None and b.content_hash == "old-b"
    assert other is not None and other.content_hash == "old-a"
    assert store.seen("blog", "gone") is None


def test_forget_older_than_uses_last_seen(store: Store) -> None:
    store.mark_seen("blog", "old", "h", at(0), "filtered")
    store.mark_seen("blog", "kept", "h", at(0), "filtered")
    store.mark_seen("news", "old", "h", at(0), "filtered")
    store.touch_seen("blog", ["kept"], at(100))
    assert store.forget_older_than("blog", at(50)) == 1
    assert store.seen("blog", "old") is None
    assert store.seen("blog", "kept") is not None
    assert store.seen("news", "old") is not None


# ---- transitions


def test_happy_path_and_exact_message_token(store: Store, store_opener: StoreOpener) -> None:
    (row_id,) = store.queue_item(rendered(), at(0))
    assert store.claim(row_id, at(1))
    assert not store.claim(row_id, at(1)), "a row is claimed once"
    store.mark_posted(row_id, TOKEN, at(2))
    store.close()
    with store_opener() as again:
        row = again.get(row_id)
        assert row is not None
        assert row.status == "posted"
        assert row.message_token == TOKEN
        assert isinstance(row.message_token, int)
        assert row.posted_at == at(2) and row.attempts == 1
        assert again.history_since(at(0)) == [PostedRecord("blog", at(2), 0)]
        story = [(e.event, e.detail) for e in again.item_story("blog", "k1")]
        assert story[-2:] == [("sending", "attempt 1"), ("posted", f"token={TOKEN}")]


def test_token_given_as_string_is_kept_exact(store: Store) -> None:
    (row_id,) = store.queue_item(rendered(), at(0))
    store.claim(row_id, at(1))
    store.mark_posted(row_id, str(TOKEN), at(2))
    row = store.get(row_id)
    assert row is not None and row.message_token == TOKEN


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ("queued", lambda s, i: s.mark_posted(i, 1, at(1))),
        ("queued", lambda s, i: s.mark_unknown(i, "timeout", at(1))),
        ("queued", lambda s, i: s.mark_retry(i, "500", at(5), at(1))),
        ("queued", lambda s, i: s.requeue(i, at(1))),
        ("posted", lambda s, i: s.mark_failed(i, "no", at(1))),
        ("posted", lambda s, i: s.mark_skipped(i, "expired", at(1))),
        ("posted", lambda s, i: s.requeue(i, at(1))),
        ("skipped", lambda s, i: s.mark_posted(i, 1, at(1))),
    ],
)
def test_transition_guards(store: Store, setup: str, action: Any) -> None:
    (row_id,) = store.queue_item(rendered(), at(0))
    if setup in ("posted", "skipped"):
        store.claim(row_id, at(0))
        if setup == "posted":
            store.mark_posted(row_id, 1, at(0))
        else:
            store.mark_unknown(row_id, "?", at(0))
            store.mark_skipped(row_id, "operator", at(0))
    before = store.get(row_id)
    with pytest.raises(TransitionError, match=f"#{row_id} is {setup}"):
        action(store, row_id)
    assert store.get(row_id) == before


def test_unknown_id_is_a_clear_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no post #42"):
        store.claim(42, T0)


def test_retry_waits_for_next_attempt(store: Store) -> None:
    (row_id,) = store.queue_item(rendered(), at(0))
    store.claim(row_id, at(0))
    store.mark_retry(row_id, "Viber status 12", at(10), at(1))
    assert store.pending(at(9)) == []
    assert [r.id for r in store.pending(at(10))] == [row_id]
    row = store.get(row_id)
    assert row is not None and row.reason == "Viber status 12" and row.attempts == 1
    assert store.next_attempt() == at(10)
    assert store.claim(row_id, at(10))
    row = store.get(row_id)
    assert row is not None and row.attempts == 2 and row.next_attempt_at is None


def test_later_message_waits_until_the_first_is_posted(store: Store) -> None:
    first, second = store.queue_item(rendered(messages=2), at(0))
    (other,) = store.queue_item(rendered(key="k2"), at(0))
    assert [r.id for r in store.pending(at(1))] == [first, other]
    store.claim(first, at(1))
    assert [r.id for r in store.pending(at(1))] == [other]
    store.mark_posted(first, 7, at(2))
    assert [r.id for r in store.pending(at(2))] == [second, other]


def test_failed_first_message_skips_the_rest_and_retry_brings_it_back(store: Store) -> None:
    first, second = store.queue_item(rendered(messages=2), at(0))
    store.claim(first, at(1))
    assert store.mark_failed(first, "Viber status 3 (badData)", at(2)) == [second]
    rest = store.get(second)
    assert rest is not None and rest.status == "skipped" and rest.held_by == first
    assert rest.reason is not None and "badData" in rest.reason
    assert store.pending(at(3)) == []
    assert store.requeue(first, at(4)) == [first, second]
    rows = [store.get(first), store.get(second)]
    assert [(r.status, r.attempts, r.held_by) for r in rows if r] == [
        ("queued", 0, None),
        ("queued", 0, None),
    ]
    assert [r.id for r in store.pending(at(4))] == [first]


def test_skipping_an_expired_item_skips_all_its_messages(store: Store) -> None:
    first, second = store.queue_item(rendered(messages=2), at(0))
    assert store.mark_skipped(first, "expired", at(1)) == [second]
    assert {r.status for r in store.outbox()} == {"skipped"}
    events = [e.event for e in store.item_story("blog", "k1")]
    assert events[-2:] == ["skipped", "skipped"]


def test_operator_requeues_unknown(store: Store) -> None:
    (row_id,) = store.queue_item(rendered(), at(0))
    store.claim(row_id, at(1))
    store.mark_unknown(row_id, "read timeout", at(2))
    assert store.pending(at(3)) == []
    store.requeue(row_id, at(3))
    assert [r.id for r in store.pending(at(3))] == [row_id]


@pytest.mark.parametrize(("on_unknown", "status"), [("hold", "unknown"), ("retry", "queued")])
def test_recover_after_crash(store_opener: StoreOpener, on_unknown: Any, status: str) -> None:
    s = store_opener()
    a, b = s.queue_item(rendered(messages=2), at(0))
    (c,) = s.queue_item(rendered(key="k2"), at(0))
    assert s.claim(a, at(1))
    # The process dies here: no close, no more writes. A new process starts.
    s2 = store_opener()
    assert s2.recover_after_crash(at(5), on_unknown=on_unknown) == [a]
    row = s2.get(a)
    assert row is not None and row.status == status
    assert "interrupted" in (row.reason or "")
    untouched = [s2.get(b), s2.get(c)]
    assert [r.status for r in untouched if r] == ["queued", "queued"]
    assert b not in [r.id for r in s2.pending(at(5))], "the rest waits for its first message"
    assert s2.item_story("blog", "k1")[-1].event == (
        "unknown" if status == "unknown" else "retried"
    )
    assert s2.recover_after_crash(at(6)) == []
    s.close()
    s2.close()


# ---- queries


def test_item_story_tells_the_whole_story(store: Store) -> None:
    store.mark_seen("news", "k1", "h", at(0), "filtered", "exclude matched 'ads'")
    (row_id,) = store.queue_item(rendered(), at(0))
    store.claim(row_id, at(1))
    store.mark_retry(row_id, "Viber status 12", at(2), at(1))
    store.claim(row_id, at(2))
    store.mark_posted(row_id, TOKEN, at(3))
    story = store.item_story("blog", "k1")
    assert [e.event for e in story] == [
        "seen",
        "split",
        "queued",
        "sending",
        "retry",
        "sending",
        "posted",
    ]
    assert [e.time for e in story][-1] == at(3)
    assert {e.source for e in store.item_story(None, "k1")} == {"blog", "news"}


def test_counts_by_source(store: Store) -> None:
    a, _ = store.queue_item(rendered(messages=2), at(0))
    store.queue_item(rendered(key="k2", source="news"), at(0))
    store.mark_seen("news", "k3", "h", at(0), "filtered")
    store.claim(a, at(1))
    store.mark_posted(a, 1, at(1))
    counts = store.counts_by_source()
    assert counts["blog"]["posted"] == 1 and counts["blog"]["queued"] == 1
    assert counts["blog"]["seen"] == 1
    assert counts["news"]["queued"] == 1 and counts["news"]["seen"] == 2
    assert counts["news"]["failed"] == 0


def test_item_counts_add_up(store: Store) -> None:
    """Per source, items (not messages, not channels) in one state each, and
    ``seen`` is their sum: items never queued count too (refused as failed,
    filtered and backfill-skipped as skipped)."""
    split, _ = store.queue_item(rendered(key="split", messages=2), at(0))
    store.claim(split, at(1))
    store.mark_posted(split, 1, at(1))  # its second message still queued
    both = store.queue_routes({"a": rendered(key="both"), "b": rendered(key="both")}, at(0))
    for ids in both.values():
        store.claim(ids[0], at(1))
        store.mark_posted(ids[0], 2, at(1))
    half = store.queue_routes({"a": rendered(key="half"), "b": rendered(key="half")}, at(0))
    store.claim(half["a"][0], at(1))
    store.mark_posted(half["a"][0], 3, at(1))
    store.claim(half["b"][0], at(1))
    store.mark_failed(half["b"][0], "rejected", at(1))
    old, _ = store.queue_item(rendered(key="old", messages=2), at(0))
    store.mark_skipped(old, "expired: 3d old, older than max_age 1d (delivery)", at(1))
    by_hand = store.queue_item(rendered(key="by-hand"), at(0))[0]
    store.mark_skipped(by_hand, "by the operator", at(1))
    store.mark_seen("blog", "pic", "h", at(0), "refused", "picture too large")
    store.mark_seen("blog", "nope", "h", at(0), "filtered", "exclude matched")
    store.mark_seen("blog", "older", "h", at(0), "backfill-skipped")
    store.queue_item(rendered(key="k", source="news"), at(0))

    counts = store.item_counts_by_source()
    blog = counts["blog"]
    assert blog["seen"] == 8
    assert blog["queued"] == 1  # "split": one message posted, one waiting
    assert blog["posted"] == 1  # "both": once, though posted to two channels
    assert blog["failed"] == 2  # "half" (failed on one channel), the refused picture
    assert blog["expired"] == 1
    assert blog["skipped"] == 3  # by hand, filtered, backfill-skipped
    assert blog["seen"] == sum(v for k, v in blog.items() if k != "seen")
    assert counts["news"]["seen"] == counts["news"]["queued"] == 1


def test_item_counts_after_pruning_and_forgetting(store: Store) -> None:
    """An item whose posts were pruned is counted ``pruned``; one whose key
    was forgotten while a post remains still counts, by its post."""
    done = store.queue_item(rendered(key="done"), at(0))[0]
    store.claim(done, at(1))
    store.mark_posted(done, 1, at(1))
    store.prune_history(at(10))
    store.queue_item(rendered(key="waiting"), at(0))
    store.forget_older_than("blog", at(5))
    blog = store.item_counts_by_source()["blog"]
    assert blog["seen"] == 1 and blog["queued"] == 1
    store.mark_seen("blog", "done", "h1", at(20), "queued")
    blog = store.item_counts_by_source()["blog"]
    assert blog["seen"] == 2 and blog["pruned"] == 1


def test_recent_posts_and_history(store: Store) -> None:
    ids = [store.queue_item(rendered(key=f"k{i}"), at(0))[0] for i in range(3)]
    for minute, row_id in enumerate(ids, start=1):
        store.claim(row_id, at(minute))
        store.mark_posted(row_id, minute, at(minute))
    assert [r.id for r in store.recent_posts(2)] == [ids[2], ids[1]]
    assert [r.posted_at for r in store.history_since(at(2))] == [at(2), at(3)]


def test_media_in_use(store: Store) -> None:
    (done,) = store.queue_item(rendered(key="a", media=("old.jpg",)), at(0))
    (waiting,) = store.queue_item(rendered(key="b", media=("new.jpg", "thumb.jpg")), at(0))
    store.claim(done, at(1))
    store.mark_posted(done, 1, at(1))
    assert store.media_in_use(at(0)) == {"old.jpg", "new.jpg", "thumb.jpg"}
    assert store.media_in_use(at(2)) == {"new.jpg", "thumb.jpg"}
    assert waiting


def test_outbox_listing(store: Store) -> None:
    ids = [store.queue_item(rendered(key=f"k{i}"), at(0))[0] for i in range(3)]
    store.mark_skipped(ids[1], "operator", at(1))
    assert [r.id for r in store.outbox()] == ids[::-1]
    assert [r.id for r in store.outbox("queued", newest_first=False)] == [ids[0], ids[2]]
    assert [r.id for r in store.outbox(limit=1)] == [ids[2]]
    with pytest.raises(ValueError, match="unknown status"):
        store.outbox("done")  # type: ignore[arg-type]


def test_prune_removes_only_old_finished_items(store: Store) -> None:
    (old,) = store.queue_item(rendered(key="a"), at(0))
    (failed,) = store.queue_item(rendered(key="b"), at(0))
    (fresh,) = store.queue_item(rendered(key="c"), at(0))
    store.claim(old, at(1))
    store.mark_posted(old, 1, at(1))
    store.mark_failed(failed, "no", at(1))
    posts, events = store.prune_history(at(10))
    assert posts == 2 and events > 0
    assert store.get(old) is None and store.get(failed) is None, "posted and failed go"
    assert store.item_story("blog", "a") == [] and store.item_story("blog", "b") == []
    assert store.get(fresh) is not None, "queued stays"
    assert store.item_story("blog", "c"), "with its story"


# ---- sources and channel state


def test_record_poll(store: Store) -> None:
    fresh = store.get_source("blog")
    assert not fresh.first_poll_done and fresh.consecutive_failures == 0
    store.record_poll("blog", at(0), ok=False, error="timeout")
    state = store.record_poll("blog", at(1), ok=False, error="HTTP 503")
    assert state.consecutive_failures == 2 and state.last_error == "HTTP 503"
    assert not state.first_poll_done and state.last_success is None
    state = store.record_poll(
        "blog",
        at(2),
        ok=True,
        etag='"abc"',
        last_modified="Wed, 01 May 2024 12:00:00 GMT",
        url="https://new.example.org/feed",
        next_poll=at(12),
        snapshot={"a.jpg": [1, 2]},
    )
    assert state.consecutive_failures == 0 and state.last_error is None
    assert state.first_poll_done and state.last_success == at(2)
    assert state.next_poll == at(12) and state.snapshot == {"a.jpg": [1, 2]}
    state = store.record_poll("blog", at(3), ok=True, etag=None, body_hash="x")
    assert state.etag is None and state.body_hash == "x"
    assert state.url == "https://new.example.org/feed", "KEEP leaves a column alone"
    assert store.get_source("blog") == state
    store.set_paused("blog", True, at(4), "5 failures")
    assert store.get_source("blog").paused
    assert [s.name for s in store.sources()] == ["blog"]
    assert KEEP is store_module.KEEP


def test_record_polls_writes_many_unchanged_polls_at_once(store: Store) -> None:
    store.record_poll("a", at(0), ok=False, error="timeout")
    store.record_poll("b", at(0), ok=True, etag='"old"', url="https://b.example/feed")
    store.record_polls(
        [
            ("a", at(1), {"etag": '"1"', "next_poll": at(11), "first_poll_done": True}),
            ("b", at(2), {"etag": '"2"', "body_hash": "h", "snapshot": None}),
            ("c", at(3), {"last_modified": "Wed, 01 May 2024 12:00:00 GMT"}),
        ]
    )
    a, b, c = (store.get_source(name) for name in "abc")
    assert a.etag == '"1"' and a.next_poll == at(11) and a.last_poll == at(1)
    assert a.consecutive_failures == 0 and a.last_error is None and a.last_success == at(1)
    assert b.etag == '"2"' and b.body_hash == "h" and b.last_success == at(2)
    assert b.url == "https://b.example/feed", "what is not given stays"
    assert c.first_poll_done and c.last_modified == "Wed, 01 May 2024 12:00:00 GMT"
    store.record_polls([])  # nothing to write


def test_channel_state(store: Store) -> None:
    main = store.channel()
    assert main.cooldown_until() is None
    main.set_cooldown_until(at(5))
    assert main.cooldown_until() == at(5)
    main.set_cooldown_until(None)
    assert main.cooldown_until() is None
    assert main.sender() is None
    main.set_sender("Owner (01234567890A=)")
    assert main.sender() == "Owner (01234567890A=)"
    assert store.channel("other").sender() is None


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.mark_seen("blog", "k", "h", datetime(2024, 1, 1), "filtered")


def test_memory_database_works() -> None:
    with Store.open(":memory:") as s:
        assert s.queue_item(rendered(), T0) == [1]


def test_claims_from_many_threads_are_exclusive(store: Store) -> None:
    ids = [store.queue_item(rendered(key=f"k{i}"), at(0))[0] for i in range(20)]
    won: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for row_id in ids:
            if store.claim(row_id, at(1)):
                with lock:
                    won.append(row_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == ids


def test_heads_and_next_retry_through_the_port(store: Store) -> None:
    (old,) = store.queue_item(rendered(key="old"), at(0))
    (new,) = store.queue_item(rendered(key="new"), at(1))
    (other,) = store.queue_item(rendered(key="o", source="news"), at(2))
    (elsewhere,) = store.queue_item(rendered(key="x"), at(0), channel="b")
    assert [r.id for r in store.heads(at(5), channel="main")] == [old, other]
    assert store.claim(old, at(5))
    store.mark_retry(old, "busy", at(20), at(5))
    assert [r.id for r in store.heads(at(6), channel="main")] == [new, other]
    retry = store.next_retry(at(6), channel="main")
    assert retry is not None and retry.id == old
    assert [r.id for r in store.heads(at(6), channel="b")] == [elsewhere]
    assert store.next_retry(at(6), channel="b") is None


def test_heads_keep_the_rest_of_a_started_item_in_back_off(store: Store) -> None:
    first, second = store.queue_item(rendered(key="two", messages=2), at(0))
    (other,) = store.queue_item(rendered(key="other", source="news"), at(1))
    assert store.claim(first, at(2))
    store.mark_posted(first, TOKEN, at(2))
    assert store.claim(second, at(3))
    store.mark_retry(second, "HTTP 500", at(30), at(3))
    # Not due, yet read with its retry time: the policy waits for it.
    heads = store.heads(at(4), channel="main")
    assert [r.id for r in heads] == [second, other]
    assert heads[0].candidate().not_before == at(30)
    assert [r.id for r in store.pending(at(4))] == [other]
    # Failed, it no longer holds the channel.
    assert store.claim(second, at(30))
    store.mark_failed(second, "refused", at(31))
    assert [r.id for r in store.heads(at(31), channel="main")] == [other]
