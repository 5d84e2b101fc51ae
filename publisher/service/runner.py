"""The run loop: poll sources on their schedule, queue new items, deliver.

:class:`Service` owns the parts (store, fetcher, transformer, channel
client, HTTP server) and their lifecycle:

- ``start()``: open the store and recover from a crash (``sending`` posts
  become ``unknown``), start the HTTP server (media, webhook, health,
  metrics; the local channel too when ``api_url = "local"``), set the
  webhook when ``public_url`` is configured and it is not set yet;
- ``run()``: poll each source on its ``every`` (the ``schedule`` package,
  with jitter so sources do not fire together; a failing source backs off
  exponentially up to ``[fetch] max_backoff``), fetch sources concurrently
  (one slow source never blocks the others), and drain the outbox in a
  thread of its own, within the delivery policy;
- ``run_once()``: poll every source once, post everything due, return;
- ``stop()`` (SIGINT, SIGTERM): finish the post in flight, then stop.
- ``reload()`` (SIGHUP, ``viber-publisher reload``): apply a new config
  between two turns of the main loop (:mod:`publisher.service.reload`); ``run()``
  keeps a pid file beside the state file for that.

A source failing ``[alerts] source_failures`` polls in a row is *paused*
(alerted on, ``source_paused`` metric, shown by ``status``): it is still
polled, at ``[fetch] max_backoff``, and resumes by itself when it answers.

A folder item finished (posted, failed, skipped, refused) just before the
service stopped, with its files not moved yet, has them moved to
``posted/`` or ``failed/`` on the next poll of its folder; a file never
moves before the last post of its item is finished.

Failures of one source are values recorded on the source (``status`` shows
them), never crashes of the loop.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import schedule

from publisher.adapters.alerts import Alerter
from publisher.adapters.fetch import Fetcher
from publisher.adapters.mediafolder import MediaStore
from publisher.adapters.metrics import Metrics
from publisher.adapters.sources.feed import parse_feed
from publisher.adapters.sources.folder import move_done, scan_folder
from publisher.adapters.sqlite import Store
from publisher.core.config import Config, SourceConfig
from publisher.core.errors import MediaError, PublisherError, SourceError
from publisher.core.items import Decision, Item
from publisher.core.plan import plan_source
from publisher.core.records import FINISHED
from publisher.pipeline.deliver import Deliverer
from publisher.pipeline.transform import Transformer, fetch_media_with

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: The spread of the scheduler's ticks around ``every`` (± half of it).
JITTER = 0.2


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PollOutcome:
    """What one poll of one source did (a value, never an exception)."""

    source: str
    ok: bool
    result: str = "ok"  # ok, not_modified, unchanged, error, skipped
    error: str | None = None
    queued: int = 0
    seen: int = 0
    filtered: int = 0
    refused: int = 0
    #: Folder items finished before a stop whose files were moved only now.
    recovered: int = 0
    decisions: list[Decision] = field(default_factory=list)
    fetch_seconds: float | None = None


class Service:
    def __init__(
        self,
        config: Config,
        *,
        token: str | None = None,
        clock: Clock = utcnow,
        client: Any = None,
        serve: bool = True,
    ) -> None:
        self.config = config
        self.token = token
        self.clock = clock
        self.serve = serve
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        #: One folder move at a time (the deliverer's and a poll's recovery).
        self._move_lock = threading.Lock()
        self.metrics = Metrics(clock=clock)
        self.alerter = Alerter(config.alerts, clock=clock, metrics=self.metrics)
        self.started_at: datetime | None = None
        self.stopped_reason: str | None = None
        #: Where media and the webhook are reached; known once the server listens.
        self.public_url: str | None = config.server.public_url
        self.store = Store.open(config.storage.path)
        self.media = MediaStore(config.storage.media_dir)
        self.fetcher = Fetcher(config.fetch)
        self.server: Any = None
        self.local_channel: Any = None
        self._client = client
        self.transformer = Transformer(config, self.media, fetch_media_with(self.fetcher))
        self.deliverer: Deliverer | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="poll")
        self._scheduler = schedule.Scheduler()
        self._deliver_thread: threading.Thread | None = None
        #: Set by SIGHUP; the main loop re-reads the config (publisher.service.reload).
        self._reload_requested = threading.Event()
        #: Wakes the main loop early (stop, reload).
        self._loop_wake = threading.Event()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        from publisher.service.parts import build_client, build_server

        recovered = self.store.recover_after_crash(self.clock(), self.config.delivery.on_unknown)
        for post_id in recovered:
            log.warning(
                "post %s was being sent when the service stopped; its fate is unknown "
                "(see `status`; `retry %s` or `skip %s`)",
                post_id,
                post_id,
                post_id,
            )
        self.started_at = self.clock()
        if self.serve:
            self.server, self.local_channel = build_server(self)
            if self.public_url is None and self.config.viber.is_local:
                self.public_url = self.server.url
        self.transformer.public_url = self.public_url
        if self._client is None:
            self._client = build_client(self)
        self.deliverer = Deliverer(
            self.config,
            self.store,
            self._client,
            clock=self.clock,
            metrics=self.metrics,
            alerter=self.alerter,
            on_done=self._item_done,
            public_url=self.public_url,
        )
        self.deliverer.ensure_webhook()
        self._init_gauges()

    def _init_gauges(self) -> None:
        """Gauges read from the store: outbox depth, paused sources, posting stopped."""

        def depth() -> float:
            counts = self.store.counts_by_source()
            return float(sum(c.get("queued", 0) for c in counts.values()))

        self.metrics.outbox_depth_from(depth)
        self.metrics.set_posting_stopped(self.store.channel().stopped_reason() is not None)
        for source in self.config.sources:
            self.metrics.set_source_paused(source.name, self.store.get_source(source.name).paused)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._loop_wake.set()
        if self._deliver_thread is not None:
            self._deliver_thread.join(timeout=60)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.server is not None:
            self.server.stop()
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
        self.fetcher.close()
        self.alerter.close()
        self.stopped_reason = self.store.channel().stopped_reason()
        self.store.close()

    def stop(self) -> None:
        """Ask the loops to stop; the post in flight is finished first."""
        self._stop.set()
        self._wake.set()
        self._loop_wake.set()

    def request_reload(self) -> None:
        """Ask the main loop to re-read the config (safe from a signal handler)."""
        self._reload_requested.set()
        self._loop_wake.set()

    def reload(self, new_config: Config) -> Any:
        """Apply a new config to the running service; see :mod:`publisher.service.reload`."""
        from publisher.service.reload import apply_reload

        return apply_reload(self, new_config)

    def _reload_from_file(self) -> None:
        from publisher.service.reload import read_config

        self._reload_requested.clear()
        if self.config.path is None:
            log.warning("reload: the config was not read from a file; nothing to re-read")
            return
        log.info("reload: reading %s", self.config.path)
        new = read_config(self.config.path)
        if new is not None:
            self.reload(new)

    # -- polling -----------------------------------------------------------

    def poll_source(self, source: SourceConfig) -> PollOutcome:
        """Poll one source and queue what is new. Never raises."""
        now = self.clock()
        try:
            if source.type == "folder":
                outcome = self._poll_folder(source, now)
            else:
                outcome = self._poll_feed(source, now)
        except (SourceError, MediaError, OSError) as exc:
            outcome = PollOutcome(source.name, ok=False, result="error", error=str(exc))
        except Exception as exc:  # a bug must not stop the other sources
            log.exception("source %s: unexpected error", source.name)
            outcome = PollOutcome(
                source.name, ok=False, result="error", error=f"internal error: {exc!r}"
            )
        if not outcome.ok:
            self._record_failure(source, outcome, now)
        else:
            self._resume_if_paused(source, now)
        self.metrics.poll(source.name, outcome.result, outcome.fetch_seconds)
        if outcome.queued:
            self._wake.set()
        return outcome

    def _resume_if_paused(self, source: SourceConfig, now: datetime) -> None:
        if not self.store.get_source(source.name).paused:
            return
        self.store.set_paused(source.name, False, now, "polled successfully again")
        self.metrics.set_source_paused(source.name, False)
        log.warning("source %s: polled successfully again; resumed", source.name)
        self.alerter.alert("recovered", source.name, f"source {source.name} works again")

    def _record_failure(self, source: SourceConfig, outcome: PollOutcome, now: datetime) -> None:
        state = self.store.get_source(source.name)
        failures = (state.consecutive_failures if state else 0) + 1
        backoff = min(source.every * (2 ** min(failures - 1, 16)), self.config.fetch.max_backoff)
        backoff = max(backoff, source.every)
        # Paused after [alerts] source_failures in a row: still polled, at the
        # longest back-off, so it resumes by itself once the source answers.
        paused = failures >= self.config.alerts.source_failures
        if paused:
            backoff = max(backoff, self.config.fetch.max_backoff)
            if not state.paused:
                self.store.set_paused(source.name, True, now, f"{failures} failed polls in a row")
            self.metrics.set_source_paused(source.name, True)
        next_poll = now + backoff
        self.store.record_poll(source.name, now, ok=False, error=outcome.error, next_poll=next_poll)
        # A dead feed is a warning once per back-off, not a line per minute.
        log.warning(
            "source %s: %s (failure %d in a row; next try at %s)",
            source.name,
            outcome.error,
            failures,
            next_poll.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
        if failures == self.config.alerts.source_failures:
            self.alerter.alert(
                "source_paused",
                source.name,
                f"source {source.name} failed {failures} polls in a row: {outcome.error}; "
                f"polling backs off to at most every {self.config.fetch.max_backoff}",
            )

    def _poll_feed(self, source: SourceConfig, now: datetime) -> PollOutcome:
        state = self.store.get_source(source.name)
        url = (state.url if state and state.url else None) or source.url
        assert url is not None
        started = self.clock()
        response = self.fetcher.fetch_feed(
            url,
            etag=state.etag if state else None,
            last_modified=state.last_modified if state else None,
            body_hash=state.body_hash if state else None,
        )
        fetch_seconds = max(0.0, (self.clock() - started).total_seconds())
        next_poll = now + source.every
        if response.max_age and now + response.max_age > next_poll:
            next_poll = now + response.max_age
        if response.retry_after and now + response.retry_after > next_poll:
            next_poll = now + response.retry_after
        new_url = None
        if response.permanent_redirect:
            log.info(
                "source %s: %s moved permanently to %s; using the new address",
                source.name,
                url,
                response.permanent_redirect,
            )
            new_url = response.permanent_redirect
        common: dict[str, Any] = {
            "etag": response.etag,
            "last_modified": response.last_modified,
            "body_hash": response.body_hash,
            "next_poll": next_poll,
        }
        if new_url:
            common["url"] = new_url
        if response.not_modified or response.unchanged:
            result = "not_modified" if response.not_modified else "unchanged"
            self.store.record_poll(source.name, now, ok=True, **common)
            return PollOutcome(source.name, ok=True, result=result, fetch_seconds=fetch_seconds)
        parsed = parse_feed(response.body, response.headers, response.final_url, source.name, now)
        for warning in parsed.warnings:
            log.info("source %s: %s", source.name, warning)
        first_run = not (state and state.first_poll_done)
        outcome = self._plan_and_queue(source, parsed.items, now, first_run=first_run)
        self._remember(source, [item.key for item in parsed.items], now)
        self.store.record_poll(source.name, now, ok=True, first_poll_done=True, **common)
        outcome.fetch_seconds = fetch_seconds
        return outcome

    def _poll_folder(self, source: SourceConfig, now: datetime) -> PollOutcome:
        assert source.path is not None
        if not source.path.is_dir():
            raise SourceError(
                f"folder {source.path} does not exist or is not a folder; create it or fix "
                f"sources.{source.name}.path"
            )
        state = self.store.get_source(source.name)
        previous = state.snapshot if state else None
        scan = scan_folder(source.path, source.name, previous, now=now)
        for problem in scan.problems:
            log.warning("source %s: %s", source.name, problem)
        outcome = self._plan_and_queue(source, scan.items, now, first_run=False)
        self._remember(source, [item.key for item in scan.items], now)
        self.store.record_poll(
            source.name,
            now,
            ok=True,
            snapshot=scan.snapshot,
            next_poll=now + source.every,
            first_poll_done=True,
        )
        return outcome

    def _remember(self, source: SourceConfig, keys: list[str], now: datetime) -> None:
        """Keys the source still offers are remembered from now; keys it has
        not offered for longer than its ``remember`` are forgotten."""
        self.store.touch_seen(source.name, keys, now)
        forgotten = self.store.forget_older_than(source.name, now - source.remember)
        if forgotten:
            log.debug("source %s: forgot %d old item key(s)", source.name, forgotten)

    def _plan_and_queue(
        self, source: SourceConfig, items: Sequence[Item], now: datetime, *, first_run: bool
    ) -> PollOutcome:
        outcome = PollOutcome(source.name, ok=True)

        def known_hash(key: str) -> str | None:
            seen = self.store.seen(source.name, key)
            return None if seen is None else seen.content_hash

        planned = plan_source(source, items, known_hash, first_run=first_run)
        for plan in planned:
            item = plan.item
            if plan.action == "seen":
                if (
                    item.files
                    and source.type == "folder"
                    and self._move_left_behind(source, item, now)
                ):
                    outcome.recovered += 1
                continue
            if plan.action != "update":
                outcome.seen += 1
                self.metrics.item(source.name, "seen")
            if plan.action in ("filtered", "backfill"):
                self.store.mark_seen(
                    source.name,
                    item.key,
                    item.content_hash,
                    now,
                    "filtered" if plan.action == "filtered" else "backfill-skipped",
                    plan.detail,
                )
                if plan.action == "filtered":
                    self.metrics.item(source.name, "skipped", "filtered")
                    outcome.filtered += 1
                continue
            rendered = self.transformer.render(item, source)
            outcome.decisions.extend(rendered.decisions)
            if rendered.refused:
                self.store.mark_seen(
                    source.name, item.key, item.content_hash, now, "refused", rendered.refused
                )
                self.metrics.item(source.name, "failed", "refused")
                outcome.refused += 1
                log.warning(
                    "source %s: item %s refused: %s", source.name, item.key, rendered.refused
                )
                if item.files and source.path is not None:
                    with self._move_lock:
                        move_done(source.path, item.files, ok=False, reason=rendered.refused)
                continue
            self.store.queue_item(rendered, now)
            self.metrics.item(source.name, "queued")
            outcome.queued += 1
        if outcome.queued:
            log.info("source %s: %d new post(s) queued", source.name, outcome.queued)
        return outcome

    def poll_all(self, sources: Iterable[SourceConfig] | None = None) -> list[PollOutcome]:
        """Poll sources concurrently and wait for all of them."""
        chosen = [s for s in (sources or self.config.sources) if s.enabled]
        futures = [self._pool.submit(self.poll_source, s) for s in chosen]
        return [f.result() for f in futures]

    def _item_done(self, source_name: str, files: list[str], ok: bool, reason: str | None) -> None:
        """Called by the deliverer when the last post of an item is done."""
        try:
            source = self.config.source(source_name)
        except KeyError:
            return
        if source.type == "folder" and source.path is not None and files:
            with self._move_lock:
                move_done(source.path, [Path(f) for f in files], ok=ok, reason=reason)

    def _move_left_behind(self, source: SourceConfig, item: Item, now: datetime) -> bool:
        """A folder item already seen whose files are still in the folder.

        When its posts are all finished (``posted``, ``failed``, ``skipped``),
        the process stopped between recording the last one and moving the
        files: move them now, as :meth:`_item_done` would (``posted/`` when
        every message was posted, else ``failed/`` with the recorded reason).
        Likewise an item refused at rendering whose move did not happen. An
        item with a message still ``queued``, ``sending`` or ``unknown`` is
        left alone: a file never moves before its post is finished.
        Returns whether files were moved.
        """
        assert source.path is not None
        rows = self.store.rows_for_item(source.name, item.key)
        if rows:
            if any(row.status not in FINISHED for row in rows):
                return False
            latest = rows[-1].group_id
            group = [row for row in rows if row.group_id == latest]
            ok = all(row.status == "posted" for row in group)
            reason = None
            if not ok:
                reason = next(
                    (r.reason for r in group if r.status != "posted" and r.reason), "not posted"
                )
            files = [Path(f) for f in group[0].files]
        else:
            seen = self.store.seen(source.name, item.key)
            if seen is None or seen.outcome != "refused":
                return False  # filtered items stay; a pruned outbox tells nothing
            story = self.store.item_story(source.name, item.key)
            reason = next((e.detail for e in reversed(story) if e.event == "refused"), None)
            ok = False
            files = list(item.files)
        if not files:
            return False
        try:
            with self._move_lock:
                moved = move_done(source.path, files, ok=ok, reason=reason)
        except SourceError as exc:  # tried again next poll; new items still go
            log.error("source %s: item %s: %s", source.name, item.key, exc)
            return False
        if not moved:
            return False
        where = "posted/" if ok else "failed/"
        detail = f"{len(moved)} file(s) moved to {where} (left behind when the service stopped)"
        log.warning("source %s: item %s: %s", source.name, item.key, detail)
        self.store.add_event(source.name, item.key, "moved", detail, now)
        return True

    # -- the loops ---------------------------------------------------------

    def _due(self, source: SourceConfig) -> bool:
        """Whether a tick of the scheduler should poll ``source`` now.

        The scheduler fires every ``every`` ± 10% (jitter), so a tick may come
        a little before ``next_poll`` (last poll + ``every``); such a tick
        polls. Back-off and ``Retry-After`` push ``next_poll`` much further,
        and those ticks are skipped.
        """
        state = self.store.get_source(source.name)
        if state is None or state.next_poll is None:
            return True
        return state.next_poll - source.every * JITTER <= self.clock()

    def _submit(self, source: SourceConfig, force: bool = False) -> None:
        with self._lock:
            if source.name in self._in_flight or self._stop.is_set():
                return
            if not force and not self._due(source):
                return
            self._in_flight.add(source.name)

        def work() -> None:
            try:
                self.poll_source(source)
            finally:
                with self._lock:
                    self._in_flight.discard(source.name)

        self._pool.submit(work)

    def _schedule(self) -> None:
        self._scheduler.clear()
        for source in self.config.sources:
            if not source.enabled:
                continue
            seconds = max(1, int(source.every.total_seconds()))
            # schedule's every(a).to(b) picks a random interval each time: jitter.
            low = max(1, int(seconds * (1 - JITTER / 2)))
            high = max(low + 1, int(seconds * (1 + JITTER / 2)))
            self._scheduler.every(low).to(high).seconds.do(self._submit, source)

    def reschedule(
        self, new: Sequence[SourceConfig] = (), changed: Sequence[SourceConfig] = ()
    ) -> None:
        """Schedule the current sources again (after a reload): poll ``new``
        ones now, and ``changed`` ones now if their next poll is further away
        than their (new) interval."""
        self._schedule()
        now = self.clock()
        for source in new:
            if source.enabled:
                self._submit(source)
        for source in changed:
            state = self.store.get_source(source.name)
            late = state.next_poll is not None and state.next_poll > now + source.every
            if source.enabled and late and not state.consecutive_failures:
                self._submit(source, force=True)

    def _deliver_loop(self) -> None:
        assert self.deliverer is not None
        while not self._stop.is_set():
            try:
                wait = self.deliverer.step()
            except PublisherError as exc:
                log.error("delivery: %s", exc)
                wait = timedelta(seconds=30)
            except Exception:
                log.exception("delivery: unexpected error")
                wait = timedelta(seconds=30)
            if wait is None:
                continue
            self._wake.wait(timeout=max(0.05, min(wait.total_seconds(), 60.0)))
            self._wake.clear()

    def run(self, install_signals: bool = True) -> None:
        """Serve until SIGINT or SIGTERM."""
        from publisher.service.reload import pid_path, remove_pid, write_pid

        if install_signals:
            self._install_signals()
        pid_file = pid_path(self.config)
        write_pid(pid_file)
        try:
            self._run_loop()
        finally:
            remove_pid(pid_file)

    def _run_loop(self) -> None:
        self._schedule()
        for source in self.config.sources:
            if source.enabled:
                self._submit(source)
        self._deliver_thread = threading.Thread(
            target=self._deliver_loop, name="deliver", daemon=True
        )
        self._deliver_thread.start()
        log.info(
            "running: %d source(s), serving on %s",
            len(self.config.sources),
            self.server.url if self.server is not None else "(no server)",
        )
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._reload_from_file()
            self._scheduler.run_pending()
            self._prune_media()
            idle = self._scheduler.idle_seconds
            self._loop_wake.wait(timeout=min(max(idle or 1.0, 0.2), 5.0))
            self._loop_wake.clear()
        log.info("stopping: finishing the post in flight")

    def run_once(self) -> None:
        """Poll every source once, post everything due now, return."""
        self.poll_all()
        assert self.deliverer is not None
        while not self._stop.is_set():
            wait = self.deliverer.step()
            if wait is None:
                continue
            # Only short waits (min_interval) are waited for; a rate limit
            # or a closed window ends the run, the posts stay queued.
            if wait <= timedelta(seconds=60) and self.deliverer.has_due_work():
                self._stop.wait(timeout=wait.total_seconds())
                continue
            break
        self._prune_media()

    _last_prune: datetime | None = None

    def _prune_media(self) -> None:
        now = self.clock()
        if self._last_prune is not None and now - self._last_prune < timedelta(hours=1):
            return
        self._last_prune = now
        cutoff = now - self.config.storage.media_retention
        try:
            removed = self.media.prune(self.store.media_in_use(cutoff), cutoff)
        except OSError as exc:
            log.warning("media: pruning %s failed: %s", self.config.storage.media_dir, exc)
            return
        if removed:
            log.info("media: pruned %d old file(s)", len(removed))

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
