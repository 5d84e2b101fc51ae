"""The pure delivery policy: tables of cases."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from publisher.core.config import Policy, Window
from publisher.core.policy import (
    Candidate,
    Idle,
    Post,
    PostedRecord,
    Skip,
    Verdict,
    Wait,
    explain,
    history_horizon,
    is_open,
    local_to_utc,
    next_post,
    next_window_opening,
)

UTC_ = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

# 2024-05-01 is a Wednesday.
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def ago(minutes: float, now: datetime = NOW) -> datetime:
    return now - timedelta(minutes=minutes)


def cand(
    id: int,
    source: str = "a",
    published: datetime | None = None,
    seq: int = 0,
    group: int | None = None,
    send_at: datetime | None = None,
    created_at: datetime | None = None,
    not_before: datetime | None = None,
) -> Candidate:
    return Candidate(
        id=id,
        source=source,
        item_key=f"{source}-{group or id}",
        created_at=created_at or ago(1),
        seq=seq,
        item_published=published,
        send_at=send_at,
        group=group if group is not None else id,
        not_before=not_before,
    )


def rec(source: str, posted_at: datetime, seq: int = 0) -> PostedRecord:
    return PostedRecord(source, posted_at, seq)


def window(start: str, end: str, days: tuple[str, ...] = ()) -> Window:
    h1, m1 = map(int, start.split(":"))
    h2, m2 = map(int, end.split(":"))
    if days:
        return Window(days=days, start=time(h1, m1), end=time(h2, m2))
    return Window(start=time(h1, m1), end=time(h2, m2))


def check(verdict: Verdict, expected: tuple[object, ...]) -> None:
    kind = expected[0]
    if kind == "post":
        assert isinstance(verdict, Post), verdict
        assert verdict.candidate.id == expected[1]
    elif kind == "wait":
        assert isinstance(verdict, Wait), verdict
        assert verdict.until == expected[1], (verdict.until, verdict.reason)
        assert str(expected[2]) in verdict.reason, verdict.reason
    elif kind == "skip":
        assert isinstance(verdict, Skip), verdict
        assert verdict.candidate.id == expected[1]
        assert str(expected[2]) in verdict.reason, verdict.reason
    else:
        raise AssertionError(kind)


# ---- rates and intervals


RATE_CASES = [
    pytest.param(
        Policy(max_per_hour=2),
        {},
        [rec("a", ago(55)), rec("a", ago(30))],
        ("wait", utc(2024, 5, 1, 12, 5), "rate limit: 2 per hour reached; next at 12:05 UTC"),
        id="per-hour-reached",
    ),
    pytest.param(
        Policy(max_per_hour=2),
        {},
        [rec("a", ago(61)), rec("a", ago(30))],
        ("post", 1),
        id="per-hour-one-fell-out",
    ),
    pytest.param(
        Policy(max_per_hour=2),
        {},
        [rec("a", ago(60)), rec("a", ago(30))],
        ("post", 1),
        id="per-hour-exactly-an-hour-ago-no-longer-counts",
    ),
    pytest.param(
        Policy(max_per_day=3),
        {},
        [rec("b", utc(2024, 4, 30, 13)), rec("a", utc(2024, 4, 30, 20)), rec("a", ago(240))],
        ("wait", utc(2024, 5, 1, 13), "rate limit: 3 per day reached; next at 13:00 UTC"),
        id="per-day-rolling-24h",
    ),
    pytest.param(
        Policy(max_per_day=3),
        {},
        [rec("a", utc(2024, 4, 30, 11)), rec("a", utc(2024, 4, 30, 20)), rec("a", ago(240))],
        ("post", 1),
        id="per-day-oldest-fell-out",
    ),
    pytest.param(
        Policy(min_interval=timedelta(minutes=10)),
        {},
        [rec("b", ago(5))],
        ("wait", utc(2024, 5, 1, 12, 5), "min_interval 10m: next at 12:05 UTC"),
        id="min-interval",
    ),
    pytest.param(
        Policy(min_interval=timedelta(minutes=10)),
        {},
        [rec("b", ago(7)), rec("b", ago(4), seq=1)],
        ("wait", utc(2024, 5, 1, 12, 6), "min_interval"),
        id="min-interval-from-last-message-of-split-item",
    ),
    pytest.param(
        Policy(max_per_hour=2),
        {},
        [rec("a", ago(50)), rec("a", ago(50) + timedelta(seconds=2), seq=1)],
        ("post", 1),
        id="per-hour-counts-items-not-messages",
    ),
    pytest.param(
        Policy(),
        {"a": Policy(max_per_hour=1)},
        [rec("a", ago(30))],
        ("wait", utc(2024, 5, 1, 12, 30), "source a: rate limit: 1 per hour reached"),
        id="source-limit-on-own-history",
    ),
    pytest.param(
        Policy(),
        {"a": Policy(max_per_hour=1)},
        [rec("b", ago(30)), rec("c", ago(20))],
        ("post", 1),
        id="source-limit-ignores-other-sources",
    ),
    pytest.param(
        Policy(max_per_hour=5),
        {"a": Policy(min_interval=timedelta(hours=2))},
        [rec("a", ago(90))],
        ("wait", utc(2024, 5, 1, 12, 30), "source a: min_interval 2h"),
        id="source-min-interval",
    ),
    pytest.param(
        Policy(min_interval=timedelta(minutes=5), timezone="Europe/Berlin"),
        {},
        [rec("a", ago(1))],
        ("wait", utc(2024, 5, 1, 12, 4), "next at 14:04 Europe/Berlin"),
        id="reason-in-channel-timezone",
    ),
    pytest.param(
        Policy(min_interval=timedelta(seconds=2)),
        {},
        [rec("a", ago(0.5 / 60))],
        ("wait", NOW + timedelta(seconds=1.5), "12:00:01"),
        id="seconds-shown-when-not-whole-minute",
    ),
]


@pytest.mark.parametrize(("channel", "sources", "history", "expected"), RATE_CASES)
def test_rates(
    channel: Policy,
    sources: Mapping[str, Policy],
    history: list[PostedRecord],
    expected: tuple[object, ...],
) -> None:
    check(next_post([cand(1, "a")], history, channel, sources, NOW), expected)


def test_empty_queue_is_idle() -> None:
    assert isinstance(next_post([], [], Policy(), {}, NOW), Idle)


@pytest.mark.parametrize(
    ("cooldown", "expected"),
    [
        (NOW + timedelta(minutes=5), ("wait", NOW + timedelta(minutes=5), "cooling down")),
        (NOW - timedelta(seconds=1), ("post", 1)),
        (None, ("post", 1)),
    ],
)
def test_cooldown_until(cooldown: datetime | None, expected: tuple[object, ...]) -> None:
    check(next_post([cand(1)], [], Policy(), {}, NOW, cooldown_until=cooldown), expected)


# ---- windows


WINDOW_CASES = [
    # (window, tz, now, is open now, next opening)
    pytest.param(
        window("08:00", "20:00"),
        UTC_,
        utc(2024, 5, 1, 7),
        False,
        utc(2024, 5, 1, 8),
        id="before-opening",
    ),
    pytest.param(
        window("08:00", "20:00"),
        UTC_,
        utc(2024, 5, 1, 12),
        True,
        utc(2024, 5, 1, 12),
        id="inside",
    ),
    pytest.param(
        window("08:00", "20:00"),
        UTC_,
        utc(2024, 5, 1, 20),
        False,
        utc(2024, 5, 2, 8),
        id="end-is-exclusive",
    ),
    pytest.param(
        window("08:00", "20:00", WEEKDAYS),
        UTC_,
        utc(2024, 5, 4, 10),
        False,
        utc(2024, 5, 6, 8),
        id="weekend-waits-for-monday",
    ),
    pytest.param(
        window("22:00", "06:00", ("fri",)),
        UTC_,
        utc(2024, 5, 3, 23),
        True,
        utc(2024, 5, 3, 23),
        id="midnight-crossing-evening",
    ),
    pytest.param(
        window("22:00", "06:00", ("fri",)),
        UTC_,
        utc(2024, 5, 4, 5, 59),
        True,
        utc(2024, 5, 4, 5, 59),
        id="midnight-crossing-next-morning-belongs-to-friday",
    ),
    pytest.param(
        window("22:00", "06:00", ("fri",)),
        UTC_,
        utc(2024, 5, 4, 6),
        False,
        utc(2024, 5, 10, 22),
        id="midnight-crossing-closed-saturday-morning",
    ),
    pytest.param(
        window("22:00", "06:00", ("fri",)),
        UTC_,
        utc(2024, 5, 3, 3),
        False,
        utc(2024, 5, 3, 22),
        id="midnight-crossing-friday-morning-is-thursdays",
    ),
    pytest.param(
        window("08:00", "20:00"),
        BERLIN,
        utc(2024, 5, 1, 5),
        False,
        utc(2024, 5, 1, 6),
        id="berlin-summer-time",
    ),
    pytest.param(
        window("08:00", "20:00"),
        BERLIN,
        utc(2024, 1, 10, 6, 30),
        False,
        utc(2024, 1, 10, 7),
        id="berlin-winter-time",
    ),
    # 2024-03-31 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    pytest.param(
        window("02:00", "03:30"),
        BERLIN,
        utc(2024, 3, 31, 0, 30),
        False,
        utc(2024, 3, 31, 1),
        id="spring-forward-opens-when-the-clock-jumps",
    ),
    pytest.param(
        window("02:30", "04:00"),
        BERLIN,
        utc(2024, 3, 31, 0, 30),
        False,
        utc(2024, 3, 31, 1),
        id="spring-forward-start-in-the-gap",
    ),
    pytest.param(
        window("02:00", "03:30"),
        BERLIN,
        utc(2024, 3, 31, 1, 15),
        True,
        utc(2024, 3, 31, 1, 15),
        id="spring-forward-inside-short-window",
    ),
    pytest.param(
        window("02:00", "03:30"),
        BERLIN,
        utc(2024, 3, 31, 1, 30),
        False,
        utc(2024, 4, 1, 0),
        id="spring-forward-window-lasts-30-minutes",
    ),
    pytest.param(
        window("02:15", "02:45", ("sun",)),
        BERLIN,
        utc(2024, 3, 30, 23),
        False,
        utc(2024, 4, 7, 0, 15),
        id="spring-forward-window-that-does-not-exist",
    ),
    # 2024-10-27 in Berlin: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
    pytest.param(
        window("02:00", "03:30"),
        BERLIN,
        utc(2024, 10, 26, 23),
        False,
        utc(2024, 10, 27, 0),
        id="fall-back-opens-at-first-0200",
    ),
    pytest.param(
        window("02:00", "03:30"),
        BERLIN,
        utc(2024, 10, 27, 1, 30),
        True,
        utc(2024, 10, 27, 1, 30),
        id="fall-back-repeated-hour-is-inside",
    ),
    pytest.param(
        window("02:00", "03:30"),
        BERLIN,
        utc(2024, 10, 27, 2, 29),
        True,
        utc(2024, 10, 27, 2, 29),
        id="fall-back-window-lasts-150-minutes",
    ),
    pytest.param(
        window("02:00", "03:30"),
        BERLIN,
        utc(2024, 10, 27, 2, 30),
        False,
        utc(2024, 10, 28, 1),
        id="fall-back-closes-at-0330-cet",
    ),
    # New York: 2024-03-10 02:00 EST → 03:00 EDT; 2024-11-03 02:00 EDT → 01:00 EST.
    pytest.param(
        window("09:00", "17:00", WEEKDAYS),
        NEW_YORK,
        utc(2024, 3, 8, 22, 30),
        False,
        utc(2024, 3, 11, 13),
        id="new-york-friday-evening-to-monday-after-dst",
    ),
    pytest.param(
        window("01:00", "01:30"),
        NEW_YORK,
        utc(2024, 11, 3, 4),
        False,
        utc(2024, 11, 3, 5),
        id="new-york-fall-back-first-0100",
    ),
    pytest.param(
        window("01:00", "01:30"),
        NEW_YORK,
        utc(2024, 11, 3, 5, 45),
        False,
        utc(2024, 11, 3, 6),
        id="new-york-fall-back-reopens-in-repeated-hour",
    ),
    pytest.param(
        window("23:00", "01:00", ("sat",)),
        NEW_YORK,
        utc(2024, 11, 3, 4, 30),
        True,
        utc(2024, 11, 3, 4, 30),
        id="new-york-crossing-window-over-fall-back",
    ),
    pytest.param(
        window("23:00", "01:00", ("sat",)),
        NEW_YORK,
        utc(2024, 11, 3, 5, 30),
        False,
        utc(2024, 11, 10, 4),
        id="new-york-crossing-window-does-not-reopen-in-repeated-hour",
    ),
    pytest.param(
        window("00:30", "01:30"),
        NEW_YORK,
        utc(2024, 11, 3, 5, 40),
        False,
        utc(2024, 11, 3, 6),
        id="new-york-fall-back-clock-turned-back-into-window",
    ),
]


@pytest.mark.parametrize(("win", "tz", "now", "open_now", "opening"), WINDOW_CASES)
def test_windows(
    win: Window, tz: ZoneInfo, now: datetime, open_now: bool, opening: datetime
) -> None:
    assert is_open(win, tz, now) is open_now
    assert next_window_opening(win, tz, now) == opening
    assert is_open(win, tz, opening)


@pytest.mark.parametrize(
    ("day", "clock", "tz", "expected"),
    [
        ((2024, 3, 31), time(2, 30), BERLIN, utc(2024, 3, 31, 1)),  # in the gap
        ((2024, 3, 31), time(3, 0), BERLIN, utc(2024, 3, 31, 1)),
        ((2024, 10, 27), time(2, 30), BERLIN, utc(2024, 10, 27, 0, 30)),  # first of two
        ((2024, 3, 10), time(2, 30), NEW_YORK, utc(2024, 3, 10, 7)),
        ((2024, 6, 1), time(8, 0), NEW_YORK, utc(2024, 6, 1, 12)),
    ],
)
def test_local_to_utc(
    day: tuple[int, int, int], clock: time, tz: ZoneInfo, expected: datetime
) -> None:
    from datetime import date

    assert local_to_utc(date(*day), clock, tz) == expected


POLICY_WINDOW_CASES = [
    pytest.param(
        Policy(window=window("08:00", "18:00", WEEKDAYS), timezone="Europe/Berlin"),
        {},
        [],
        utc(2024, 5, 4, 10),
        ("wait", utc(2024, 5, 6, 6), "outside posting window (opens Mon 08:00 Europe/Berlin)"),
        id="weekend-waits-never-dropped",
    ),
    pytest.param(
        Policy(window=window("08:00", "18:00", WEEKDAYS), timezone="Europe/Berlin"),
        {},
        [],
        utc(2024, 5, 6, 6),
        ("post", 1),
        id="monday-opening",
    ),
    pytest.param(
        Policy(max_per_hour=1, window=window("08:00", "12:00")),
        {},
        [rec("a", utc(2024, 5, 1, 11, 30))],
        utc(2024, 5, 1, 11, 45),
        ("wait", utc(2024, 5, 2, 8), "outside posting window (opens Thu 08:00 UTC)"),
        id="rate-pushes-past-window-end",
    ),
    pytest.param(
        Policy(),
        {"a": Policy(window=window("20:00", "23:00"), timezone="America/New_York")},
        [],
        utc(2024, 5, 1, 12),
        (
            "wait",
            utc(2024, 5, 2, 0),
            "source a: outside posting window (opens Wed 20:00 America/New_York)",
        ),
        id="source-window-in-its-own-timezone",
    ),
    pytest.param(
        Policy(window=window("09:00", "17:00"), timezone="UTC"),
        {"a": Policy(window=window("16:00", "20:00"))},
        [],
        utc(2024, 5, 1, 7),
        ("wait", utc(2024, 5, 1, 16), "source a: outside posting window"),
        id="both-windows-must-be-open",
    ),
    pytest.param(
        Policy(window=window("02:00", "03:30"), timezone="Europe/Berlin"),
        {},
        [],
        utc(2024, 3, 31, 0, 30),
        ("wait", utc(2024, 3, 31, 1), "opens Sun 03:00 Europe/Berlin"),
        id="spring-forward-window",
    ),
    # max_per_day is a rolling 24 real hours, also across a DST change.
    pytest.param(
        Policy(max_per_day=1, timezone="Europe/Berlin"),
        {},
        [rec("a", utc(2024, 10, 26, 10))],  # 12:00 CEST
        utc(2024, 10, 27, 8),  # 09:00 CET
        ("wait", utc(2024, 10, 27, 10), "1 per day reached; next at 11:00 Europe/Berlin"),
        id="per-day-across-fall-back-is-24-hours",
    ),
    pytest.param(
        Policy(max_per_day=1, timezone="Europe/Berlin"),
        {},
        [rec("a", utc(2024, 3, 30, 11))],  # 12:00 CET
        utc(2024, 3, 31, 8),  # 10:00 CEST
        ("wait", utc(2024, 3, 31, 11), "1 per day reached; next at 13:00 Europe/Berlin"),
        id="per-day-across-spring-forward-is-24-hours",
    ),
    pytest.param(
        Policy(max_per_day=1, timezone="America/New_York"),
        {},
        [rec("a", utc(2024, 11, 2, 16))],  # 12:00 EDT
        utc(2024, 11, 3, 12),
        ("wait", utc(2024, 11, 3, 16), "next at 11:00 America/New_York"),
        id="per-day-across-new-york-fall-back",
    ),
]


@pytest.mark.parametrize(("channel", "sources", "history", "now", "expected"), POLICY_WINDOW_CASES)
def test_windows_in_policy(
    channel: Policy,
    sources: Mapping[str, Policy],
    history: list[PostedRecord],
    now: datetime,
    expected: tuple[object, ...],
) -> None:
    queue = [cand(1, "a", created_at=now - timedelta(minutes=1))]
    check(next_post(queue, history, channel, sources, now), expected)


# ---- send_at and expiry


SCHEDULE_CASES = [
    pytest.param(
        [cand(1, send_at=NOW + timedelta(minutes=30))],
        Policy(),
        {},
        ("wait", NOW + timedelta(minutes=30), "scheduled for 12:30 UTC"),
        id="send-at-in-future",
    ),
    pytest.param(
        [cand(1, send_at=NOW - timedelta(minutes=1))],
        Policy(),
        {},
        ("post", 1),
        id="send-at-passed",
    ),
    pytest.param(
        [cand(1, published=ago(60), send_at=NOW + timedelta(days=1)), cand(2, published=ago(5))],
        Policy(),
        {},
        ("post", 2),
        id="scheduled-older-item-lets-newer-go",
    ),
    pytest.param(
        [cand(1, published=ago(2 * 24 * 60))],
        Policy(max_age=timedelta(days=1)),
        {},
        ("skip", 1, "expired: 2d old, older than max_age 1d (channel)"),
        id="channel-max-age",
    ),
    pytest.param(
        [cand(1, published=ago(120))],
        Policy(max_age=timedelta(days=1)),
        {"a": Policy(max_age=timedelta(hours=1))},
        ("skip", 1, "max_age 1h (source a)"),
        id="source-max-age-shorter",
    ),
    pytest.param(
        [cand(1, "b", published=ago(120))],
        Policy(),
        {"a": Policy(max_age=timedelta(hours=1))},
        ("post", 1),
        id="source-max-age-only-for-that-source",
    ),
    pytest.param(
        [cand(1, published=ago(36 * 60))],
        Policy(max_age=timedelta(days=1)),
        {"a": Policy(max_age=timedelta(days=2))},
        ("skip", 1, "(channel)"),
        id="the-shorter-max-age-wins",
    ),
    pytest.param(
        [cand(1, created_at=ago(120))],
        Policy(max_age=timedelta(hours=1)),
        {},
        ("skip", 1, "expired"),
        id="age-from-queuing-when-no-published-time",
    ),
    pytest.param(
        [cand(1, published=ago(5 * 24 * 60), send_at=ago(1))],
        Policy(max_age=timedelta(hours=1)),
        {},
        ("post", 1),
        id="age-from-send-at-for-scheduled-items",
    ),
    pytest.param(
        [cand(1, published=ago(30))],
        Policy(max_age=timedelta(hours=1), max_per_hour=1),
        {},
        ("post", 1),
        id="young-enough",
    ),
]


@pytest.mark.parametrize(("queue", "channel", "sources", "expected"), SCHEDULE_CASES)
def test_schedule_and_expiry(
    queue: list[Candidate],
    channel: Policy,
    sources: Mapping[str, Policy],
    expected: tuple[object, ...],
) -> None:
    check(next_post(queue, [], channel, sources, NOW), expected)


def test_expired_item_waiting_behind_limits_is_skipped_when_it_would_go() -> None:
    channel = Policy(max_per_hour=1, max_age=timedelta(hours=2))
    queue = [cand(1, published=ago(90))]
    history = [rec("a", ago(10))]
    first = next_post(queue, history, channel, {}, NOW)
    assert isinstance(first, Wait)
    later = first.until + timedelta(minutes=1)
    check(next_post(queue, history, channel, {}, later), ("skip", 1, "expired"))


# ---- order, fairness, split items


ORDER_CASES = [
    pytest.param(
        [cand(1, published=ago(5)), cand(2, published=ago(50)), cand(3, published=ago(20))],
        [],
        ("post", 2),
        id="oldest-published-first",
    ),
    pytest.param(
        [cand(2, created_at=ago(5)), cand(1, created_at=ago(5)), cand(3, published=ago(1))],
        [],
        ("post", 1),
        id="falls-back-to-created-at-then-id",
    ),
    pytest.param(
        [cand(1, "a", published=ago(50)), cand(2, "b", published=ago(5))],
        [rec("a", ago(30)), rec("b", ago(40))],
        ("post", 2),
        id="source-that-posted-least-recently-goes-first",
    ),
    pytest.param(
        [cand(1, "a", published=ago(50)), cand(2, "b", published=ago(5))],
        [rec("b", ago(40))],
        ("post", 1),
        id="a-source-that-never-posted-goes-first",
    ),
    pytest.param(
        [cand(1, "a", published=ago(50)), cand(2, "b", published=ago(5))],
        [],
        ("post", 1),
        id="tie-goes-to-the-oldest-item",
    ),
]


@pytest.mark.parametrize(("queue", "history", "expected"), ORDER_CASES)
def test_order(
    queue: list[Candidate], history: list[PostedRecord], expected: tuple[object, ...]
) -> None:
    check(next_post(queue, history, Policy(), {}, NOW), expected)


def test_a_source_held_by_its_own_limit_does_not_block_others() -> None:
    queue = [cand(1, "a", published=ago(100)), cand(2, "b", published=ago(1))]
    history = [rec("a", ago(10))]
    verdict = next_post(queue, history, Policy(), {"a": Policy(max_per_hour=1)}, NOW)
    check(verdict, ("post", 2))


def drain(
    queue: list[Candidate],
    channel: Policy,
    sources: Mapping[str, Policy],
    start: datetime,
    steps: int,
) -> list[Candidate]:
    """Run the policy like the deliverer would, posting instantly."""
    now = start
    history: list[PostedRecord] = []
    posted: list[Candidate] = []
    queue = list(queue)
    for _ in range(steps):
        verdict = next_post(queue, history, channel, sources, now)
        if isinstance(verdict, Idle):
            break
        if isinstance(verdict, Wait):
            now = verdict.until
            continue
        assert isinstance(verdict, Post | Skip)
        queue.remove(verdict.candidate)
        if isinstance(verdict, Post):
            history.append(rec(verdict.candidate.source, now, verdict.candidate.seq))
            posted.append(verdict.candidate)
    return posted


def test_round_robin_does_not_starve_a_quiet_source() -> None:
    busy = [cand(i, "busy", published=ago(200 - i)) for i in range(1, 21)]
    quiet = [cand(100, "quiet", published=ago(10)), cand(101, "quiet", published=ago(9))]
    posted = drain(busy + quiet, Policy(min_interval=timedelta(minutes=1)), {}, NOW, 200)
    ids = [c.id for c in posted]
    assert len(ids) == 22
    assert ids[:4] == [1, 100, 2, 101]
    assert [i for i in ids if i < 100] == list(range(1, 21)), "each source oldest first"


def test_round_robin_with_three_sources_under_a_channel_limit() -> None:
    queue = [cand(i, src, published=ago(300 - i)) for i, src in enumerate("aaaaabbbcc", 1)]
    posted = drain(queue, Policy(max_per_hour=3), {}, NOW, 100)
    assert [c.source for c in posted[:6]] == ["a", "b", "c", "a", "b", "c"]


SPLIT_CASES = [
    pytest.param(
        [cand(1, group=1), cand(2, seq=1, group=1)],
        [],
        Policy(),
        None,
        ("post", 1),
        id="first-message-first",
    ),
    pytest.param(
        [cand(2, seq=1, group=1), cand(1, group=1)],
        [],
        Policy(),
        None,
        ("post", 1),
        id="never-the-second-before-the-first",
    ),
    pytest.param(
        [cand(3, "b", published=ago(100)), cand(2, "a", seq=1, group=1, published=ago(1))],
        [rec("a", ago(1))],
        Policy(min_interval=timedelta(seconds=2)),
        None,
        ("post", 2),
        id="rest-of-item-goes-before-older-items",
    ),
    pytest.param(
        [cand(2, seq=1, group=1)],
        [rec("a", ago(5))],
        Policy(max_per_hour=1, window=window("00:00", "00:01")),
        None,
        ("post", 2),
        id="rest-of-item-not-held-by-counts-or-window",
    ),
    pytest.param(
        [cand(2, seq=1, group=1), cand(3, "b")],
        [rec("a", NOW - timedelta(seconds=1))],
        Policy(min_interval=timedelta(minutes=10)),
        None,
        ("wait", NOW + timedelta(seconds=1), "rest of the item follows"),
        id="rest-of-item-paced-by-a-short-gap",
    ),
    pytest.param(
        [cand(2, seq=1, group=1)],
        [rec("a", ago(5))],
        Policy(),
        NOW + timedelta(minutes=3),
        ("wait", NOW + timedelta(minutes=3), "cooling down"),
        id="rest-of-item-respects-cooldown",
    ),
    pytest.param(
        [cand(2, seq=1, group=1, published=ago(10_000))],
        [rec("a", ago(5))],
        Policy(max_age=timedelta(minutes=1)),
        None,
        ("post", 2),
        id="rest-of-item-never-expires",
    ),
    pytest.param(
        [cand(2, seq=1, group=1, not_before=NOW + timedelta(minutes=5)), cand(3, "b")],
        [rec("a", ago(1))],
        Policy(),
        None,
        ("wait", NOW + timedelta(minutes=5), "rest of the item is retried at 12:05"),
        id="rest-of-item-waiting-for-its-retry-holds-the-channel",
    ),
    pytest.param(
        [cand(2, seq=1, group=1, not_before=NOW), cand(3, "b")],
        [rec("a", ago(1))],
        Policy(),
        None,
        ("post", 2),
        id="rest-of-item-goes-when-its-retry-comes",
    ),
    pytest.param(
        [
            cand(2, seq=1, group=1, not_before=NOW + timedelta(minutes=5)),
            cand(5, "b", seq=1, group=4),
            cand(6, "c"),
        ],
        [rec("a", ago(2)), rec("b", ago(1))],
        Policy(),
        None,
        ("post", 5),
        id="of-two-started-items-the-ready-one-goes",
    ),
    pytest.param(
        [
            cand(1, not_before=NOW + timedelta(minutes=7)),
            cand(3, "b", send_at=NOW + timedelta(hours=1)),
        ],
        [],
        Policy(),
        None,
        ("wait", NOW + timedelta(minutes=7), "retried at 12:07"),
        id="a-first-message-waits-for-its-retry-too",
    ),
]


@pytest.mark.parametrize(("queue", "history", "channel", "cooldown", "expected"), SPLIT_CASES)
def test_split_items(
    queue: list[Candidate],
    history: list[PostedRecord],
    channel: Policy,
    cooldown: datetime | None,
    expected: tuple[object, ...],
) -> None:
    check(next_post(queue, history, channel, {}, NOW, cooldown_until=cooldown), expected)


def test_a_retried_rest_of_an_item_is_not_overtaken_while_draining() -> None:
    # Picture 2 of item 1 failed once and is retried in 10 minutes; item 3 is
    # older and ready, yet waits for it.
    queue = [
        cand(2, "a", published=ago(30), seq=1, group=1, not_before=NOW + timedelta(minutes=10)),
        cand(3, "b", published=ago(60)),
    ]
    history = [rec("a", ago(1))]
    verdict = next_post(queue, history, Policy(), {}, NOW)
    assert isinstance(verdict, Wait) and verdict.candidate is not None
    assert (verdict.until, verdict.candidate.id) == (NOW + timedelta(minutes=10), 2)
    posted = drain(queue, Policy(), {}, NOW, 10)
    assert [c.id for c in posted] == [2, 3]


def test_split_item_messages_stay_together_while_draining() -> None:
    queue = [
        cand(1, "a", published=ago(30), group=1),
        cand(2, "a", published=ago(30), seq=1, group=1),
        cand(3, "b", published=ago(20), group=3),
        cand(4, "b", published=ago(20), seq=1, group=3),
        cand(5, "c", published=ago(25)),
    ]
    posted = drain(queue, Policy(min_interval=timedelta(seconds=2)), {}, NOW, 50)
    assert [c.id for c in posted] == [1, 2, 5, 3, 4]


# ---- explain and helpers


def test_explain_for_status() -> None:
    queue = [
        cand(1, "a", published=ago(30), group=1),
        cand(2, "a", published=ago(30), seq=1, group=1),
        cand(3, "b", published=ago(10), send_at=NOW + timedelta(hours=1)),
        cand(4, "c", published=ago(5000)),
    ]
    result = explain(queue, [], Policy(max_age=timedelta(days=1)), {}, NOW)
    states = {e.candidate.id: (e.state, e.reason) for e in result}
    assert states[1][0] == "ready"
    assert states[2] == ("follows", "goes right after message #1")
    assert states[3][0] == "waiting" and "scheduled for 13:00 UTC" in states[3][1]
    assert states[4][0] == "expired"
    assert [e.candidate.id for e in result] == [4, 1, 2, 3]


def test_history_horizon_covers_the_longest_rule() -> None:
    assert history_horizon(Policy(), {}) >= timedelta(days=1)
    long = {"a": Policy(min_interval=timedelta(days=3))}
    assert history_horizon(Policy(), long) >= timedelta(days=3)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_post([cand(1)], [], Policy(), {}, datetime(2024, 5, 1, 12))
