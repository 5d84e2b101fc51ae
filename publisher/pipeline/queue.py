"""What goes next, and why: the one question the deliverer, ``status`` and
``preview`` all ask, answered in one place.

:func:`look` reads what the delivery policy needs from the store (the head
of each source's due queue, the rest of a started item even while it waits
for its retry, the recent history, the cool-down, whether posting is stopped,
the next retry); :func:`decide` asks the pure policy
(:func:`publisher.core.policy.next_post`); :func:`in_words` says the answer
as ``status`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from publisher.core.config import Config, Policy
from publisher.core.policy import (
    Candidate,
    Idle,
    Post,
    PostedRecord,
    Skip,
    Verdict,
    Wait,
    history_horizon,
    next_post,
)
from publisher.core.records import OutboxRow
from publisher.ports import Store


@dataclass(frozen=True)
class QueueView:
    """The store's answer to "what may the policy choose from, now"."""

    now: datetime
    #: Queued messages whose retry time (if any) has come, as the policy sees
    #: them: each source's head candidates and the rest of started items
    #: (:meth:`publisher.ports.Outbox.heads`), not the whole queue. The rest of
    #: a started item is here even while it waits for its retry (its
    #: ``not_before``): it holds the channel until then.
    due: tuple[Candidate, ...]
    history: tuple[PostedRecord, ...]
    cooldown_until: datetime | None
    #: Why posting is stopped (a refused token...), or None.
    stopped: str | None
    #: The queued message retried soonest after ``now``, if any.
    next_retry: OutboxRow | None


@dataclass(frozen=True)
class NextUp:
    """The answer in words: ``state`` is now, waiting, idle or stopped."""

    state: str
    at: datetime | None
    post: int | None
    reason: str


def source_policies(config: Config, channel: str | None = None) -> dict[str, Policy]:
    """Each source's own policy (those routed to ``channel``, or all)."""
    return {
        source.name: source.policy
        for source in config.sources
        if channel is None or channel in source.channels
    }


def _policy(config: Config, channel: str | None) -> Policy:
    return config.channel(channel).delivery.policy if channel else config.delivery.policy


def look(store: Store, config: Config, now: datetime, channel: str | None = None) -> QueueView:
    """Read what ``channel``'s policy needs, through indexes (each source's
    head candidates, the rest of a started item, the recent history, the
    next retry): about as cheap at 10,000 queued as at 100. The first
    channel when none is named."""
    channel = channel or config.channels[0].name
    horizon = history_horizon(_policy(config, channel), source_policies(config, channel))
    state = store.channel(channel)
    return QueueView(
        now=now,
        due=tuple(row.candidate() for row in store.heads(now, channel=channel)),
        history=tuple(store.history_since(now - horizon, channel=channel)),
        cooldown_until=state.cooldown_until(),
        stopped=state.stopped_reason(),
        next_retry=store.next_retry(now, channel=channel),
    )


def decide(
    view: QueueView,
    config: Config,
    channel: str | None = None,
    *,
    queue: Sequence[Candidate] | None = None,
    history: Sequence[PostedRecord] | None = None,
    now: datetime | None = None,
    policies: Mapping[str, Policy] | None = None,
) -> Verdict:
    """The policy's verdict over ``view`` (or over a simulated ``queue`` and
    ``history`` at ``now``, as ``preview`` runs it forward in time)."""
    return next_post(
        view.due if queue is None else queue,
        view.history if history is None else history,
        _policy(config, channel),
        source_policies(config, channel) if policies is None else policies,
        view.now if now is None else now,
        cooldown_until=view.cooldown_until,
    )


def in_words(view: QueueView, config: Config, tz: tzinfo, channel: str | None = None) -> NextUp:
    """When the next post may go, and why it waits (what ``status`` shows)."""
    now = view.now
    if view.stopped:
        return NextUp("stopped", None, None, f"posting stopped: {view.stopped}")
    verdict = decide(view, config, channel)
    if isinstance(verdict, Post):
        return NextUp("now", now, verdict.candidate.id, "due now")
    if isinstance(verdict, Skip):
        reason = f"post {verdict.candidate.id} is skipped next: {verdict.reason}"
        return NextUp("now", now, verdict.candidate.id, reason)
    if isinstance(verdict, Wait):
        post = verdict.candidate.id if verdict.candidate else None
        return NextUp("waiting", verdict.until, post, verdict.reason)
    assert isinstance(verdict, Idle)
    row = view.next_retry
    if row is not None and row.next_attempt_at is not None:
        local = row.next_attempt_at.astimezone(tz)
        name = getattr(tz, "key", str(tz))
        reason = f"post {row.id} is retried at {local:%H:%M:%S} {name}: {row.reason}"
        return NextUp("waiting", row.next_attempt_at, row.id, reason)
    return NextUp("idle", None, None, "nothing queued")
