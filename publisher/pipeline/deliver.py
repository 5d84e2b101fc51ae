"""Deliver stage: take the next due post from the outbox and publish it.

One :meth:`Deliverer.step` asks the pure policy (:mod:`publisher.core.policy`)
which post may go now, and then:

- marks it ``sending`` (committed) *before* the request, so a crash leaves
  a trace: on the next start it becomes ``unknown`` and is held for the
  operator (``on_unknown = "hold"``) — never silently sent twice;
- sends it, and records the answer right after it comes, as the table in
  :mod:`publisher.core.outcomes` says (:func:`~publisher.core.outcomes.outcome_of`:
  posted, retried with back-off, cooled down, held as ``unknown``, failed,
  posting stopped, or the webhook set first). ``viber-publisher post`` follows
  the same table.

While posting is stopped (token or account refused, no superadmin sender,
``api_url`` not Viber's) the service stays up, health turns red, the account
is checked again every few minutes (:data:`RECHECK_EVERY`) and posting
resumes by itself once Viber accepts it. :meth:`Deliverer.check_account_now`
makes that check at start-up, so a refused token shows at once.

An outage is waited out the same way: when Viber keeps failing with answers
that are not the post's fault (no connection, HTTP 5xx: ``Outcome.outage``),
:data:`HOLD_AFTER` in a row, or on a post's last attempt, the channel is
held: the post goes back to its place with that attempt refunded, readyz is
red, one alert goes out, and Viber is probed (the account, which posts
nothing) with back-off from ``retry_backoff`` up to :data:`RECHECK_EVERY`.
Once it answers, posting resumes in order. So an outage of any length turns
no post ``failed``; only a post that still gets the outage answer on its last
attempt right after Viber answered the probe fails (it is that post, not Viber).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from publisher.core.config import ChannelConfig, Config
from publisher.core.errors import (
    PublisherError,
    StoreError,
    TransitionError,
    ViberError,
    ViberFatalError,
)
from publisher.core.outcomes import (
    JITTER,
    Action,
    Outcome,
    backoff_delay,
    outcome_of,
)
from publisher.core.policy import Idle, Post, Skip, Verdict, Wait
from publisher.core.records import OutboxRow
from publisher.core.urls import channel_webhook_path, webhook_url
from publisher.pipeline.queue import decide, look
from publisher.ports import Alerts, Channel, ChannelState, Metrics, Store

log = logging.getLogger(__name__)

#: Called when an item's last message is finished: (source, files, ok, reason).
OnDone = Callable[[str, list[str], bool, str | None], None]

#: How often a stopped channel re-checks the token or account.
RECHECK_EVERY = timedelta(minutes=5)
#: How often the "posting is stopped" line is repeated in the log.
NAG_EVERY = timedelta(minutes=30)
#: How long to sleep when there is nothing to do (new items wake us).
IDLE_WAIT = timedelta(seconds=30)
#: How long to wait when the channel's account cannot be read (not a refusal).
ACCOUNT_RETRY = timedelta(seconds=30)
#: Outage answers in a row (any posts of the lane) that hold the channel.
HOLD_AFTER = 2


class _ChannelLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each line with ``channel NAME:`` (when there are several)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        name = self.extra.get("channel") if self.extra else None
        return (f"channel {name}: {msg}" if name else msg), kwargs


class Deliverer:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: Channel,
        *,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
        alerter: Alerts | None = None,
        on_done: OnDone | None = None,
        rng: random.Random | None = None,
        public_url: str | None = None,
        channel: str | None = None,
    ) -> None:
        self.public_url = public_url
        self.config = config
        #: The channel this lane delivers to (the first one unless named).
        self.name = channel if channel is not None else config.channels[0].name
        #: Lines name the channel when there are several.
        self.log = _ChannelLog(log, {"channel": self.name if len(config.channels) > 1 else None})
        self.store = store
        self.client = client
        self.clock = clock
        self.metrics = metrics
        self.alerter = alerter
        self.on_done = on_done
        self.rng = rng or random.Random()
        self._sender: str | None = None
        self._last_check: datetime | None = None
        self._last_nag: datetime | None = None
        #: Set once the webhook was set again after a status 10, until a post succeeds.
        self._webhook_forced = False
        #: Outage answers in a row (reset by a post that goes out, or a probe answered).
        self._outages = 0
        #: While the channel is held for an outage: why, and the probe's back-off.
        self._outage: str | None = None
        self._probe_wait = RECHECK_EVERY
        #: The post whose outage answer held the channel, once the probe was answered.
        self._held_post: int | None = None
        self._resumed_for: int | None = None
        #: Posts Viber accepted whose ``posted`` could not be saved yet (a
        #: full or read-only state file): saved first at each step.
        self._unsaved: list[tuple[OutboxRow, int | str | None, datetime]] = []
        self.last_verdict: Any = None

    # -- the lane's own settings ------------------------------------------------

    @property
    def lane(self) -> ChannelConfig:
        """This channel's settings in the current config (a reload may replace it)."""
        return self.config.channel(self.name)

    @property
    def state(self) -> ChannelState:
        return self.store.channel(self.name)

    # -- state shown by status and health -----------------------------------

    @property
    def stopped_reason(self) -> str | None:
        return self.state.stopped_reason()

    def _stop_posting(self, reason: str, *, announce: bool = False) -> None:
        """Stop posting with ``reason`` (logged when new, or when ``announce``)."""
        now = self.clock()
        if announce or self.state.stopped_reason() != reason:
            self.log.error("posting stopped: %s", reason)
            self._last_nag = now
        self.state.set_stopped(reason)
        self._last_check = now
        if self.metrics is not None:
            self.metrics.set_posting_stopped(True, channel=self.name)
        if self.alerter is not None:
            self.alerter.alert(
                "posting_stopped", self.name, f"channel {self.name}: posting stopped: {reason}"
            )

    @property
    def outage(self) -> str | None:
        """Why the channel is held for an outage (None when it is not)."""
        return self._outage

    def _resume(self) -> None:
        if self._outage is not None or self.state.stopped_reason() is not None:
            self.log.warning(
                "posting resumed: %s",
                "Viber answers again"
                if self._outage is not None
                else "Viber accepts the token and account again",
            )
            if self._outage is not None:
                self._resumed_for, self._held_post = self._held_post, None
                self._outage, self._outages = None, 0
            if self.alerter is not None:
                self.alerter.alert("recovered", self.name, f"channel {self.name}: posting resumed")
        self.state.set_stopped(None)
        if self.metrics is not None:
            self.metrics.set_posting_stopped(False, channel=self.name)

    # -- webhook -----------------------------------------------------------

    def webhook_url(self) -> str | None:
        path = channel_webhook_path(
            self.config.server.webhook_path, self.name, len(self.config.channels) > 1
        )
        return webhook_url(self.public_url, path)

    def ensure_webhook(self, force: bool = False) -> bool:
        """Set the webhook when ``public_url`` is configured and it is not set
        to it yet (Viber refuses posts before). Returns whether it is set."""
        url = self.webhook_url()
        if url is None:
            return False
        if not force and self.state.webhook_url() == url:
            return True
        try:
            self.client.set_webhook(url)
        except ViberError as exc:
            outcome = outcome_of(exc)
            if outcome.action is Action.STOP:
                self._stop_posting(self._stop_reason(exc, outcome))
                return False
            self.log.error(
                "webhook: Viber did not accept %s: %s; it must answer 200 over HTTPS "
                "(check [server] public_url and the reverse proxy)",
                url,
                exc,
            )
            return False
        self.state.set_webhook_url(url)
        self.log.info("webhook set to %s", url)
        return True

    def _fatal_reason(self, exc: ViberFatalError) -> str:
        """What the operator reads while posting is stopped: what to check."""
        where = self.lane.viber.token_source()
        if exc.status in (2, 8):
            return (
                f"{exc}. The token is read from {where}; once Viber accepts it, posting "
                "resumes by itself (checked every few minutes)"
            )
        return (
            f"{exc}. Posting resumes by itself once Viber accepts the channel again "
            f"(checked every few minutes; the token is read from {where})"
        )

    def _stop_reason(self, exc: BaseException, outcome: Outcome) -> str:
        """The reason posting stops (``outcome`` is a STOP): what to fix."""
        if isinstance(exc, ViberFatalError):
            return self._fatal_reason(exc)
        if outcome.config:
            return (
                f"{outcome.reason}. Fix the configuration and restart the service; queued "
                "posts wait for it (checked every few minutes)"
            )
        return outcome.reason

    # -- the account ---------------------------------------------------------

    def check_account_now(self) -> bool:
        """Ask Viber now whether the token and account can post (the service
        calls it at start-up, before :meth:`ensure_webhook`). True when they can.

        A refusal (token, account, no superadmin, ``api_url`` not Viber's)
        stops posting with the reason at once: logged, alerted, readyz red;
        posting resumes by itself once a later check passes. When Viber
        cannot be asked (a transport error), only a warning is logged: the
        first post will tell. A stop left from a previous run is lifted when
        Viber accepts the account now.
        """
        self._last_check = self.clock()
        self._sender = None
        try:
            self._check_account()
        except PublisherError as exc:
            outcome = outcome_of(exc)
            if outcome.action is Action.STOP:
                self._stop_posting(self._stop_reason(exc, outcome), announce=True)
            else:
                self.log.warning(
                    "start-up: could not check the token and account with Viber (%s); "
                    "the first post will tell",
                    exc,
                )
            return False
        self._resume()
        self.log.info("Viber accepts the token; posts go out as member %s", self._sender)
        return True

    # -- one step ----------------------------------------------------------

    def sender(self) -> str:
        if self._sender is None:
            # The client checks a configured sender_id is a superadmin.
            self._sender = self.client.sender()
        return self._sender

    def _check_account(self) -> None:
        """Ask Viber now (not a remembered answer) whom posts come from, and
        remember it for ``status``."""
        check = getattr(self.client, "superadmin", None)
        if callable(check) and hasattr(self.client, "get_account_info"):
            member = check(self.client.get_account_info())
            self._sender = str(member.id)
            shown = f"{member.name} ({member.id})" if member.name else self._sender
        else:
            self._sender = shown = self.client.sender()
        try:
            if self.state.sender() != shown:
                self.state.set_sender(shown)
        except StoreError as exc:  # status shows an older sender; posting goes on
            self.log.warning("could not record the sender in the state file: %s", exc)

    def _recheck_every(self) -> timedelta:
        """How long between two checks while stopped (an outage: the probe's back-off)."""
        return self._probe_wait if self._outage is not None else RECHECK_EVERY

    def _until_recheck(self, now: datetime) -> timedelta:
        if self._last_check is None:
            return self._recheck_every()
        return max(self._last_check + self._recheck_every() - now, timedelta(milliseconds=50))

    def _recheck(self, now: datetime) -> bool:
        """While stopped: check the account every few minutes (while held for
        an outage: with back-off); True if resumed."""
        if self._last_check is not None and now - self._last_check < self._recheck_every():
            if self._last_nag is None or now - self._last_nag >= NAG_EVERY:
                self.log.error("posting is stopped: %s", self.stopped_reason)
                self._last_nag = now
            return False
        self._last_check = now
        try:
            self._sender = None
            self._check_account()
        except PublisherError as exc:
            outcome = outcome_of(exc)
            if outcome.action is Action.STOP:
                self._outage = None
                self._stop_posting(self._stop_reason(exc, outcome))
            elif self._outage is not None:
                self._probe_wait = min(self._probe_wait * 2, RECHECK_EVERY)
                self.log.info(
                    "Viber still does not answer (%s); next try in %s", exc, self._probe_wait
                )
            else:
                self.log.warning("posting is stopped; re-checking the account failed: %s", exc)
            return False
        self._resume()
        self.ensure_webhook()
        return True

    def verdict(self, now: datetime) -> Verdict:
        """What goes next: the same answer ``status`` and ``preview`` get."""
        return decide(look(self.store, self.config, now, self.name), self.config, self.name)

    def has_due_work(self) -> bool:
        return not isinstance(self.last_verdict, Idle)

    def step(self) -> timedelta | None:
        """Do one thing. Returns None to be called again at once, or how long
        to wait (new items may wake the caller sooner)."""
        now = self.clock()
        self._save_posted()
        if self.stopped_reason is not None and not self._recheck(now):
            self.last_verdict = Idle("posting stopped")
            return self._until_recheck(now)
        verdict = self.verdict(now)
        self.last_verdict = verdict
        if isinstance(verdict, Idle):
            retry_at = self.store.next_attempt(channel=self.name)
            if retry_at is not None and retry_at > now:
                return retry_at - now
            return IDLE_WAIT
        if isinstance(verdict, Wait):
            return max(verdict.until - now, timedelta(milliseconds=50))
        if isinstance(verdict, Skip):
            skipped = self.store.mark_skipped(verdict.candidate.id, verdict.reason, now)
            self.log.info("post %s skipped: %s", verdict.candidate.id, verdict.reason)
            if self.metrics is not None:
                self.metrics.item(verdict.candidate.source, "skipped", verdict.reason)
            row = self.store.get(verdict.candidate.id)
            if row is not None:
                self._finish_item(row, ok=False, reason=verdict.reason, also=skipped)
            return None
        assert isinstance(verdict, Post)
        row = self.store.get(verdict.candidate.id)
        if row is None:
            return None
        self.send(row)
        return None

    # -- sending -----------------------------------------------------------

    def send(self, row: OutboxRow) -> None:
        """Post ``row`` now: ``sending`` is committed before the request, the
        answer is recorded as :func:`~publisher.core.outcomes.outcome_of` says."""
        now = self.clock()
        try:
            sender = self.sender()
        except PublisherError as exc:
            # Nothing was sent: a refusal stops posting, anything else waits a little.
            outcome = outcome_of(exc)
            if outcome.action is Action.STOP:
                self._stop_posting(self._stop_reason(exc, outcome))
                return
            self.log.warning("delivery: cannot read the channel's account yet: %s", exc)
            wait = ACCOUNT_RETRY
            if outcome.action is Action.COOL_DOWN:
                wait = max(wait, self.lane.delivery.rate_limit_cooldown)
            self._cool_down(now + wait)
            return
        if not self.store.claim(row.id, now):
            return
        started = self.clock()
        try:
            result = self.client.post(row.payload, sender=sender)
        except BaseException as exc:
            outcome = outcome_of(exc, on_unknown=self.lane.delivery.on_unknown)
            self._record(row, exc, outcome, now)
            if outcome.reraise:
                raise  # a bug or an interruption mid-request: recorded, not swallowed
            return
        self._webhook_forced = False
        self._outages, self._resumed_for = 0, None
        finished = self.clock()
        self._count("ok", row, (finished - started).total_seconds())
        self._unsaved.append((row, result.message_token, finished))
        self._save_posted()

    def _save_posted(self) -> None:
        """Record the posts Viber accepted. When the state file cannot take
        it (full, read-only), they stay ``sending`` there (never sent again)
        and are recorded at the next step that can: StoreError until then."""
        while self._unsaved:
            row, token, finished = self._unsaved[0]
            try:
                self.store.mark_posted(row.id, token, finished)
            except TransitionError:
                pass  # the operator settled it meanwhile (status shows how)
            except StoreError as exc:
                raise StoreError(
                    f"post {row.id} went out but could not be recorded yet: {exc}"
                ) from exc
            self._unsaved.pop(0)
            with contextlib.suppress(StoreError):  # only the pacing's reference point
                self.state.set_last_post_at(finished)
            self.log.info("posted %s (%s/%s) token=%s", row.id, row.source, row.item_key, token)
            self._finish_item(row, ok=True, reason=None)

    def _record(self, row: OutboxRow, exc: BaseException, outcome: Outcome, now: datetime) -> None:
        """Record a post's failed attempt (``row`` is ``sending``) as ``outcome`` says."""
        action = outcome.action
        if outcome.maybe_sent:
            self._count("ambiguous", row)
        if action is Action.HOLD:
            self._hold(row, outcome.reason)
        elif action is Action.RETRY and outcome.outage:
            self._wait_out(row, outcome.reason)
        elif action is Action.RETRY:  # with on_unknown = "retry", also a post maybe out
            self._retry_or_fail(row, outcome.reason)
        elif action is Action.COOL_DOWN:
            cooldown = self.lane.delivery.rate_limit_cooldown
            self._cool_down(self.clock() + cooldown)
            self.log.warning("Viber says too many requests; slowing down for %s", cooldown)
            self._retry_or_fail(row, outcome.reason)
        elif action is Action.FAIL:
            also = self.store.mark_failed(row.id, outcome.reason, self.clock())
            self._count("rejected", row)
            self.log.error(
                "post %s (%s/%s) failed: %s", row.id, row.source, row.item_key, outcome.reason
            )
            if self.alerter is not None:
                self.alerter.alert(
                    "post_failed", row.source, f"post {row.id} failed: {outcome.reason}"
                )
            self._finish_item(row, ok=False, reason=outcome.reason, also=also)
        elif action is Action.STOP:
            # Not the post's fault: it goes again, unchanged, once posting resumes.
            self.store.mark_retry(
                row.id, outcome.reason, now, self.clock(), refund=not outcome.counts
            )
            self._stop_posting(self._stop_reason(exc, outcome))
        elif action is Action.SET_WEBHOOK:
            self._set_webhook_then_retry(row, outcome)
        else:  # pragma: no cover - POSTED comes without an exception
            raise AssertionError(f"unexpected outcome {outcome}")

    def _set_webhook_then_retry(self, row: OutboxRow, outcome: Outcome) -> None:
        """Status 10: set the webhook once and retry at once (the attempt
        refunded); again 10, or no ``public_url``: retried with back-off."""
        if not self._webhook_forced and self.ensure_webhook(force=True):
            self._webhook_forced = True
            self.store.mark_retry(
                row.id, outcome.reason, self.clock(), self.clock(), refund=not outcome.counts
            )
        elif self.stopped_reason is not None:  # setting it was refused (token, api_url)
            self.store.mark_retry(row.id, outcome.reason, self.clock(), self.clock(), refund=True)
        elif self.webhook_url() is None:
            self._retry_or_fail(row, f"{outcome.reason}; set [server] public_url so it can be set")
        else:
            self._retry_or_fail(row, outcome.reason)

    def _wait_out(self, row: OutboxRow, reason: str) -> None:
        """An outage answer (nothing sent): a plain retry the first time;
        when it goes on, or on the post's last attempt, the channel is held
        and the post keeps its place, its attempt refunded."""
        self._outages += 1
        current = self.store.get(row.id)
        attempts = current.attempts if current is not None else row.attempts + 1
        last = attempts >= self.lane.delivery.max_attempts
        if last and self._resumed_for == row.id:
            # Viber answered the probe, yet this post still fails: it is the post.
            self._retry_or_fail(row, reason)
            return
        if self._outages < HOLD_AFTER and not last:
            # A plain retry; the whole channel waits with it, so no later post
            # overtakes it (its place is kept).
            self._retry_or_fail(row, reason)
            retried = self.store.get(row.id)
            if retried is not None and retried.next_attempt_at is not None:
                self._cool_down(retried.next_attempt_at)
            return
        now = self.clock()
        self.store.mark_retry(row.id, reason, now, now, refund=True)
        self._outage = reason
        self._held_post, self._resumed_for = row.id, None
        self._probe_wait = max(self.lane.delivery.retry_backoff, timedelta(seconds=1))
        self._stop_posting(
            f"Viber cannot be reached or is failing ({reason}); the posts wait in order and "
            "go out once it answers again (checked with back-off, at least every "
            f"{int(RECHECK_EVERY.total_seconds() // 60)} minutes)"
        )

    def _hold(self, row: OutboxRow, detail: str) -> None:
        """Sent, but no answer: ``unknown``, held for the operator."""
        self.store.mark_unknown(
            row.id,
            f"sent, but no answer came ({detail}); it may have been posted — check the "
            f"channel, then `viber-publisher retry {row.id}` or `viber-publisher skip {row.id}`",
            self.clock(),
        )
        self.log.warning(
            "post %s: fate unknown: %s; held until `viber-publisher retry %s` or `skip %s`",
            row.id,
            detail,
            row.id,
            row.id,
        )

    def _cool_down(self, until: datetime) -> None:
        self.state.extend_cooldown(until)

    def _retry_or_fail(self, row: OutboxRow, reason: str) -> None:
        now = self.clock()
        current = self.store.get(row.id)
        attempts = current.attempts if current is not None else row.attempts + 1
        if attempts >= self.lane.delivery.max_attempts:
            reason = f"gave up after {attempts} attempts: {reason}"
            also = self.store.mark_failed(row.id, reason, now)
            self._count("failed", row)
            self.log.error("post %s failed: %s", row.id, reason)
            if self.alerter is not None:
                self.alerter.alert("post_failed", row.source, f"post {row.id} failed: {reason}")
            self._finish_item(row, ok=False, reason=reason, also=also)
            return
        delay = backoff_delay(attempts, self.lane.delivery.retry_backoff, self.rng.uniform(*JITTER))
        next_at = now + delay
        self.store.mark_retry(row.id, reason, next_at, now)
        self.log.warning(
            "post %s: %s; retry %d of %d at %s",
            row.id,
            reason,
            attempts,
            self.lane.delivery.max_attempts - 1,
            next_at.strftime("%H:%M:%S UTC"),
        )

    def _count(self, result: str, row: OutboxRow, seconds: float | None = None) -> None:
        if self.metrics is None:
            return
        self.metrics.post(result, seconds, channel=self.name)
        if result == "ok":
            self.metrics.item(row.source, "posted")
        elif result in ("failed", "rejected"):
            self.metrics.item(row.source, "failed")

    def _finish_item(
        self, row: OutboxRow, *, ok: bool, reason: str | None, also: list[int] | None = None
    ) -> None:
        """When an item's messages are all finished, tell the source (folders
        move the files to posted/ or failed/)."""
        if self.on_done is None or not row.files:
            return
        # Every channel's messages of the item, queued together with this one.
        rows = [
            r
            for r in self.store.rows_for_item(row.source, row.item_key)
            if r.created_at == row.created_at
        ] or self.store.item_rows(row.group_id)
        if any(r.status not in ("posted", "failed", "skipped") for r in rows):
            return
        all_ok = all(r.status == "posted" for r in rows)
        if not all_ok and reason is None:
            reason = next((r.reason for r in rows if r.reason), "not posted")
        try:
            self.on_done(row.source, list(row.files), all_ok, reason)
        except Exception as exc:  # the post is recorded; a file move must not undo that
            self.log.error("source %s: moving the item's files failed: %s", row.source, exc)
