"""When may the next post go out, and which one: a pure function of the queue.

:func:`next_post` looks at what is queued (:class:`Candidate`), what was
posted lately (:class:`PostedRecord`), the channel's :class:`~publisher.config.Policy`,
each source's own policy and ``now``, and answers with a :data:`Verdict`:

- :class:`Post` this candidate now;
- :class:`Wait` until a time, with a reason a person can read
  (``"rate limit: 2 per hour reached; next at 14:05 Europe/Berlin"``);
- :class:`Skip` a candidate that is too old (``max_age``): it is never posted;
- :class:`Idle`: nothing is queued.

Rules, in the order they are applied:

1. **An item's messages stay together.** A split caption is two messages
   (``seq`` 0 and 1). Once the first is out, the rest go next, before any
   other item, paced by at most :data:`CONTINUATION_GAP` (less if the channel's
   ``min_interval`` is shorter) and by ``cooldown_until``; they are not held
   by windows, counts or ``max_age``. A later message is never posted while an
   earlier one of its item is still in the queue. A started item's next
   message waiting for its retry (``not_before``, the outbox's
   ``next_attempt_at``) still holds the channel: the verdict is Wait until its
   retry time, and no other item goes meanwhile. Only once it is skipped,
   failed or held as ``unknown`` (then it is no longer queued) may other items
   go. Of several started items, the one whose next message can go first goes
   (the lowest id of those ready).
2. **Expiry.** A first message older than ``max_age`` (the channel's or its
   source's, whichever is shorter) is skipped. Its age counts from ``send_at``,
   else from the item's published time, else from when it was queued.
3. **Limits.** The channel's policy applies to the channel's whole history, a
   source's policy to that source's history; both must allow the post.
   ``max_per_hour`` / ``max_per_day`` count *items* (first messages) in the
   rolling last 1 / 24 hours (real hours: a day across a DST change is still
   24 hours); ``min_interval`` counts from the last message of any item.
   Posting windows are local wall-clock times in the policy's timezone, may
   cross midnight (``22:00``-``06:00``: the listed day is the day the window
   opens) and are DST-correct (a window starting in a skipped hour opens when
   the clock jumps; one in a repeated hour lasts the longer real time).
   Outside the window posts wait; they are never dropped. ``send_at``,
   ``cooldown_until`` (Viber said "too many requests") and a message's own
   retry time ``not_before`` are floors.
4. **Fairness and order.** Among sources with a post allowed now, the source
   that posted least recently goes first (round-robin), and it posts its
   oldest eligible item (by published time, else queuing time, else id). So
   one busy source cannot starve the others.

All datetimes are timezone-aware; times are compared as instants and turned
into local time only to evaluate windows and to word reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from publisher.core.config import DAYS, Policy, Window, format_duration

#: A split item's later messages follow its first after at most this long.
CONTINUATION_GAP = timedelta(seconds=2)

_HOUR = timedelta(hours=1)
_DAY = timedelta(hours=24)
_NEVER = datetime.min.replace(tzinfo=UTC)
_NO_POLICY = Policy()


# --------------------------------------------------------------------------
# inputs and outputs


@dataclass(frozen=True)
class Candidate:
    """One queued message, as the policy sees it (an outbox row)."""

    id: int
    source: str
    item_key: str
    created_at: datetime
    seq: int = 0
    item_published: datetime | None = None
    send_at: datetime | None = None
    #: Messages of one queued item share a group (the id of its first message).
    group: int | None = None
    #: Not tried before this instant: its retry time after a failed attempt
    #: (the outbox's ``next_attempt_at``), None when it has none.
    not_before: datetime | None = None

    @property
    def group_key(self) -> tuple[object, ...]:
        if self.group is not None:
            return ("group", self.group)
        return ("item", self.source, self.item_key)

    @property
    def order_key(self) -> tuple[datetime, datetime, int, int]:
        """Oldest first: published time, else queuing time; then id, seq."""
        return (self.item_published or self.created_at, self.created_at, self.id, self.seq)


@dataclass(frozen=True)
class PostedRecord:
    """A message that went out: who posted it and when."""

    source: str
    posted_at: datetime
    seq: int = 0


@dataclass(frozen=True)
class Post:
    candidate: Candidate
    reason: str = ""


@dataclass(frozen=True)
class Wait:
    until: datetime
    reason: str
    #: The candidate that can go first at ``until`` (None if not about one).
    candidate: Candidate | None = None


@dataclass(frozen=True)
class Skip:
    candidate: Candidate
    reason: str


@dataclass(frozen=True)
class Idle:
    reason: str = "nothing queued"


Verdict = Post | Wait | Skip | Idle


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` says about one queued message."""

    candidate: Candidate
    #: "ready", "waiting", "expired" or "follows" (after an earlier message of its item).
    state: str
    #: When it could go, given what was posted so far (None if never / after another).
    ready_at: datetime | None
    reason: str


# --------------------------------------------------------------------------
# windows


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


def _day_set(window: Window) -> frozenset[str]:
    return frozenset(d.lower()[:3] for d in window.days)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def is_open(window: Window, tz: ZoneInfo, instant: datetime) -> bool:
    """Whether the window is open at ``instant`` (local wall clock in ``tz``)."""
    _require_aware(instant, "instant")
    days = _day_set(window)
    local = _wall(instant, tz)
    day = DAYS[local.weekday()]
    clock = local.time()
    if window.start < window.end:
        return day in days and window.start <= clock < window.end
    previous = DAYS[(local.weekday() - 1) % 7]
    return (day in days and clock >= window.start) or (previous in days and clock < window.end)


def local_to_utc(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The first instant at which the wall clock in ``tz`` reads ``clock`` or
    later on ``day``: the first of two when the hour repeats (fall back), the
    moment the clock jumps when that time does not exist (spring forward)."""
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == naive:
        return first
    # In a gap: fold=1 maps to an instant before the jump, fold=0 after it.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _first_instant(min(lo, first), max(lo, first), lambda t: _wall(t, tz) >= naive)


def _first_instant(lo: datetime, hi: datetime, reached: Callable[[datetime], bool]) -> datetime:
    """The first instant in (lo, hi] at which ``reached`` (monotone) holds."""
    step = timedelta(microseconds=1)
    while hi - lo > step:
        mid = lo + (hi - lo) // 2
        if reached(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _transition(day: date, tz: ZoneInfo) -> datetime | None:
    """The instant the UTC offset changes on ``day`` (local), if it does."""
    start = local_to_utc(day, time(0), tz)
    end = local_to_utc(day + timedelta(days=1), time(0), tz)
    before, after = start.astimezone(tz).utcoffset(), end.astimezone(tz).utcoffset()
    if before == after:
        return None
    return _first_instant(start, end, lambda t: t.astimezone(tz).utcoffset() == after)


def next_window_opening(window: Window, tz: ZoneInfo, now: datetime) -> datetime:
    """The earliest instant at or after ``now`` at which the window is open
    (``now`` itself when it is open). Raises ValueError if it never opens.

    A window opens when the wall clock reaches its start (either time, when
    the hour repeats) or when the clock is turned into it (DST change).
    """
    _require_aware(now, "now")
    now = now.astimezone(UTC)
    if is_open(window, tz, now):
        return now
    today = _wall(now, tz).date()
    candidates: set[datetime] = set()
    for offset in range(9):
        day = today + timedelta(days=offset)
        naive = datetime.combine(day, window.start)
        candidates.add(local_to_utc(day, window.start, tz))
        candidates.add(naive.replace(tzinfo=tz, fold=1).astimezone(UTC))
        transition = _transition(day, tz)
        if transition is not None:
            candidates.add(transition)
        # Every candidate of a later day lies after all of this day's.
        opening = min((c for c in candidates if c > now and is_open(window, tz, c)), default=None)
        if opening is not None:
            return opening
    raise ValueError(f"the posting window {window} never opens")


# --------------------------------------------------------------------------
# wording


def _when(instant: datetime, tz: ZoneInfo, now: datetime) -> str:
    local = instant.astimezone(tz)
    clock = "%H:%M:%S" if local.second or local.microsecond else "%H:%M"
    if local.date() != now.astimezone(tz).date():
        clock = "%a %d %b " + clock
    return f"{local.strftime(clock)} {tz.key}"


def _per(n: int, period: timedelta) -> str:
    return f"{n} per {'hour' if period == _HOUR else 'day'}"


# --------------------------------------------------------------------------
# the decision


@dataclass
class _Scope:
    """One policy applied to one history: the channel's, or a source's."""

    label: str
    policy: Policy
    #: Times of first messages (items), oldest first.
    items: list[datetime] = field(default_factory=list)
    #: Time of the last message of any kind.
    last: datetime | None = None


@dataclass
class _Earliest:
    at: datetime
    reason: str = ""

    def push(self, instant: datetime, reason: str) -> None:
        if instant > self.at:
            self.at = instant
            self.reason = reason


def _scope(label: str, policy: Policy, history: Iterable[PostedRecord]) -> _Scope:
    scope = _Scope(label, policy)
    for record in sorted(history, key=lambda r: r.posted_at):
        if record.seq == 0:
            scope.items.append(record.posted_at)
        scope.last = record.posted_at
    return scope


def _earliest(
    candidate: Candidate,
    scopes: Sequence[_Scope],
    now: datetime,
    cooldown_until: datetime | None,
    tz: ZoneInfo,
) -> _Earliest:
    """The first instant at which every rule allows this first message."""
    result = _Earliest(now)
    if candidate.send_at is not None:
        send_at = candidate.send_at
        result.push(send_at, f"scheduled for {_when(send_at, tz, now)}")
    if cooldown_until is not None:
        until = cooldown_until
        result.push(until, f"Viber rate limit: cooling down until {_when(until, tz, now)}")
    if candidate.not_before is not None:
        retry = candidate.not_before
        result.push(retry, f"retried at {_when(retry, tz, now)}")
    for _ in range(64):
        before = result.at
        for scope in scopes:
            policy, label = scope.policy, scope.label
            for limit, period in ((policy.max_per_hour, _HOUR), (policy.max_per_day, _DAY)):
                if limit is not None and len(scope.items) >= limit:
                    at = scope.items[-limit] + period
                    if at > result.at:
                        result.push(
                            at,
                            f"{label}rate limit: {_per(limit, period)} reached; "
                            f"next at {_when(at, tz, now)}",
                        )
            if policy.min_interval is not None and scope.last is not None:
                at = scope.last + policy.min_interval
                if at > result.at:
                    result.push(
                        at,
                        f"{label}min_interval {format_duration(policy.min_interval)}: "
                        f"next at {_when(at, tz, now)}",
                    )
        for scope in scopes:
            window = scope.policy.window
            if window is None:
                continue
            wtz = scope.policy.tz
            at = next_window_opening(window, wtz, result.at)
            if at > result.at:
                local = at.astimezone(wtz)
                result.push(
                    at,
                    f"{scope.label}outside posting window (opens {local:%a %H:%M} {wtz.key})",
                )
        if result.at == before:
            return result
    return result  # pragma: no cover - the rules converge in a few rounds


def _expiry(candidate: Candidate, channel: Policy, source: Policy, now: datetime) -> str | None:
    limits = [
        (policy.max_age, label)
        for policy, label in ((channel, "channel"), (source, f"source {candidate.source}"))
        if policy.max_age is not None
    ]
    if not limits:
        return None
    max_age, label = min(limits, key=lambda pair: pair[0])
    reference = candidate.send_at or candidate.item_published or candidate.created_at
    age = now - reference
    if age <= max_age:
        return None
    return (
        f"expired: {format_duration(age)} old, older than max_age "
        f"{format_duration(max_age)} ({label})"
    )


@dataclass
class _Plan:
    heads: list[Candidate]
    continuations: list[Candidate]
    followers: list[tuple[Candidate, Candidate]]


def _plan(queue: Sequence[Candidate]) -> _Plan:
    """Split the queue: the next message of each item, and those that follow."""
    groups: dict[tuple[object, ...], list[Candidate]] = {}
    for candidate in sorted(queue, key=lambda c: c.order_key):
        groups.setdefault(candidate.group_key, []).append(candidate)
    plan = _Plan([], [], [])
    for members in groups.values():
        members.sort(key=lambda c: (c.seq, c.id))
        first = members[0]
        (plan.continuations if first.seq > 0 else plan.heads).append(first)
        plan.followers.extend((m, first) for m in members[1:])
    plan.heads.sort(key=lambda c: c.order_key)
    plan.continuations.sort(key=lambda c: c.id)
    return plan


def _continuation_at(
    candidate: Candidate,
    channel: _Scope,
    now: datetime,
    cooldown_until: datetime | None,
    tz: ZoneInfo,
) -> _Earliest:
    result = _Earliest(now)
    if channel.last is not None:
        gap = CONTINUATION_GAP
        if channel.policy.min_interval is not None:
            gap = min(gap, channel.policy.min_interval)
        at = channel.last + gap
        result.push(at, f"rest of the item follows at {_when(at, tz, now)}")
    if cooldown_until is not None:
        until = cooldown_until
        result.push(until, f"Viber rate limit: cooling down until {_when(until, tz, now)}")
    if candidate.not_before is not None:
        retry = candidate.not_before
        result.push(retry, f"rest of the item is retried at {_when(retry, tz, now)}")
    return result


class _Context:
    def __init__(
        self,
        history: Sequence[PostedRecord],
        channel: Policy,
        source_policies: Mapping[str, Policy],
        now: datetime,
        cooldown_until: datetime | None,
    ) -> None:
        _require_aware(now, "now")
        if cooldown_until is not None:
            _require_aware(cooldown_until, "cooldown_until")
        self.now = now.astimezone(UTC)
        self.cooldown_until = cooldown_until
        self.channel = channel
        self.source_policies = source_policies
        self.tz = channel.tz
        self.history = history
        self.channel_scope = _scope("", channel, history)
        self._sources: dict[str, _Scope] = {}
        self._earliest: dict[tuple[str, datetime | None, datetime | None], _Earliest] = {}

    def source_policy(self, source: str) -> Policy:
        return self.source_policies.get(source, _NO_POLICY)

    def source_scope(self, source: str) -> _Scope:
        if source not in self._sources:
            self._sources[source] = _scope(
                f"source {source}: ",
                self.source_policy(source),
                (r for r in self.history if r.source == source),
            )
        return self._sources[source]

    def earliest(self, candidate: Candidate) -> _Earliest:
        # Only the source, send_at and retry time tell candidates apart here:
        # compute once per triple.
        key = (candidate.source, candidate.send_at, candidate.not_before)
        if key not in self._earliest:
            scopes = (self.channel_scope, self.source_scope(candidate.source))
            found = _earliest(candidate, scopes, self.now, self.cooldown_until, self.tz)
            self._earliest[key] = found
        found = self._earliest[key]
        return _Earliest(found.at, found.reason)

    def expiry(self, candidate: Candidate) -> str | None:
        return _expiry(candidate, self.channel, self.source_policy(candidate.source), self.now)

    def continuation(self, candidate: Candidate) -> _Earliest:
        return _continuation_at(
            candidate, self.channel_scope, self.now, self.cooldown_until, self.tz
        )


def next_post(
    queue: Sequence[Candidate],
    history: Sequence[PostedRecord],
    channel: Policy,
    source_policies: Mapping[str, Policy],
    now: datetime,
    cooldown_until: datetime | None = None,
) -> Verdict:
    """What the deliverer does next; see the module docstring for the rules.

    ``history`` must reach back at least :func:`history_horizon`; more is harmless.
    """
    if not queue:
        return Idle()
    ctx = _Context(history, channel, source_policies, now, cooldown_until)
    plan = _plan(queue)

    if plan.continuations:
        # A started item holds the channel, even while its next message waits
        # for its retry; of several, the one that can go first (then by id).
        ready, candidate = min(
            ((ctx.continuation(c), c) for c in plan.continuations),
            key=lambda pair: (pair[0].at, pair[1].id),
        )
        if ready.at <= ctx.now:
            return Post(candidate, "rest of an item already started")
        return Wait(ready.at, ready.reason, candidate)

    for candidate in plan.heads:
        expired = ctx.expiry(candidate)
        if expired is not None:
            return Skip(candidate, expired)

    best_wait: tuple[_Earliest, Candidate] | None = None
    eligible: dict[str, Candidate] = {}
    for candidate in plan.heads:  # oldest first
        if candidate.source in eligible:
            continue
        earliest = ctx.earliest(candidate)
        if earliest.at <= ctx.now:
            eligible[candidate.source] = candidate
        elif best_wait is None or earliest.at < best_wait[0].at:
            best_wait = (earliest, candidate)

    if eligible:

        def fairness(source: str) -> tuple[datetime, tuple[datetime, datetime, int, int]]:
            last = ctx.source_scope(source).last
            return (last or _NEVER, eligible[source].order_key)

        source = min(eligible, key=fairness)
        return Post(eligible[source])
    assert best_wait is not None
    earliest, candidate = best_wait
    return Wait(earliest.at, earliest.reason, candidate)


def explain(
    queue: Sequence[Candidate],
    history: Sequence[PostedRecord],
    channel: Policy,
    source_policies: Mapping[str, Policy],
    now: datetime,
    cooldown_until: datetime | None = None,
) -> list[Explanation]:
    """For ``status``: each queued message, oldest first, with when it could
    go given what was posted so far (each post moves the others later)."""
    ctx = _Context(history, channel, source_policies, now, cooldown_until)
    plan = _plan(queue)
    result: list[Explanation] = []
    for candidate in plan.continuations:
        ready = ctx.continuation(candidate)
        state = "ready" if ready.at <= ctx.now else "waiting"
        result.append(
            Explanation(
                candidate, state, ready.at, ready.reason or "rest of an item already started"
            )
        )
    for candidate in plan.heads:
        expired = ctx.expiry(candidate)
        if expired is not None:
            result.append(Explanation(candidate, "expired", None, expired))
            continue
        earliest = ctx.earliest(candidate)
        if earliest.at <= ctx.now:
            result.append(Explanation(candidate, "ready", earliest.at, "may be posted now"))
        else:
            result.append(Explanation(candidate, "waiting", earliest.at, earliest.reason))
    for follower, first in plan.followers:
        result.append(
            Explanation(follower, "follows", None, f"goes right after message #{first.id}")
        )
    order = {c.id: i for i, c in enumerate(sorted(queue, key=lambda c: c.order_key))}
    result.sort(key=lambda e: order.get(e.candidate.id, len(order)))
    return result


def history_horizon(channel: Policy, source_policies: Mapping[str, Policy]) -> timedelta:
    """How far back :func:`next_post` needs the history."""
    horizon = _DAY
    for policy in (channel, *source_policies.values()):
        if policy.min_interval is not None:
            horizon = max(horizon, policy.min_interval)
    return horizon + CONTINUATION_GAP
