"""Preview: what the next poll would post, computed by the real pipeline.

:func:`run_preview` is the poll pipeline without its writes
(:meth:`publisher.pipeline.poll.Poller.plan`: fetch, parse, plan, render,
with media written to a folder of the preview's own) followed by the
delivery policy run forward in time over the store's queue and history
(:mod:`publisher.pipeline.queue`: the question the deliverer asks). It posts
nothing and writes no state: :func:`publisher.compose.build_preview` opens
the store read-only (absent: an empty one in memory), feeds are fetched
without conditional headers, folder files are not moved.

:mod:`publisher.ui.preview` shows the result (cards, JSON Lines, a page).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Any

from publisher.core.config import Config, Policy, SourceConfig
from publisher.core.errors import MessageError, PublisherError
from publisher.core.items import Decision, Item, RenderedItem, RenderedMessage
from publisher.core.limits import CAPTION_MAX, TEXT_MAX, URL_TEXT_MAX
from publisher.core.messages import validate_payload
from publisher.core.plan import Planned
from publisher.core.policy import Candidate, Idle, PostedRecord, Skip, Verdict, Wait
from publisher.pipeline.poll import MAX_NEW_PER_POLL, Poller, Select, Step
from publisher.pipeline.queue import QueueView, decide, look, source_policies
from publisher.ports import Source, Store

#: The text cap of each message type, in UTF-16 units.
TEXT_CAPS = {"text": TEXT_MAX, "picture": CAPTION_MAX, "url": URL_TEXT_MAX}
#: The delivery simulation stops looking this far ahead.
SIMULATION_HORIZON = timedelta(days=60)


# --------------------------------------------------------------------------
# the model


@dataclass
class Delivery:
    """When the policy would send an item's first message."""

    #: "now", "later" or "expired"; "unknown" past the simulation horizon.
    state: str
    at: datetime | None = None
    reason: str = ""

    def describe(self, now: datetime) -> str:
        if self.state == "expired":
            return self.reason
        if self.state == "unknown":
            return self.reason or "not within the next 60 days"
        assert self.at is not None
        stamp = self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if self.state == "now":
            return f"now ({stamp})"
        wait = short_duration(self.at - now)
        return f"in {wait} ({stamp}): {self.reason}" if self.reason else f"in {wait} ({stamp})"


@dataclass
class PreviewEntry:
    """One item of one source and what would become of it."""

    source: str
    source_type: str
    item: Item
    #: plan action: queue, update, seen, queued, filtered, backfill, refused, expired
    action: str
    will_post: bool
    reason: str = ""
    messages: tuple[RenderedMessage, ...] = ()
    decisions: tuple[Decision, ...] = ()
    delivery: Delivery | None = None
    #: Messages that Viber would refuse (should never happen: a bug if it does).
    invalid: tuple[str, ...] = ()
    #: The channels it goes to (those whose route does not filter it out).
    channels: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.item.title or first_line(self.item.text) or self.item.key


@dataclass
class Preview:
    now: datetime
    entries: list[PreviewEntry] = field(default_factory=list)
    #: (source, message): a source that could not be read.
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: (source, message): remarks (folder problems, files still being written).
    notes: list[tuple[str, str]] = field(default_factory=list)
    #: Where the rendered media are (the temporary media dir).
    media_dir: Path | None = None
    public_url: str | None = None


# --------------------------------------------------------------------------
# building


def run_preview(
    config: Config,
    poller: Poller,
    sources: Sequence[Source],
    *,
    limit: int | None = None,
    new_only: bool = False,
    now: datetime,
    media_dir: Path,
) -> Preview:
    """Run the poll pipeline without its writes, and the delivery policy
    forward in time over the queue plus what would be queued.

    ``poller`` must be built over a store this changes nothing in (a
    read-only or empty one) and a transformer writing to ``media_dir``
    (a temporary folder). ``limit`` caps the items shown per source (new
    ones first); ``new_only`` leaves out items that will not be posted.
    """
    preview = Preview(now=now, media_dir=Path(media_dir), public_url=poller.transformer.public_url)
    store = poller.store
    select = _selector(limit, new_only)
    for source in sources:
        name = source.config.name
        try:
            plan = poller.plan(
                source, store.get_source(name), now, conditional=False, select=select
            )
        except (PublisherError, OSError) as exc:
            preview.errors.append((name, str(exc)))
            continue
        preview.notes.extend((name, note) for note in plan.read.notes)
        preview.notes.extend(
            (name, f"{pending}: still being written; taken on a later poll")
            for pending in plan.read.pending
        )
        if plan.waiting:
            preview.notes.append(
                (
                    name,
                    f"{plan.waiting} more new item(s) wait for later polls (at most "
                    f"{MAX_NEW_PER_POLL} are taken per poll); not shown",
                )
            )
        queued_keys = {row.item_key for row in store.outbox("queued", limit=100_000, source=name)}
        preview.entries.extend(
            _entry(source.config, step, store, queued_keys) for step in plan.steps
        )
    _simulate_delivery(config, store, preview)
    if new_only:
        preview.entries = [e for e in preview.entries if e.will_post]
    return preview


_ACTION_ORDER = {"queue": 0, "update": 0}


def _selector(limit: int | None, new_only: bool) -> Select:
    """What will be posted first (in the order it is queued), then the rest;
    only the new with ``new_only``; at most ``limit``."""

    def select(planned: list[Planned]) -> list[Planned]:
        planned = sorted(planned, key=lambda p: _ACTION_ORDER.get(p.action, 1))
        if new_only:
            planned = [p for p in planned if p.action in _ACTION_ORDER]
        return planned if limit is None else planned[:limit]

    return select


def _entry(source: SourceConfig, step: Step, store: Store, queued_keys: set[str]) -> PreviewEntry:
    item = step.item

    routed = tuple(c for c, _ in step.routes) or tuple(
        c for c in source.channels if c not in dict(step.held)
    )

    def make(action: str, will_post: bool, reason: str = "", **more: Any) -> PreviewEntry:
        return PreviewEntry(
            source.name, source.type, item, action, will_post, reason, channels=routed, **more
        )

    if step.action == "seen":
        if item.key in queued_keys:
            return make("queued", False, "already queued, not posted yet")
        seen = store.seen(source.name, item.key)
        outcome = f" ({_OUTCOMES.get(seen.outcome, seen.outcome)})" if seen else ""
        return make("seen", False, f"already seen{outcome}")
    if step.action in ("filtered", "backfill"):
        label = "filtered" if step.action == "filtered" else "backfill"
        return make(
            step.action,
            False,
            f"{label}: {step.detail}",
            decisions=(Decision(step.action, step.detail),),
        )
    rendered = step.rendered
    assert rendered is not None
    decisions = rendered.decisions
    if step.action == "refused":
        return make("refused", False, f"refused: {step.detail}", decisions=decisions)
    if step.action == "update":
        decisions = (Decision("update", step.detail), *decisions)
    return make(
        step.action,
        True,
        messages=rendered.messages,
        decisions=decisions,
        invalid=_invalid(rendered),
    )


_OUTCOMES = {
    "queued": "queued or posted before",
    "backfill-skipped": "skipped by the first-run backfill",
    "filtered": "filtered",
    "refused": "refused",
}


def _invalid(rendered: RenderedItem) -> tuple[str, ...]:
    problems: list[str] = []
    for message in rendered.messages:
        try:
            validate_payload(message.payload)
        except MessageError as exc:
            problems.append(str(exc))
    return tuple(problems)


# --------------------------------------------------------------------------
# the delivery policy, simulated


def _simulate_delivery(config: Config, store: Store, preview: Preview) -> None:
    """Run each channel's policy over its queue plus the new posts, advancing
    a virtual clock, and note when each new item would go (or that it
    expires); an entry shows its first channel's answer."""
    for channel in reversed(config.channels):
        mine = [e for e in preview.entries if e.will_post and channel.name in e.channels]
        if mine:
            _simulate_channel(config, store, preview.now, channel.name, mine)


def _simulate_channel(
    config: Config, store: Store, now: datetime, channel: str, entries: list[PreviewEntry]
) -> None:
    view = look(store, config, now, channel)
    queue = [row.candidate() for row in store.outbox("queued", limit=100_000, channel=channel)]
    next_id = max((c.id for c in queue), default=0) + 1_000_000
    ours: dict[int, PreviewEntry] = {}
    for entry in entries:
        group = next_id
        for seq, _message in enumerate(entry.messages):
            candidate = Candidate(
                id=next_id,
                source=entry.source,
                item_key=entry.item.key,
                created_at=now,
                seq=seq,
                item_published=entry.item.published,
                send_at=entry.item.send_at,
                group=group,
            )
            queue.append(candidate)
            if seq == 0:
                ours[candidate.id] = entry
            next_id += 1
    last_wait: dict[int, str] = {}
    for clock, verdict in run_policy(view, config, channel, queue, now):
        if isinstance(verdict, Wait):
            if verdict.candidate is not None:
                last_wait[verdict.candidate.id] = verdict.reason
            continue
        if isinstance(verdict, Idle):
            continue
        found = ours.get(verdict.candidate.id)
        if found is None:
            continue
        if isinstance(verdict, Skip):
            found.delivery = Delivery("expired", None, verdict.reason)
            if found.channels[0] == channel:
                found.will_post = False
                found.action = "expired"
                found.reason = verdict.reason
            continue
        state = "now" if clock <= now else "later"
        found.delivery = Delivery(state, clock, last_wait.get(verdict.candidate.id, ""))
    for entry in ours.values():
        if entry.delivery is None and entry.will_post:
            entry.delivery = Delivery("unknown", None, "not within the next 60 days")


def run_policy(
    view: QueueView,
    config: Config,
    channel: str,
    queue: Sequence[Candidate],
    now: datetime,
    horizon: timedelta = SIMULATION_HORIZON,
) -> Iterator[tuple[datetime, Verdict]]:
    """The deliverer's decisions over ``queue``, run forward in time from
    ``now`` with a virtual clock: each verdict with the time it is given. A
    post goes into the history, a skipped item leaves with all its messages,
    a wait moves the clock; it ends when the queue is empty or the clock is
    ``horizon`` past ``now``.

    Each verdict is :func:`publisher.pipeline.queue.decide`'s over the whole
    queue and history, asked over only what the policy looks at (as
    :meth:`publisher.ports.Outbox.heads` does for the deliverer), so a
    queue of 10,000 costs 10,000 cheap decisions, not 10,000 over 10,000:

    - of each queued item, its next message (the others follow it);
    - of the items whose next message is a first one, per source, send-at
      time and retry time (which alone decide when the rules allow it, and
      whether it is expired, in the policy's order), only the oldest;
    - of the history, what the limits count: each scope's (the channel's,
      each source's) last ``max_per_hour`` / ``max_per_day`` items, and
      its last message.
    """
    policies = source_policies(config, channel)
    pending = _Pending(queue)
    history = _Recent(view.history, config.channel(channel).delivery.policy, policies)
    clock = now
    for _ in range(len(queue) * 8 + 64):
        if clock - now > horizon:
            return
        verdict = decide(
            view,
            config,
            channel,
            queue=pending.candidates(),
            history=history.records(),
            now=clock,
            policies=policies,
        )
        yield clock, verdict
        if isinstance(verdict, Idle):
            return
        if isinstance(verdict, Wait):
            clock = max(verdict.until, clock + timedelta(microseconds=1))
        elif isinstance(verdict, Skip):
            pending.drop_item(verdict.candidate)
        else:
            pending.remove(verdict.candidate)
            history.add(PostedRecord(verdict.candidate.source, clock, verdict.candidate.seq))


class _Pending:
    """The simulated queue: every message, and what the policy looks at."""

    def __init__(self, queue: Iterable[Candidate]) -> None:
        items: dict[tuple[object, ...], list[Candidate]] = {}
        for candidate in queue:
            items.setdefault(candidate.group_key, []).append(candidate)
        #: Each item's messages still queued, its next one last.
        self._items = items
        #: The oldest first messages, per (source, send-at, retry time).
        self._heads: dict[tuple[object, ...], list[tuple[Any, Candidate]]] = {}
        #: The next message of started items, by id.
        self._rest: dict[int, Candidate] = {}
        for key, members in items.items():
            members.sort(key=lambda c: (c.seq, c.id), reverse=True)
            self._next(key)

    def _next(self, key: tuple[object, ...]) -> None:
        members = self._items.get(key)
        if not members:
            self._items.pop(key, None)
            return
        first = members[-1]
        if first.seq > 0:
            self._rest[first.id] = first
        else:
            heap = self._heads.setdefault((first.source, first.send_at, first.not_before), [])
            heapq.heappush(heap, (first.order_key, first))

    def _is_next(self, candidate: Candidate) -> bool:
        members = self._items.get(candidate.group_key)
        return members is not None and members[-1] is candidate

    def candidates(self) -> list[Candidate]:
        found = list(self._rest.values())
        for key, heap in list(self._heads.items()):
            while heap and not self._is_next(heap[0][1]):
                heapq.heappop(heap)
            if heap:
                found.append(heap[0][1])
            else:
                del self._heads[key]
        return found

    def remove(self, candidate: Candidate) -> None:
        """A message went out: its item's next one comes forward."""
        key = candidate.group_key
        members = self._items[key]
        members.remove(candidate)
        self._rest.pop(candidate.id, None)
        self._next(key)

    def drop_item(self, candidate: Candidate) -> None:
        """The item is skipped with all its messages."""
        for member in self._items.pop(candidate.group_key, []):
            self._rest.pop(member.id, None)


class _Recent:
    """Of the history, what :func:`publisher.core.policy.next_post` counts:
    per scope (the channel, each source) the last items its ``max_per_hour``
    and ``max_per_day`` count and its last message. Its verdicts over these
    are its verdicts over the whole history."""

    def __init__(
        self, records: Iterable[PostedRecord], channel: Policy, sources: Mapping[str, Policy]
    ) -> None:
        self._keep_channel = _counted(channel)
        self._keep = {name: _counted(policy) for name, policy in sources.items()}
        self._items: list[PostedRecord] = []
        self._last: PostedRecord | None = None
        self._source_items: dict[str, list[PostedRecord]] = {}
        self._source_last: dict[str, PostedRecord] = {}
        self._records: list[PostedRecord] | None = None
        for record in sorted(records, key=_posted_at):
            self.add(record)

    def add(self, record: PostedRecord) -> None:
        if record.seq == 0:
            _keep_last(self._items, record, self._keep_channel)
            mine = self._source_items.setdefault(record.source, [])
            _keep_last(mine, record, self._keep.get(record.source, 0))
        if self._last is None or record.posted_at >= self._last.posted_at:
            self._last = record
        last = self._source_last.get(record.source)
        if last is None or record.posted_at >= last.posted_at:
            self._source_last[record.source] = record
        self._records = None

    def records(self) -> list[PostedRecord]:
        if self._records is None:
            kept = [*self._items, *self._source_last.values()]
            kept.extend(chain.from_iterable(self._source_items.values()))
            if self._last is not None:
                kept.append(self._last)
            unique = {id(record): record for record in kept}
            self._records = sorted(unique.values(), key=_posted_at)
        return self._records


def _posted_at(record: PostedRecord) -> datetime:
    return record.posted_at


def _counted(policy: Policy) -> int:
    """How many of a scope's last items its limits count."""
    return max((n for n in (policy.max_per_hour, policy.max_per_day) if n is not None), default=0)


def _keep_last(records: list[PostedRecord], record: PostedRecord, keep: int) -> None:
    if keep:
        bisect.insort(records, record, key=_posted_at)
        if len(records) > keep:
            del records[0]


def short_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:80]
    return ""
