"""When each source is polled next: a pure function of its config, its last
result and ``now``.

Rules, in order:

1. A source never polled is due at once.
2. A source that answered is due ``every`` after its last poll, counted
   with the ``every`` in force *now* (a restart or reload with a new
   ``every`` applies at once).
3. A failing source backs off: ``every`` x 2^(failures - 1), at least
   ``every`` and at most ``max_backoff``; after ``pause_after`` failures in
   a row it is *paused*: still polled, every ``max_backoff``, so it resumes by
   itself once it answers.
4. What the server asked for is a floor on all of the above: a
   ``Retry-After`` (429, 503 or any answer) or a ``Cache-Control: max-age``.

Rules 3 and 4 are remembered as a *hold* (the state's ``next_poll``, "not
before"): the time before which the source is not polled, whatever its
``every``. Without a hold, only ``last_poll`` and ``every`` decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The largest exponent of the back-off (2^16 x every is far past any max_backoff).
_MAX_DOUBLINGS = 16


@dataclass(frozen=True)
class PollTiming:
    """What one poll decided about the next one."""

    #: The source is not polled before this (a back-off or a server's floor), or None.
    hold: datetime | None
    #: When it is due next, given the ``every`` in force at that poll.
    due: datetime
    #: Failed polls in a row, this one included (0 after a success).
    failures: int
    #: Paused: ``pause_after`` failures in a row or more.
    paused: bool
    #: Why it waits longer than ``every``, in words, or "".
    reason: str = ""


def backoff(every: timedelta, failures: int, max_backoff: timedelta) -> timedelta:
    """The wait after ``failures`` failed polls in a row (rule 3, unpaused)."""
    if failures <= 0:
        return every
    wait = every * (1 << min(failures - 1, _MAX_DOUBLINGS))
    return max(min(wait, max_backoff), every)


def after_poll(
    now: datetime,
    *,
    every: timedelta,
    ok: bool,
    previous_failures: int,
    floor: timedelta | None,
    max_backoff: timedelta,
    pause_after: int,
) -> PollTiming:
    """The timing after a poll at ``now`` that succeeded (``ok``) or failed,
    where the server asked to wait at least ``floor`` (rules 2 to 4)."""
    failures = 0 if ok else previous_failures + 1
    paused = not ok and failures >= pause_after
    wait = every
    reason = ""
    if not ok:
        wait = max_backoff if paused else backoff(every, failures, max_backoff)
        if wait > every:
            reason = f"back-off after {failures} failed poll(s) in a row"
    if floor is not None and floor > wait:
        wait = floor
        reason = "the server asked to wait (Retry-After / max-age)"
    hold = now + wait if wait > every else None
    return PollTiming(hold, now + wait, failures, paused, reason)


def due_at(
    every: timedelta,
    last_poll: datetime | None,
    hold: datetime | None,
    now: datetime,
) -> datetime:
    """When a source is due (rules 1 and 2, with the hold of rules 3 and 4)."""
    if last_poll is None:
        return now if hold is None else max(now, hold)
    due = last_poll + every
    if hold is not None and hold > due:
        return hold
    return due
