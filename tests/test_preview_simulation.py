"""Preview runs the delivery policy forward in time over the queue
(:func:`publisher.pipeline.preview.run_policy`): each decision is asked over
what the policy looks at, not the whole queue. Its verdicts must be, one by
one, those of the policy asked over the whole queue and the whole history
(the naive simulation below, which cost O(n²) in the queue)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.core.config import (
    ChannelConfig,
    Config,
    DeliveryConfig,
    Policy,
    SourceConfig,
    Window,
)
from publisher.core.policy import Candidate, Idle, Post, PostedRecord, Skip, Verdict, Wait
from publisher.pipeline.preview import SIMULATION_HORIZON, run_policy
from publisher.pipeline.queue import QueueView, decide

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
SOURCES = ("a", "b", "c")


def _config(channel: Policy, own: dict[str, Policy]) -> Config:
    return Config(
        channels=(ChannelConfig(name="main", delivery=DeliveryConfig(policy=channel)),),
        sources=tuple(
            SourceConfig(name=s, type="folder", path=Path(f"/in/{s}"), policy=own.get(s, Policy()))
            for s in SOURCES
        ),
    )


def _view(history: Sequence[PostedRecord], cooldown: datetime | None = None) -> QueueView:
    return QueueView(
        now=NOW,
        due=(),
        history=tuple(history),
        cooldown_until=cooldown,
        stopped=None,
        next_retry=None,
    )


def naive(
    view: QueueView, config: Config, queue: Sequence[Candidate]
) -> Iterator[tuple[datetime, Verdict]]:
    """The simulation as preview first ran it: the policy over everything."""
    pending = list(queue)
    history = list(view.history)
    clock = NOW
    for _ in range(len(pending) * 8 + 64):
        if clock - NOW > SIMULATION_HORIZON:
            return
        verdict = decide(view, config, "main", queue=pending, history=history, now=clock)
        yield clock, verdict
        if isinstance(verdict, Idle):
            return
        if isinstance(verdict, Wait):
            clock = max(verdict.until, clock + timedelta(microseconds=1))
            continue
        candidate = verdict.candidate
        pending.remove(candidate)
        if isinstance(verdict, Skip):
            pending = [c for c in pending if c.group_key != candidate.group_key]
            continue
        history.append(PostedRecord(candidate.source, clock, candidate.seq))


minutes = st.integers(min_value=-3000, max_value=600).map(lambda m: NOW + timedelta(minutes=m))
item = st.fixed_dictionaries(
    {
        "source": st.sampled_from(SOURCES),
        "created": st.integers(min_value=-3000, max_value=0).map(
            lambda m: NOW + timedelta(minutes=m)
        ),
        "published": st.none() | minutes,
        "send_at": st.none() | st.none() | st.sampled_from([NOW + timedelta(minutes=20)]) | minutes,
        "retry_at": st.none() | st.none() | st.none() | minutes,
        "messages": st.integers(min_value=1, max_value=3),
        # the first `started` messages are out already (a started item)
        "started": st.integers(min_value=0, max_value=2),
    }
)
policy = st.builds(
    Policy,
    max_per_hour=st.none() | st.integers(min_value=1, max_value=3),
    max_per_day=st.none() | st.integers(min_value=2, max_value=8),
    min_interval=st.none() | st.sampled_from([timedelta(minutes=5), timedelta(hours=1)]),
    window=st.none() | st.just(Window(start=time(13), end=time(15))),
    max_age=st.none() | st.sampled_from([timedelta(hours=2), timedelta(hours=30)]),
)
history = st.lists(
    st.tuples(
        st.sampled_from((*SOURCES, "gone")),
        st.integers(min_value=0, max_value=1500),
        st.integers(min_value=0, max_value=1),
    ),
    max_size=12,
)


def _queue(items: list[dict[str, object]]) -> list[Candidate]:
    queue: list[Candidate] = []
    next_id = 1
    for n, spec in enumerate(items):
        messages = int(spec["messages"])  # type: ignore[call-overload]
        started = min(int(spec["started"]), messages - 1)  # type: ignore[call-overload]
        group = next_id
        for seq in range(messages):
            if seq >= started:
                queue.append(
                    Candidate(
                        id=next_id,
                        source=str(spec["source"]),
                        item_key=f"k{n}",
                        created_at=spec["created"],  # type: ignore[arg-type]
                        seq=seq,
                        item_published=spec["published"],  # type: ignore[arg-type]
                        send_at=spec["send_at"],  # type: ignore[arg-type]
                        group=group,
                        not_before=spec["retry_at"] if seq == started else None,  # type: ignore[arg-type]
                    )
                )
            next_id += 1
    return queue


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(item, max_size=30),
    channel=policy,
    own=st.dictionaries(st.sampled_from(SOURCES), policy, max_size=2),
    posted=history,
    cooldown=st.none() | st.just(NOW + timedelta(minutes=3)),
)
def test_each_verdict_is_the_policys_over_the_whole_queue(
    items: list[dict[str, object]],
    channel: Policy,
    own: dict[str, Policy],
    posted: list[tuple[str, int, int]],
    cooldown: datetime | None,
) -> None:
    config = _config(channel, own)
    records = [PostedRecord(s, NOW - timedelta(minutes=m), seq) for s, m, seq in posted]
    view = _view(records, cooldown)
    queue = _queue(items)
    assert list(run_policy(view, config, "main", queue, NOW)) == list(naive(view, config, queue))


def test_a_long_queue_previews_in_the_policys_order() -> None:
    """600 items of three sources, one of them started, a scheduled one and
    an expired one: posted round-robin, oldest first, paced by the limits."""
    channel = Policy(max_per_hour=20, min_interval=timedelta(minutes=1))
    config = _config(channel, {"c": Policy(max_age=timedelta(hours=6))})
    spec: list[dict[str, object]] = [
        {
            "source": SOURCES[n % 3],
            "created": NOW - timedelta(minutes=600 - n),
            "published": None,
            "send_at": None,
            "retry_at": None,
            "messages": 2 if n == 7 else 1,
            "started": 1 if n == 7 else 0,
        }
        for n in range(600)
    ]
    spec[10]["send_at"] = NOW + timedelta(hours=30)
    queue = _queue(spec)
    history = [PostedRecord("b", NOW - timedelta(minutes=30))]
    verdicts = list(run_policy(_view(history), config, "main", queue, NOW))
    assert verdicts == list(naive(_view(history), config, queue))
    posts = [(at, v.candidate) for at, v in verdicts if isinstance(v, Post)]
    skipped = [(at, v.candidate) for at, v in verdicts if isinstance(v, Skip)]
    # The started item's rest goes first; c's items older than 6 hours are
    # skipped; then one per source in turn (b posted last, so a and c
    # first), each its oldest.
    assert posts[0][1].item_key == "k7" and posts[0][1].seq == 1
    assert {c.item_key for at, c in skipped if at == NOW} == {f"k{n}" for n in range(2, 240, 3)}
    assert all(c.source == "c" for _, c in skipped)
    expected = ["k0", "k242", "k1", "k3", "k245", "k4", "k6", "k248", "k13"]
    assert [c.item_key for _, c in posts[1:10]] == expected
    # The scheduled item waits for its time; the rest is paced at 20 an hour.
    (scheduled,) = [at for at, c in posts if c.item_key == "k10"]
    assert scheduled >= NOW + timedelta(hours=30)
    hour = [at for at, c in posts if NOW + timedelta(hours=5) <= at < NOW + timedelta(hours=6)]
    assert len(hour) == 20
    times = [at for at, _ in posts]
    assert times == sorted(times)
    assert all(b - a >= timedelta(minutes=1) for a, b in pairwise(times[1:]))


def test_a_folder_over_one_polls_worth_says_how_many_wait(tmp_path: Path) -> None:
    from publisher.compose import build_preview
    from publisher.config import parse_config

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(105):
        note = inbox / f"{n:03d}.txt"
        note.write_text(f"note {n}", encoding="utf-8")
        os.utime(note, (0, 0))
    config = parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3")},
            "sources": [{"name": "inbox", "type": "folder", "path": str(inbox)}],
        }
    )
    preview = build_preview(config, tmp_path / "media", now=datetime.now(UTC))
    assert [e.title for e in preview.entries][-1] == "note 99"
    assert len(preview.entries) == 100
    assert preview.notes == [
        (
            "inbox",
            "5 more new item(s) wait for later polls (at most 100 are taken per poll); not shown",
        )
    ]
