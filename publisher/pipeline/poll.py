"""The poll stage, written once: read a source, plan its items, render them,
then apply the result.

::

    Poller.plan(source)   read → plan → render           writes nothing
    Poller.apply(plan)    seen keys, outbox, source state, files of finished items
    Poller.poll(source)   both, and the schedule; never raises

``preview`` runs :meth:`Poller.plan` alone (with its own media folder and a
read-only store): what it shows is what :meth:`Poller.apply` would queue.

A failure of one source is a value (:class:`PollOutcome`), recorded on the
source with its back-off (:mod:`publisher.core.schedule`); after ``[alerts]
source_failures`` polls in a row the source is paused and alerted on, and it
resumes by itself when it answers again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from publisher.core import schedule
from publisher.core.config import Config, SourceConfig
from publisher.core.errors import FetchError, MediaError, PublisherError, SourceError, StoreError
from publisher.core.identity import comparable
from publisher.core.items import Decision, Item, RenderedItem
from publisher.core.plan import Planned, matches_filters, plan_source
from publisher.core.records import FINISHED, SourceRead, SourceState
from publisher.pipeline.transform import Transformer
from publisher.ports import Alerts, Clock, Metrics, Source, Store

log = logging.getLogger(__name__)

#: Chooses which planned items are rendered (preview: ``--limit``, ``--new-only``).
Select = Callable[[list[Planned]], list[Planned]]

#: At most this many new items are rendered and queued by one poll; the rest
#: (10,000 files dropped in a folder at once) wait for the next polls, in
#: order. Rendering is the costly part (a picture is decoded and re-encoded),
#: and what one poll renders is queued only when it ends.
MAX_NEW_PER_POLL = 100


@dataclass(frozen=True)
class Step:
    """One item of a poll and what becomes of it.

    ``action``: ``queue``/``update`` (rendered, to be queued), ``seen``,
    ``filtered``, ``backfill`` (remembered, not posted) or ``refused``
    (rendering found nothing Viber would take).
    """

    item: Item
    action: str
    detail: str = ""
    rendered: RenderedItem | None = None
    #: Each channel the item goes to, with its rendering for that channel
    #: (one rendering shared by channels that see the source alike).
    routes: tuple[tuple[str, RenderedItem], ...] = ()
    #: Channels whose own route filtered the item out: (channel, why).
    held: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PollPlan:
    source: str
    now: datetime
    read: SourceRead
    steps: tuple[Step, ...] = ()
    #: New items left for the next poll (over :data:`MAX_NEW_PER_POLL`).
    waiting: int = 0
    #: ``(key, content_hash)`` of items seen before whose stored hash was
    #: made another way (:func:`~publisher.core.identity.comparable`): stored.
    rehash: tuple[tuple[str, str], ...] = ()


@dataclass
class PollOutcome:
    """What one poll of one source did (a value, never an exception)."""

    source: str
    ok: bool
    result: str = "ok"  # ok, not_modified, unchanged, error, elsewhere (another replica)
    error: str | None = None
    queued: int = 0
    seen: int = 0
    filtered: int = 0
    refused: int = 0
    #: Folder items finished before a stop whose files were moved only now.
    recovered: int = 0
    decisions: list[Decision] = field(default_factory=list)
    fetch_seconds: float | None = None


def _cap(planned: list[Planned], limit: int) -> tuple[list[Planned], int]:
    """The planned items with at most ``limit`` to post (the first ones, in
    the source's order), and how many more were left for the next poll."""
    kept: list[Planned] = []
    taken = waiting = 0
    for p in planned:
        if p.action in ("queue", "update"):
            if taken >= limit:
                waiting += 1
                continue
            taken += 1
        kept.append(p)
    return kept, waiting


class Poller:
    """Polls sources into the store. ``config`` is read at each poll, so a
    reload that replaces it applies to the next poll."""

    def __init__(
        self,
        config: Config,
        store: Store,
        transformer: Transformer,
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.transformer = transformer
        self.clock = clock
        self.metrics = metrics
        self.alerts = alerts
        #: Polls of unchanged sources not written yet (``defer_unchanged``):
        #: (source, time, the fields of ``record_poll``), oldest first.
        self._unchanged: list[tuple[str, datetime, dict[str, Any]]] = []
        self._unchanged_lock = threading.Lock()

    # -- read → plan → render (no writes) ------------------------------------

    def plan(
        self,
        source: Source,
        state: SourceState,
        now: datetime,
        *,
        conditional: bool = True,
        select: Select | None = None,
    ) -> PollPlan:
        """Read ``source`` and decide about each of its items; raises
        SourceError (and MediaError, OSError) when the source cannot be read."""
        name = source.config.name
        read = source.read(state, now, conditional=conditional)
        if read.result != "ok":
            return PollPlan(name, now, read)

        # One read for every item of the poll, not one per item.
        known = self.store.seen_many(name, (item.key for item in read.items))

        def known_hash(key: str) -> str | None:
            seen = known.get(key)
            return None if seen is None else seen.content_hash

        planned = plan_source(source.config, read.items, known_hash, first_run=read.first_run)
        if select is not None:
            planned = select(planned)
        planned, waiting = _cap(planned, MAX_NEW_PER_POLL)
        steps = [self._render(source, p) for p in planned]
        rehash = tuple(
            (item.key, item.content_hash)
            for item in read.items
            if (seen := known.get(item.key)) is not None
            and seen.content_hash
            and item.content_hash
            and not comparable(seen.content_hash, item.content_hash)
        )
        return PollPlan(name, now, read, tuple(steps), waiting, rehash)

    def _render(self, source: Source, planned: Planned) -> Step:
        if planned.action not in ("queue", "update"):
            return Step(planned.item, planned.action, planned.detail)
        item = planned.item
        by_view: dict[SourceConfig, RenderedItem] = {}
        routes: list[tuple[str, RenderedItem]] = []
        held: list[tuple[str, str]] = []
        for channel in source.config.channels:
            view = source.config.for_channel(channel)
            if view.include != source.config.include or view.exclude != source.config.exclude:
                filtered = matches_filters(item, view.include, view.exclude)
                if filtered is not None:
                    held.append((channel, filtered.detail))
                    continue
            if view not in by_view:
                by_view[view] = self.transformer.render(item, view)
            routes.append((channel, by_view[view]))
        if not routes:
            why = "; ".join(f"{channel}: {detail}" for channel, detail in held)
            return Step(item, "filtered", why, held=tuple(held))
        first = routes[0][1]
        usable = [(c, r) for c, r in routes if not r.refused]
        if not usable:
            return Step(item, "refused", first.refused or "", first, tuple(routes), tuple(held))
        return Step(item, planned.action, planned.detail, usable[0][1], tuple(usable), tuple(held))

    # -- apply ---------------------------------------------------------------

    def apply(
        self,
        source: Source,
        plan: PollPlan,
        state: SourceState,
        *,
        defer_unchanged: bool = False,
    ) -> PollOutcome:
        """Record what ``plan`` decided: queue the posts, remember the keys,
        move the files of refused items and of items finished before a stop,
        and record the poll with its timing: one transaction
        (``store.batch``), taken after the parsing (:meth:`plan`), so the
        store's lock is never held while a source is read or parsed.

        With ``defer_unchanged``, a poll that found nothing new (304, or the
        same body) and has nothing else to write is only kept in memory, and
        :meth:`flush_unchanged` writes all of those in one transaction:
        losing one costs one more poll of that source, nothing else."""
        read = plan.read
        if (
            defer_unchanged
            and read.result != "ok"
            and not (plan.steps or plan.waiting or read.rejected or read.moved_to)
            and not state.paused
        ):
            return self._apply(source, plan, state, defer=True)
        with self.store.batch():
            return self._apply(source, plan, state)

    def flush_unchanged(self) -> list[str]:
        """Write the polls :meth:`apply` kept back, in one transaction; the
        sources whose poll could not be recorded (the error is logged)."""
        with self._unchanged_lock:
            pending, self._unchanged = self._unchanged, []
        if not pending:
            return []
        try:
            self.store.record_polls(pending)
        except StoreError as exc:
            log.error("%d unchanged poll(s) could not be recorded: %s", len(pending), exc)
            return [name for name, _, _ in pending]
        return []

    def _apply(
        self, source: Source, plan: PollPlan, state: SourceState, *, defer: bool = False
    ) -> PollOutcome:
        name = plan.source
        now = plan.now
        read = plan.read
        outcome = PollOutcome(name, ok=True, result=read.result, fetch_seconds=read.fetch_seconds)
        if read.moved_to:
            log.info(
                "source %s: %s moved permanently to %s; using the new address",
                name,
                state.url or source.config.url,
                read.moved_to,
            )
        for note in read.notes:
            log.warning("source %s: %s", name, note)
        for path, why in read.rejected:
            self._reject(source, Path(path), why, outcome)
        # Items only remembered (filtered, backfill) are written together,
        # in order: one write for a run of them, not one per item.
        remember: list[tuple[str, str, str, str]] = []
        for step in plan.steps:
            if step.action in ("filtered", "backfill"):
                self._remember(name, step, remember, outcome)
                continue
            if remember:
                self.store.mark_seen_many(name, remember, now)
                remember = []
            self._apply_step(source, step, now, outcome)
        if remember:
            self.store.mark_seen_many(name, remember, now)
        if read.result == "ok":
            self.store.touch_seen(name, [item.key for item in read.items], now)
            self.store.rehash_seen(name, plan.rehash)
            forgotten = self.store.forget_older_than(name, now - source.config.remember)
            if forgotten:
                log.debug("source %s: forgot %d old item key(s)", name, forgotten)
        remembered = sum(1 for step in plan.steps if step.action == "backfill")
        if read.first_run and remembered:
            log.info(
                "source %s: first poll: remembered %d existing item(s) without posting them "
                "(backfill = %d: a new source does not flood the channel); to post one now: "
                "viber-publisher post --url LINK; to queue the newest N of a new source, "
                "give it backfill = N",
                name,
                remembered,
                source.config.backfill,
            )
        if plan.waiting:
            log.info(
                "source %s: %d more new item(s) wait for the next poll (at most %d are "
                "taken per poll)",
                name,
                plan.waiting,
                MAX_NEW_PER_POLL,
            )
            # The next read must see them again: no 304, no "unchanged".
            read = replace(read, etag=None, last_modified=None, body_hash=None)
        self._record(source, state, outcome, now, read=read, defer=defer)
        if outcome.queued:
            log.info("source %s: %d new post(s) queued", name, outcome.queued)
        return outcome

    def _apply_step(self, source: Source, step: Step, now: datetime, outcome: PollOutcome) -> None:
        name = source.config.name
        item = step.item
        if step.rendered is not None:
            outcome.decisions.extend(step.rendered.decisions)
        if step.action == "seen":
            if item.files and self._move_left_behind(source, item, now):
                outcome.recovered += 1
            return
        if step.action != "update":
            outcome.seen += 1
            self._count(name, "seen")
        if step.action == "refused":
            self.store.mark_seen(name, item.key, item.content_hash, now, "refused", step.detail)
            self._count(name, "failed", "refused")
            outcome.refused += 1
            log.warning("source %s: item %s refused: %s", name, item.key, step.detail)
            if item.files:
                source.finish(list(item.files), ok=False, reason=step.detail)
            return
        assert step.routes
        self.store.queue_routes(dict(step.routes), now)
        self._count(name, "queued")
        outcome.queued += 1

    def _remember(
        self,
        name: str,
        step: Step,
        into: list[tuple[str, str, str, str]],
        outcome: PollOutcome,
    ) -> None:
        """A filtered or backfill-skipped item: counted now, its key and
        event added to ``into`` (written by ``mark_seen_many``)."""
        item = step.item
        if step.rendered is not None:
            outcome.decisions.extend(step.rendered.decisions)
        outcome.seen += 1
        self._count(name, "seen")
        kind = "filtered" if step.action == "filtered" else "backfill-skipped"
        into.append((item.key, item.content_hash, kind, step.detail))
        if step.action == "filtered":
            self._count(name, "skipped", "filtered")
            outcome.filtered += 1

    def _reject(self, source: Source, path: Path, why: str, outcome: PollOutcome) -> None:
        """A file the source can never post as it is: to ``failed/`` with the reason."""
        name = source.config.name
        try:
            source.finish([path], ok=False, reason=why)
        except SourceError as exc:  # tried again next poll; the rest still goes
            log.error("source %s: %s; and it could not be moved: %s", name, why, exc)
            return
        log.warning("source %s: %s; moved to failed/", name, why)
        self._count(name, "failed", "rejected")
        outcome.refused += 1

    def _move_left_behind(self, source: Source, item: Item, now: datetime) -> bool:
        """An item already seen whose files are still where the source keeps them.

        When its posts are all finished (``posted``, ``failed``, ``skipped``),
        the process stopped between recording the last one and moving the
        files: finish them now, as the deliverer would have (``ok`` when every
        message was posted, else with the recorded reason). Likewise an item
        refused at rendering whose move did not happen. An item with a message
        still ``queued``, ``sending`` or ``unknown`` is left alone: a file never
        moves before its post is finished. Returns whether files were moved.
        """
        name = source.config.name
        rows = self.store.rows_for_item(name, item.key)
        reason: str | None = None
        if rows:
            if any(row.status not in FINISHED for row in rows):
                return False
            latest = rows[-1].group_id
            group = [row for row in rows if row.group_id == latest]
            ok = all(row.status == "posted" for row in group)
            if not ok:
                reason = next(
                    (r.reason for r in group if r.status != "posted" and r.reason), "not posted"
                )
            files: Sequence[Path] = [Path(f) for f in group[0].files]
        else:
            seen = self.store.seen(name, item.key)
            if seen is None or seen.outcome != "refused":
                return False  # filtered items stay; a pruned outbox tells nothing
            story = self.store.item_story(name, item.key)
            reason = next((e.detail for e in reversed(story) if e.event == "refused"), None)
            ok = False
            files = list(item.files)
        if not files:
            return False
        try:
            moved = source.finish(files, ok=ok, reason=reason)
        except SourceError as exc:  # tried again next poll; new items still go
            log.error("source %s: item %s: %s", name, item.key, exc)
            return False
        if not moved:
            return False
        detail = f"{len(moved)} file(s) finished (left behind when the service stopped)"
        log.warning("source %s: item %s: %s", name, item.key, detail)
        self.store.add_event(name, item.key, "moved", detail, now)
        return True

    # -- the whole poll --------------------------------------------------------

    def poll(
        self,
        source: Source,
        *,
        defer_unchanged: bool = False,
        state: SourceState | None = None,
    ) -> PollOutcome:
        """Poll one source and queue what is new. Never raises.

        ``defer_unchanged``: see :meth:`apply`; the caller then calls
        :meth:`flush_unchanged`. ``state``: the source's state as the caller
        has just read it with every other source's (``Service.poll_all``),
        so it is not read again here; read from the store when not given."""
        name = source.config.name
        now = self.clock()
        if state is None:
            state = self.store.get_source(name)
        try:
            plan = self.plan(source, state, now)
            outcome = self.apply(source, plan, state, defer_unchanged=defer_unchanged)
        except (PublisherError, OSError) as exc:
            if not isinstance(exc, SourceError | MediaError | OSError):
                log.error("source %s: %s", name, exc)
            outcome = PollOutcome(name, ok=False, result="error", error=str(exc))
            floor = exc.retry_after if isinstance(exc, FetchError) else None
            self._record(source, state, outcome, now, floor=floor)
        except Exception as exc:  # a bug must not stop the other sources
            log.exception("source %s: unexpected error", name)
            outcome = PollOutcome(name, ok=False, result="error", error=f"internal error: {exc!r}")
            self._record(source, state, outcome, now)
        if self.metrics is not None:
            self.metrics.poll(name, outcome.result, outcome.fetch_seconds)
        return outcome

    def _record(
        self,
        source: Source,
        state: SourceState,
        outcome: PollOutcome,
        now: datetime,
        *,
        read: SourceRead | None = None,
        floor: timedelta | None = None,
        defer: bool = False,
    ) -> None:
        """Record the poll on the source with its timing (see core.schedule)."""
        config = self.config
        name = source.config.name
        timing = schedule.after_poll(
            now,
            every=source.config.every,
            ok=outcome.ok,
            previous_failures=state.consecutive_failures,
            floor=read.floor if read is not None else floor,
            max_backoff=config.fetch.max_backoff,
            pause_after=config.alerts.source_failures,
        )
        if read is not None:
            fields: dict[str, Any] = {
                "etag": read.etag,
                "last_modified": read.last_modified,
                "body_hash": read.body_hash,
                "snapshot": read.snapshot,
                **({"url": read.moved_to} if read.moved_to else {}),
                "next_poll": timing.hold,
                "first_poll_done": True,
            }
            if defer:
                with self._unchanged_lock:
                    self._unchanged.append((name, now, fields))
                return
            self.store.record_poll(name, now, ok=True, **fields)
            if state.paused:
                self.store.set_paused(name, False, now, "polled successfully again")
                if self.metrics is not None:
                    self.metrics.set_source_paused(name, False)
                log.warning("source %s: polled successfully again; resumed", name)
                if self.alerts is not None:
                    self.alerts.alert("recovered", name, f"source {name} works again")
            return
        self.store.record_poll(name, now, ok=False, error=outcome.error, next_poll=timing.hold)
        if timing.paused:
            if not state.paused:
                self.store.set_paused(name, True, now, f"{timing.failures} failed polls in a row")
            if self.metrics is not None:
                self.metrics.set_source_paused(name, True)
        # A dead feed is a warning once per back-off, not a line per minute.
        log.warning(
            "source %s: %s (failure %d in a row; next try at %s%s)",
            name,
            outcome.error,
            timing.failures,
            timing.due.strftime("%Y-%m-%d %H:%M:%S UTC"),
            f": {timing.reason}" if timing.reason else "",
        )
        if timing.failures == config.alerts.source_failures and self.alerts is not None:
            self.alerts.alert(
                "source_paused",
                name,
                f"source {name} failed {timing.failures} polls in a row: {outcome.error}; "
                f"polling backs off to at most every {config.fetch.max_backoff}",
            )

    def _count(self, source: str, outcome: str, reason: str | None = None) -> None:
        if self.metrics is not None:
            self.metrics.item(source, outcome, reason)
