"""The service: runs the parts the composition root (:mod:`publisher.compose`) built.

- ``start()``: recover from a crash (``sending`` posts become ``unknown``),
  serve HTTP (media, webhook, health, metrics; the local channel's API and
  page when it is the channel), connect the channel, check its token at once
  (a refused token turns ``/readyz`` red and is logged and alerted before
  any post), set the webhook when ``public_url`` is configured;
- ``run()``: the main loop sleeps until the earliest due source (each
  source's due time is :func:`publisher.core.schedule.due_at` of its last
  poll, its hold and its ``every``), polls due sources concurrently (one
  slow source never blocks the others), delivers in a thread of its own
  within the delivery policy, and runs the periodic housekeeping with the
  ``schedule`` package: history pruning (daily), media retention (hourly);
- ``run_once()``: poll every source once, post everything due now, return;
- ``stop()`` (SIGINT, SIGTERM): finish the post in flight, then stop;
- ``reload()`` (SIGHUP, ``viber-publisher reload``): apply a new config
  between two turns of the main loop, as one swap (see :mod:`publisher.service.reload`).

Failures of one source are values recorded on the source (``status`` shows
them), never crashes of the loop.
"""

from __future__ import annotations

import heapq
import logging
import random
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import schedule

from publisher import compose
from publisher.adapters.fetch import is_local_source
from publisher.adapters.mediasize import folder_size
from publisher.core import schedule as timing
from publisher.core.config import Config, SourceConfig
from publisher.core.errors import PublisherError, StoreError
from publisher.core.records import SourceState
from publisher.pipeline.deliver import Deliverer
from publisher.pipeline.poll import PollOutcome
from publisher.ports import Channel, Clock, Leases, Source
from publisher.service.probes import health, readiness
from publisher.service.reload import (
    ReloadPlan,
    pid_path,
    plan_reload,
    read_config,
    remove_pid,
    write_pid,
)

if TYPE_CHECKING:
    from publisher.adapters.alerts import Alerter
    from publisher.adapters.httpserver import HTTPServer
    from publisher.adapters.metrics import Metrics
    from publisher.pipeline.transform import Transformer
    from publisher.ports import Store

log = logging.getLogger(__name__)

#: A source's next poll is spread over up to this fraction of its ``every``
#: after the time it is due, so that sources added together drift apart.
JITTER = 0.1
#: The main loop looks again at least this often (a reload, a stop, a clock jump).
MAX_SLEEP = 5.0
#: Concurrent polls.
POLL_WORKERS = 4
#: How soon a source is polled again when the state file could not be written.
STORE_RETRY = timedelta(minutes=1)
#: ``poll_all`` writes the polls that found nothing new at least this often.
FLUSH_EVERY = 0.5
#: With other replicas: how soon a lane asks again for its channel's lease,
#: and a source another replica was polling is looked at again.
LEASE_RETRY = timedelta(seconds=5)

utcnow = compose.utcnow


def poll_workers(config: Config) -> int:
    """Threads for polls: :data:`POLL_WORKERS`, or fewer when the sources'
    hosts cannot keep more busy (``[fetch] max_per_host`` requests to one host
    at a time; a folder is one): a thread that could only wait for a host's
    turn costs CPU in every hand-over, and gains nothing."""
    per_host: dict[str, int] = {}
    folders = 0
    for source in config.sources:
        if not source.enabled:
            continue
        if source.url is None or is_local_source(source.url):
            folders += 1
            continue
        host = urlsplit(source.url).netloc.rpartition("@")[2].lower()
        per_host[host] = per_host.get(host, 0) + 1
    busy = folders + sum(min(n, config.fetch.max_per_host) for n in per_host.values())
    return max(1, min(POLL_WORKERS, busy))


class Service:
    def __init__(
        self,
        config: Config,
        *,
        token: str | None = None,
        tokens: Mapping[str, str | None] | None = None,
        clock: Clock = utcnow,
        client: Channel | None = None,
        clients: Mapping[str, Channel] | None = None,
        serve: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        """``tokens`` and ``clients`` by channel name; ``token`` and ``client``
        are the first channel's (what a single-channel caller passes)."""
        first = config.channels[0].name
        tokens = dict(tokens or {})
        if token is not None:
            tokens.setdefault(first, token)
        self._clients = dict(clients or {})
        if client is not None:
            self._clients.setdefault(first, client)
        # Alone on a state file (its lock), or one replica among several on
        # PostgreSQL: joined before anything is opened or written.
        self.leases: Leases = compose.join_state(config)
        try:
            self.parts = compose.build(config, tokens=tokens, clock=clock)
        except BaseException:
            self.leases.release()
            raise
        self.serve = serve
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        #: Wake each channel's deliverer early (new posts queued, stop).
        self._wakes: dict[str, threading.Event] = {
            c.name: threading.Event() for c in config.channels
        }
        #: Wakes the main loop early (a poll finished, stop, reload).
        self._loop_wake = threading.Event()
        self._reload_requested = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        #: When each source is due next (a cache of core.schedule.due_at).
        self._due: dict[str, datetime] = {}
        #: The same due times as a heap, soonest first, so that a turn of the
        #: main loop costs O(log n), not a walk over every source. An entry
        #: is stale when ``_due`` no longer holds its time (the source was
        #: polled, reloaded, disabled or removed); stale entries are dropped
        #: when they reach the top.
        self._heap: list[tuple[datetime, str]] = []
        #: False until the heap holds every enabled source (at start, after a reload).
        self._heap_ready = False
        #: Sources polled since the last turn: their next due time goes on the heap.
        self._polled: set[str] = set()
        self._enabled: dict[str, SourceConfig] = {}
        self._enabled_for: Config | None = None
        #: The last line of the log says the service has stopped, once.
        self._stop_logged = False
        self._pool_size = poll_workers(config)
        self._pool = ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="poll")
        self._housekeeping = schedule.Scheduler()
        self._deliver_threads: list[threading.Thread] = []
        self.started_at: datetime | None = None
        self.stopped_reason: str | None = None
        #: The channels whose lease this replica holds (its lanes post there).
        self._lanes_held: set[str] = set()
        #: The live replicas, as last counted, and until when that count holds.
        self._replicas_live = 1
        self._count_until = 0.0
        self._closed = False

    # -- the parts, for the probes, the commands and the tests ----------------

    @property
    def config(self) -> Config:
        return self.parts.config

    @property
    def clock(self) -> Clock:
        return self.parts.clock

    @property
    def store(self) -> Store:
        return self.parts.store

    @property
    def metrics(self) -> Metrics:
        return self.parts.metrics

    @property
    def alerter(self) -> Alerter:
        return self.parts.alerter

    @property
    def transformer(self) -> Transformer:
        return self.parts.transformer

    @property
    def deliverer(self) -> Deliverer | None:
        """The first channel's deliverer (see :attr:`deliverers` for all)."""
        return self.parts.deliverer

    @property
    def deliverers(self) -> dict[str, Deliverer]:
        return self.parts.deliverers

    @property
    def server(self) -> HTTPServer | None:
        return self.parts.server

    @property
    def local_channel(self) -> Any:
        """The local channel (a ViberStandIn) when it is the channel, else None."""
        return self.parts.local

    @property
    def token(self) -> str | None:
        return self.parts.token

    @property
    def public_url(self) -> str | None:
        return self.parts.public_url

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        parts = self.parts
        for lane in self.config.channels:
            self._hold_lane(lane.name)
        self.started_at = self.clock()
        compose.prepare_channel(parts)
        if self.serve:
            compose.serve(parts, health=lambda: health(self), ready=lambda: readiness(self))
        channels = compose.start_channels(parts, self._clients)
        for name, channel in channels.items():
            deliverer = Deliverer(
                self.config,
                parts.store,
                channel,
                clock=self.clock,
                metrics=parts.metrics,
                alerter=parts.alerter,
                on_done=self._item_done,
                public_url=parts.public_url,
                channel=name,
            )
            parts.deliverers[name] = deliverer
            # The token is checked now, not on the first post: a refused token
            # is reported at once (log, alert, /readyz) and posting waits for it.
            deliverer.check_account_now()
            deliverer.ensure_webhook()
        self._init_gauges()

    def _share(self) -> int:
        """How many channels this replica posts to at most: all of them
        alone; with other replicas, its fair share (the live replicas are
        counted at most every LEASE_RETRY)."""
        channels = len(self.config.channels)
        if not self.leases.shared:
            return channels
        now = time.monotonic()
        if now >= self._count_until:
            live = self.leases.replicas()
            self._replicas_live = max(1, len(live)) if self.leases.problem() is None else 1
            self._count_until = now + LEASE_RETRY.total_seconds()
        return -(-channels // self._replicas_live)

    def _hand_over(self, name: str) -> bool:
        """Give channel ``name`` up, between two posts, when this replica
        holds more than its share (another replica joined): it takes it within
        seconds. True if given up."""
        if not self.leases.shared or name not in self._lanes_held:
            return False
        with self._lock:
            if len(self._lanes_held) <= self._share():
                return False
            self._lanes_held.discard(name)
        self.leases.release_channel(name)
        log.info("channel %s: handed over to balance the replicas", name)
        return True

    def _hold_lane(self, name: str) -> bool:
        """Whether this replica posts to channel ``name`` now: it holds the
        channel's lease (always, alone on a SQLite file). On taking it, the
        channel's posts left ``sending`` by the last holder, which stopped
        or died mid-request, become ``unknown``: never sent twice. A replica
        that holds its share of the channels takes no more."""
        if (
            self.leases.shared
            and name not in self._lanes_held
            and len(self._lanes_held) >= self._share()
        ):
            return False
        held = self.leases.take_channel(name)
        if not held:
            if name in self._lanes_held:
                self._lanes_held.discard(name)
                log.warning("channel %s: this replica lost its lease; it stops posting there", name)
            return False
        if name in self._lanes_held:
            return True
        lane = next((c for c in self.config.channels if c.name == name), None)
        if lane is None:
            return False
        try:
            recovered = self.parts.store.recover_after_crash(
                self.clock(), lane.delivery.on_unknown, channel=name
            )
        except StoreError as exc:
            log.error("channel %s: %s", name, exc)
            self.leases.release_channel(name)
            return False
        for post_id in recovered:
            log.warning(
                "post %s was being sent when the service stopped; its fate is unknown "
                "(see `status`; `retry %s` or `skip %s`)",
                post_id,
                post_id,
                post_id,
            )
        if self.leases.shared:
            log.info("channel %s: this replica (%s) posts there now", name, self.leases.replica)
        self._lanes_held.add(name)
        return True

    def _init_gauges(self) -> None:
        """Gauges read from the store: outbox depth, paused sources, posting stopped."""
        store = self.parts.store
        metrics = self.parts.metrics

        def depth() -> float:
            counts = store.counts_by_source()
            return float(sum(c.get("queued", 0) for c in counts.values()))

        metrics.outbox_depth_from(depth)
        metrics.media_size_from(
            self._media_size if self.config.storage.media_bucket is None else None
        )
        for name, deliverer in self.deliverers.items():
            metrics.set_posting_stopped(deliverer.stopped_reason is not None, channel=name)
        paused = {state.name for state in store.sources() if state.paused}  # one read
        for source in self.config.sources:
            metrics.set_source_paused(source.name, source.name in paused)

    def _media_size(self) -> tuple[int, int]:
        """The media folder's files and bytes (``/metrics`` reads it)."""
        size = folder_size(self.config.storage.media_dir)
        return size.files, size.bytes

    def close(self) -> None:
        """Stop, and give everything back; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        for thread in self._deliver_threads:
            thread.join(timeout=60)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._flush_unchanged()
        stopped = [
            f"channel {name}: {d.stopped_reason}" if len(self.deliverers) > 1 else d.stopped_reason
            for name, d in self.deliverers.items()
            if d.stopped_reason is not None
        ]
        self.stopped_reason = "; ".join(stopped) if stopped else None
        try:
            self.parts.close()
        finally:
            self.leases.release()
            if not self._stop_logged:
                self._stop_logged = True
                log.info("stopped")

    def stop(self) -> None:
        """Ask the loops to stop; the post in flight is finished first."""
        self._stop.set()
        self._wake_lanes()
        self._loop_wake.set()

    # -- reload --------------------------------------------------------------

    def request_reload(self) -> None:
        """Ask the main loop to re-read the config (safe from a signal handler)."""
        self._reload_requested.set()
        self._loop_wake.set()

    def reload(self, new_config: Config) -> ReloadPlan:
        """Apply a new config to the running service, as one swap: everything
        new is built first, then the parts switch to it together.

        Sources added are polled at once; a changed ``every`` applies at once;
        removed sources stop polling (their queued posts are still delivered).
        """
        plan = plan_reload(self.config, new_config)
        for section in plan.restart_needed:
            log.warning(
                "reload: %s changed; it takes effect only after a restart "
                "(the running values stay until then)",
                section,
            )
        effective = plan.config
        parts = self.parts
        old = parts.sources
        sources = {
            s.name: old[s.name] if s.name in old and old[s.name].config == s else None
            for s in effective.sources
        }
        fresh = compose.build_sources(
            (s for s in effective.sources if sources[s.name] is None), parts.fetcher
        )
        merged: dict[str, Source] = {
            name: source if source is not None else fresh[name] for name, source in sources.items()
        }
        workers = poll_workers(effective)
        if workers != self._pool_size:
            # the polls already given to the old pool finish there
            old_pool, self._pool_size = self._pool, workers
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll")
            old_pool.shutdown(wait=False)
        with self._lock:
            parts.config = effective
            parts.sources = merged
            parts.transformer.config = effective
            parts.poller.config = effective
            for deliverer in parts.deliverers.values():
                deliverer.config = effective
            parts.alerter.config = effective.alerts
            self._due.clear()
            self._heap_ready = False
        for name in plan.removed:
            parts.metrics.forget_source(name)
        for source in effective.sources:
            if not source.enabled:
                parts.metrics.forget_source(source.name)
        self._loop_wake.set()
        log.info("reload: config %s applied: %s", effective.path, plan.summary())
        return plan

    def _reload_from_file(self) -> None:
        self._reload_requested.clear()
        if self.config.path is None:
            log.warning("reload: the config was not read from a file; nothing to re-read")
            return
        log.info("reload: reading %s", self.config.path)
        new = read_config(self.config.path)
        if new is not None:
            self.reload(new)

    # -- polling -----------------------------------------------------------

    def _source(self, config: SourceConfig) -> Source:
        source = self.parts.sources.get(config.name)
        if source is None or source.config != config:
            source = compose.build_sources([config], self.parts.fetcher)[config.name]
        return source

    def poll_source(
        self,
        source: SourceConfig,
        *,
        since: datetime | None = None,
        state: SourceState | None = None,
    ) -> PollOutcome:
        """Poll one source and queue what is new. Never raises. With other
        replicas, only under the source's lease, and not if another replica
        polled it meanwhile: it is not due by the store (or was polled after
        ``since``, ``run --once``'s start). ``state``: the source's state,
        read just before (alone only: with other replicas it is read again)."""
        if not self.leases.take_source(source.name):
            return self._elsewhere(source, LEASE_RETRY)
        try:
            if self.leases.shared:
                state = None  # another replica may have polled it since
                wait = self._polled_elsewhere(source, since)
                if wait is not None:
                    return self._elsewhere(source, wait)
            return self._poll_leased(source, state)
        finally:
            self.leases.release_source(source.name)

    def _elsewhere(self, source: SourceConfig, wait: timedelta) -> PollOutcome:
        """Another replica polls (or has just polled) ``source``: look again later."""
        with self._lock:
            self._set_due(source.name, self.clock() + wait)
            self._polled.add(source.name)
        return PollOutcome(source.name, ok=True, result="elsewhere")

    def _polled_elsewhere(self, source: SourceConfig, since: datetime | None) -> timedelta | None:
        """How long until ``source`` is due, when another replica has polled
        it meanwhile (by the store it is not due now; or, for ``run --once``,
        its last poll is after ``since``); else None."""
        try:
            state = self.parts.store.get_source(source.name)
        except StoreError:
            return None  # the poll records the error
        now = self.clock()
        due = timing.due_at(source.every, state.last_poll, state.next_poll, now)
        if since is not None:
            if state.last_poll is None or state.last_poll < since:
                return None
        elif due <= now:
            return None
        return max(due - now, LEASE_RETRY)

    def _poll_leased(self, source: SourceConfig, state: SourceState | None = None) -> PollOutcome:
        # Alone, the polls that found nothing are written together (one
        # transaction per turn); shared, at once, before the lease is given
        # back, so the next replica sees this poll.
        defer = not self.leases.shared
        try:
            outcome = self.parts.poller.poll(
                self._source(source), defer_unchanged=defer, state=state
            )
        except StoreError as exc:
            # The state file cannot take even the poll's error (full,
            # read-only): nothing was queued, the items are read again later.
            log.error("source %s: %s", source.name, exc)
            with self._lock:
                self._set_due(source.name, self.clock() + min(source.every, STORE_RETRY))
                self._polled.add(source.name)
            return PollOutcome(source.name, ok=False, result="error", error=str(exc))
        with self._lock:
            self._due.pop(source.name, None)
            self._polled.add(source.name)
        if outcome.queued:
            self._wake_lanes()
        return outcome

    def _wake_lanes(self) -> None:
        for event in self._wakes.values():
            event.set()

    def poll_all(self, sources: Iterable[SourceConfig] | None = None) -> list[PollOutcome]:
        """Poll sources concurrently and wait for all of them."""
        chosen = [s for s in (sources or self.config.sources) if s.enabled]
        since = self.clock()
        # Every source's state in one read, not one read per source (alone:
        # with other replicas each is read again under its lease).
        states: dict[str, SourceState] = {}
        if not self.leases.shared:
            self._flush_unchanged()  # polls kept back are in the states read now
            try:
                states = {state.name: state for state in self.parts.store.sources()}
            except StoreError:
                states = {}  # each poll reads its own, and records what fails
        futures = [
            self._pool.submit(self.poll_source, s, since=since, state=states.get(s.name))
            for s in chosen
        ]
        pending: set[Future[PollOutcome]] = set(futures)
        while pending:  # a slow source holds back no one's record
            pending = wait(pending, timeout=FLUSH_EVERY).not_done
            self._flush_unchanged()
        return [f.result() for f in futures]

    def _flush_unchanged(self) -> None:
        """Record the polls that found nothing new, in one transaction (the
        poll workers keep them back: one write per turn, not per source)."""
        failed = self.parts.poller.flush_unchanged()
        if failed:
            retry = self.clock() + STORE_RETRY
            with self._lock:
                for name in failed:
                    self._set_due(name, retry)

    def due(self, source: SourceConfig) -> datetime:
        """When ``source`` is polled next (see :func:`publisher.core.schedule.due_at`)."""
        with self._lock:
            known = self._due.get(source.name)
        if known is not None:
            return known
        state = self.parts.store.get_source(source.name)
        now = self.clock()
        due = timing.due_at(source.every, state.last_poll, state.next_poll, now)
        if state.last_poll is not None:
            due += source.every * (JITTER * self._rng.random())
        with self._lock:
            known = self._due.get(source.name)
            if known is not None:  # another thread computed it meanwhile
                return known
            self._set_due(source.name, due)
        return due

    def _set_due(self, name: str, due: datetime) -> None:
        """Record ``name``'s due time, on the heap too; the caller holds ``_lock``."""
        self._due[name] = due
        heapq.heappush(self._heap, (due, name))

    def _submit(self, source: SourceConfig) -> None:
        with self._lock:
            if source.name in self._in_flight or self._stop.is_set():
                return
            self._in_flight.add(source.name)

        def work() -> None:
            try:
                self.poll_source(source)
            finally:
                with self._lock:
                    self._in_flight.discard(source.name)
                self._loop_wake.set()

        self._pool.submit(work)

    def _poll_due(self) -> float:
        """Submit every due source; the seconds until the next one is due.

        Costs O(log n) per source due (the heap of due times), plus one
        ``due`` for each source polled since the last turn; only the first
        turn and the first after a reload look at every source.
        """
        if self._enabled_for is not self.config:  # a new config: every source again
            self._heap_ready = False
        enabled = self._enabled_sources()
        with self._lock:
            rebuild = not self._heap_ready
            if rebuild:
                self._heap = []
                self._polled.clear()
                pending = list(enabled)
                self._heap_ready = True
            else:
                pending = [n for n in self._polled if n not in self._in_flight]
                self._polled.difference_update(pending)
        # Before their due times are read back from the store.
        self._flush_unchanged()
        for name in pending:
            source = enabled.get(name)
            if source is None:
                continue
            with self._lock:
                cached = self._due.get(name)
            if cached is None:
                self.due(source)  # computes it and puts it on the heap
            elif rebuild:
                with self._lock:
                    heapq.heappush(self._heap, (cached, name))
        now = self.clock()
        while True:
            with self._lock:
                if not self._heap:
                    return MAX_SLEEP
                due, name = self._heap[0]
                source = enabled.get(name)
                if source is None or self._due.get(name) != due:
                    heapq.heappop(self._heap)  # stale
                    continue
                if due > now:
                    return min(MAX_SLEEP, (due - now).total_seconds())
                heapq.heappop(self._heap)
                if name in self._in_flight:
                    # polled right now by someone else; it comes back when done
                    self._polled.add(name)
                    continue
            self._submit(source)

    def _enabled_sources(self) -> dict[str, SourceConfig]:
        """The enabled sources by name, built once per config (a reload swaps it)."""
        config = self.config
        if self._enabled_for is not config:
            self._enabled = {s.name: s for s in config.sources if s.enabled}
            self._enabled_for = config
        return self._enabled

    def _item_done(self, source_name: str, files: list[str], ok: bool, reason: str | None) -> None:
        """Called by the deliverer when the last post of an item is done:
        the source does what its type does with the item's files."""
        source = self.parts.sources.get(source_name)
        if source is not None and files:
            source.finish([Path(f) for f in files], ok, reason)

    # -- housekeeping ------------------------------------------------------

    def _schedule_housekeeping(self) -> None:
        self._housekeeping.clear()
        self._housekeeping.every(1).days.do(self.prune_history)
        self._housekeeping.every(1).hours.do(self.prune_media)

    def prune_history(self) -> int:
        """Delete finished outbox rows and events older than ``history_retention``."""
        cutoff = self.clock() - self.config.storage.history_retention
        try:
            posts, events = self.parts.store.prune_history(cutoff)
        except PublisherError as exc:
            log.warning("history: pruning failed: %s", exc)
            return 0
        if posts or events:
            log.info("history: pruned %d finished post(s) and %d event(s)", posts, events)
        return posts + events

    def prune_media(self) -> None:
        """Delete media files of posts finished longer than ``media_retention`` ago."""
        now = self.clock()
        cutoff = now - self.config.storage.media_retention
        try:
            removed = self.parts.media.prune(self.parts.store.media_in_use(cutoff), cutoff)
        except OSError as exc:
            where = self.config.storage.media_url or self.config.storage.media_dir
            log.warning("media: pruning %s failed: %s", where, exc)
            return
        if removed:
            log.info("media: pruned %d old file(s)", len(removed))

    # -- the loops ---------------------------------------------------------

    def _deliver_loop(self, deliverer: Deliverer) -> None:
        """One channel's lane: its own order, limits and failures; a stopped
        or waiting channel never delays another."""
        wake = self._wakes[deliverer.name]
        while not self._stop.is_set():
            if self._hand_over(deliverer.name):  # to a replica with fewer channels
                wake.wait(timeout=2 * LEASE_RETRY.total_seconds())
                wake.clear()
                continue
            if not self._hold_lane(deliverer.name):  # another replica posts there
                wake.wait(timeout=LEASE_RETRY.total_seconds())
                wake.clear()
                continue
            try:
                wait = deliverer.step()
            except PublisherError as exc:
                log.error("delivery: %s", exc)
                wait = timedelta(seconds=30)
            except Exception:
                log.exception("delivery: unexpected error")
                wait = timedelta(seconds=30)
            if wait is None:
                continue
            wake.wait(timeout=max(0.05, min(wait.total_seconds(), 60.0)))
            wake.clear()

    def run(self, install_signals: bool = True) -> None:
        """Serve until SIGINT or SIGTERM."""
        if install_signals:
            self._install_signals()
        pid_file = pid_path(self.config)
        write_pid(pid_file)
        try:
            self._run_loop()
        finally:
            remove_pid(pid_file)

    def _run_loop(self) -> None:
        self._schedule_housekeeping()
        self.prune_history()
        self.prune_media()
        for name, deliverer in self.deliverers.items():
            thread = threading.Thread(
                target=self._deliver_loop, args=(deliverer,), name=f"deliver-{name}", daemon=True
            )
            thread.start()
            self._deliver_threads.append(thread)
        log.info(
            "running: %d source(s), serving on %s",
            len(self.config.sources),
            self.server.url if self.server is not None else "(no server)",
        )
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._reload_from_file()
            sleep = self._poll_due()
            self._housekeeping.run_pending()
            idle = self._housekeeping.idle_seconds
            if idle is not None:
                sleep = min(sleep, max(idle, 0.0))
            self._loop_wake.wait(timeout=max(sleep, 0.05))
            self._loop_wake.clear()
        log.info("stopping: finishing the post in flight")

    def run_once(self) -> list[PollOutcome]:
        """Poll every source once, post everything due now; the polls' outcomes."""
        outcomes = self.poll_all()
        lanes = [
            threading.Thread(target=self._drain, args=(d,), name=f"deliver-{n}")
            for n, d in self.deliverers.items()
        ]
        for lane in lanes:
            lane.start()
        for lane in lanes:
            lane.join()
        self.prune_history()
        self.prune_media()
        return outcomes

    def _drain(self, deliverer: Deliverer) -> None:
        """``run --once`` for one channel: post what is due now. Only short
        waits (min_interval) are waited for; a rate limit or a closed window
        ends the run, the posts stay queued. A channel another replica
        posts to is left to it."""
        while not self._stop.is_set():
            if not self._hold_lane(deliverer.name):
                log.info("channel %s: another replica posts there", deliverer.name)
                break
            wait = deliverer.step()
            if wait is None:
                continue
            if wait <= timedelta(seconds=60) and deliverer.has_due_work():
                self._stop.wait(timeout=wait.total_seconds())
                continue
            break

    def _install_signals(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            # Only a flag here: the main loop does the work.
            self.request_reload()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)
