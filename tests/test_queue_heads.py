"""The store gives the policy each source's head candidates, not the whole
queue (:meth:`SQLiteOutbox.heads`); the verdict must be the one the policy
gives over the whole due queue (:meth:`SQLiteOutbox.pending`) plus the rest
of started items waiting for their retry (they hold the channel)."""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.adapters.sqlite import Store, to_text
from publisher.core.config import Policy, Window
from publisher.core.policy import PostedRecord, Skip, Wait, next_post
from publisher.core.records import OutboxRow

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
SOURCES = ("a", "b", "c")


def _insert(
    store: Store,
    *,
    source: str,
    key: str,
    seq: int,
    group: int | None,
    status: str,
    created: datetime,
    published: datetime | None = None,
    send_at: datetime | None = None,
    retry_at: datetime | None = None,
    channel: str = "main",
) -> int:
    db = store.db.conn
    db.execute("INSERT OR IGNORE INTO sources (name) VALUES (?)", (source,))
    cursor = db.execute(
        "INSERT INTO outbox (channel, source, item_key, seq, group_id, payload, status,"
        " created_at, item_published, send_at, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?)",
        (
            channel,
            source,
            key,
            seq,
            group,
            status,
            to_text(created),
            None if published is None else to_text(published),
            None if send_at is None else to_text(send_at),
            None if retry_at is None else to_text(retry_at),
        ),
    )
    row_id = cursor.lastrowid
    assert row_id is not None
    if group is None:
        db.execute("UPDATE outbox SET group_id = ? WHERE id = ?", (row_id, row_id))
    return row_id


def _waiting_rest(store: Store) -> list[OutboxRow]:
    """Queued later messages whose earlier ones are posted, in back-off."""
    return [
        row
        for row in store.outbox("queued", limit=10_000, channel="main")
        if row.seq > 0
        and row.next_attempt_at is not None
        and row.next_attempt_at > NOW
        and all(r.status == "posted" for r in store.item_rows(row.group_id) if r.seq < row.seq)
    ]


minutes = st.integers(min_value=-3000, max_value=600).map(lambda m: NOW + timedelta(minutes=m))
item = st.fixed_dictionaries(
    {
        "source": st.sampled_from(SOURCES),
        "created": st.integers(min_value=-3000, max_value=0).map(
            lambda m: NOW + timedelta(minutes=m)
        ),
        "published": st.none() | minutes,
        "send_at": st.none() | st.none() | minutes,
        "retry_at": st.none() | st.none() | st.none() | minutes,
        # how many messages; how many of them are posted already
        "messages": st.integers(min_value=1, max_value=3),
        "posted": st.integers(min_value=0, max_value=2),
    }
)
policy = st.builds(
    Policy,
    max_per_hour=st.none() | st.integers(min_value=1, max_value=3),
    min_interval=st.none() | st.sampled_from([timedelta(minutes=5), timedelta(hours=1)]),
    window=st.none() | st.just(Window(start=time(13), end=time(15))),
    max_age=st.none() | st.sampled_from([timedelta(hours=2), timedelta(hours=30)]),
)
history = st.lists(
    st.tuples(st.sampled_from(SOURCES), st.integers(min_value=1, max_value=1500)),
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(item, max_size=25),
    channel=policy,
    own=st.dictionaries(st.sampled_from(SOURCES), policy, max_size=2),
    posted=history,
    cooldown=st.none() | st.just(NOW + timedelta(minutes=3)),
)
def test_the_verdict_over_the_heads_is_the_verdict_over_the_whole_queue(
    items: list[dict[str, object]],
    channel: Policy,
    own: dict[str, Policy],
    posted: list[tuple[str, int]],
    cooldown: datetime | None,
) -> None:
    with Store.open(":memory:") as store:
        for n, spec in enumerate(items):
            group: int | None = None
            messages, done = int(spec["messages"]), int(spec["posted"])  # type: ignore[call-overload]
            for seq in range(messages):
                status = "posted" if seq < min(done, messages - 1) else "queued"
                row = _insert(
                    store,
                    source=str(spec["source"]),
                    key=f"k{n}",
                    seq=seq,
                    group=group,
                    status=status,
                    created=spec["created"],  # type: ignore[arg-type]
                    published=spec["published"],  # type: ignore[arg-type]
                    send_at=spec["send_at"],  # type: ignore[arg-type]
                    retry_at=spec["retry_at"] if seq == min(done, messages - 1) else None,  # type: ignore[arg-type]
                )
                group = group or row
        whole = [
            row.candidate() for row in [*store.pending(NOW, channel="main"), *_waiting_rest(store)]
        ]
        heads = [row.candidate() for row in store.heads(NOW, channel="main")]
    assert {c.id for c in heads} <= {c.id for c in whole}
    records = [PostedRecord(s, NOW - timedelta(minutes=m)) for s, m in posted]
    full = next_post(whole, records, channel, own, NOW, cooldown)
    fast = next_post(heads, records, channel, own, NOW, cooldown)
    head_ids = {c.id for c in heads}
    while (
        isinstance(full, Skip) and not isinstance(fast, Skip) and full.candidate.id not in head_ids
    ):
        # An expired item waiting behind a scheduled head: the whole queue
        # skips it first, the heads when it comes to the head; after the
        # skips, the verdicts agree.
        whole = [c for c in whole if c.id != full.candidate.id]
        full = next_post(whole, records, channel, own, NOW, cooldown)
    if isinstance(full, Skip) and isinstance(fast, Skip):
        # Which expired item is skipped first may differ only when items are
        # scheduled (send_at): each is skipped in turn either way.
        assert fast.candidate.source == full.candidate.source or any(
            c.send_at is not None for c in whole
        )
        assert fast.reason.split(" old")[0][:8] == full.reason.split(" old")[0][:8]
        if not any(c.send_at is not None for c in whole):
            assert fast == full
        return
    if isinstance(full, Wait) and isinstance(fast, Wait):
        assert fast.until == full.until
        if not any(c.send_at is not None for c in whole):
            assert fast == full
        return
    assert fast == full


def test_heads_read_one_channel_and_skip_back_off() -> None:
    with Store.open(":memory:") as store:
        waiting = _insert(
            store,
            source="a",
            key="x",
            seq=0,
            group=None,
            status="queued",
            created=NOW - timedelta(hours=2),
            retry_at=NOW + timedelta(minutes=5),
        )
        due = _insert(store, source="a", key="y", seq=0, group=None, status="queued", created=NOW)
        _insert(
            store, source="a", key="z", seq=0, group=None, status="queued", created=NOW, channel="b"
        )
        assert [r.id for r in store.heads(NOW, channel="main")] == [due]
        # The rest of a started item in back-off is read: it holds the channel.
        started = _insert(
            store,
            source="b",
            key="s",
            seq=0,
            group=None,
            status="posted",
            created=NOW - timedelta(hours=1),
        )
        rest = _insert(
            store,
            source="b",
            key="s",
            seq=1,
            group=started,
            status="queued",
            created=NOW - timedelta(hours=1),
            retry_at=NOW + timedelta(minutes=10),
        )
        heads = store.heads(NOW, channel="main")
        assert [r.id for r in heads] == [due, rest]
        assert heads[1].candidate().not_before == NOW + timedelta(minutes=10)
        retry = store.next_retry(NOW, channel="main")
        assert retry is not None and retry.id == waiting
        assert store.next_retry(NOW, channel="b") is None


def _time_heads(store: Store) -> float:
    best = float("inf")
    for _ in range(5):
        started = clock.perf_counter()
        store.heads(NOW, channel="main")
        best = min(best, clock.perf_counter() - started)
    return best


def test_heads_cost_does_not_grow_with_the_queue() -> None:
    with Store.open(":memory:") as small, Store.open(":memory:") as large:
        for store, count in ((small, 100), (large, 10_000)):
            with store.batch():
                for n in range(count):
                    _insert(
                        store,
                        source=SOURCES[n % 3],
                        key=f"k{n}",
                        seq=0,
                        group=None,
                        status="queued",
                        created=NOW - timedelta(seconds=n),
                    )
        assert len(large.heads(NOW, channel="main")) == 3
        # generous: an unindexed read of 10,000 rows costs ~100x the small one
        assert _time_heads(large) < 5 * _time_heads(small) + 0.002
