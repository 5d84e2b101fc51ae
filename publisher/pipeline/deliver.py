"""Deliver stage: take the next due post from the outbox and publish it.

One :meth:`Deliverer.step` asks the pure policy (:mod:`publisher.core.policy`)
which post may go now, and then:

- marks it ``sending`` (committed) *before* the request, so a crash leaves
  a trace: on the next start it becomes ``unknown`` and is held for the
  operator (``on_unknown = "hold"``) — never silently sent twice;
- sends it, and records the answer right after it comes:

  ============================  =============================================
  answer                        what happens
  ============================  =============================================
  ok                            ``posted`` with the message token
  connection failed (not sent)  retried with exponential back-off and jitter
  HTTP 5xx, status 12, other    retried likewise, ``max_attempts`` in all,
                                then ``failed``; 12 also slows the channel
                                down for ``rate_limit_cooldown``
  sent but no answer            ``unknown`` (the post may be out), held for
  (read timeout, dropped)       the operator (``retry ID`` / ``skip ID``); with
                                ``on_unknown = "retry"`` retried like a 5xx
  3, 4, bot-only codes          ``failed`` at once, Viber's message kept
  10 (webhook not set)          the webhook is set once (``public_url``
                                needed), then retried at once; again 10:
                                retried with back-off
  2, 7, 8, 9                    posting stops; the service stays up, health
                                turns red, the token or account is checked
                                again every few minutes and posting resumes
                                by itself once Viber accepts it
  ============================  =============================================
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from publisher.adapters.sqlite import Store
from publisher.core.config import Config
from publisher.core.errors import (
    MessageError,
    RateLimitedError,
    SenderError,
    ViberAmbiguousError,
    ViberError,
    ViberFatalError,
    ViberRejectedError,
    WebhookNotSetError,
)
from publisher.core.policy import Idle, Post, Skip, Wait, history_horizon, next_post
from publisher.core.records import OutboxRow

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
#: The longest wait between two attempts of one post.
MAX_RETRY_DELAY = timedelta(hours=6)


class Deliverer:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: Any,
        *,
        clock: Callable[[], datetime],
        metrics: Any = None,
        alerter: Any = None,
        on_done: OnDone | None = None,
        rng: random.Random | None = None,
        public_url: str | None = None,
    ) -> None:
        self.public_url = public_url if public_url is not None else config.public_url
        self.config = config
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
        self.last_verdict: Any = None

    # -- state shown by status and health -----------------------------------

    @property
    def stopped_reason(self) -> str | None:
        return self.store.channel().stopped_reason()

    def _stop_posting(self, reason: str) -> None:
        now = self.clock()
        if self.store.channel().stopped_reason() != reason:
            log.error("posting stopped: %s", reason)
            self._last_nag = now
        self.store.channel().set_stopped(reason)
        self._last_check = now
        if self.metrics is not None:
            self.metrics.set_posting_stopped(True)
        if self.alerter is not None:
            self.alerter.alert("posting_stopped", "channel", f"posting stopped: {reason}")

    def _resume(self) -> None:
        if self.store.channel().stopped_reason() is not None:
            log.warning("posting resumed: Viber accepts the token and account again")
            if self.alerter is not None:
                self.alerter.alert("recovered", "channel", "posting resumed")
        self.store.channel().set_stopped(None)
        if self.metrics is not None:
            self.metrics.set_posting_stopped(False)

    # -- webhook -----------------------------------------------------------

    def webhook_url(self) -> str | None:
        public = self.public_url
        if public is None:
            return None
        return public.rstrip("/") + self.config.server.webhook_path

    def ensure_webhook(self, force: bool = False) -> bool:
        """Set the webhook when ``public_url`` is configured and it is not set
        to it yet (Viber refuses posts before). Returns whether it is set."""
        url = self.webhook_url()
        if url is None:
            return False
        if not force and self.store.channel().webhook_url() == url:
            return True
        try:
            self.client.set_webhook(url)
        except ViberFatalError as exc:
            self._stop_posting(self._fatal_reason(exc))
            return False
        except ViberError as exc:
            log.error(
                "webhook: Viber did not accept %s: %s; it must answer 200 over HTTPS "
                "(check [server] public_url and the reverse proxy)",
                url,
                exc,
            )
            return False
        self.store.channel().set_webhook_url(url)
        log.info("webhook set to %s", url)
        return True

    def _fatal_reason(self, exc: ViberFatalError) -> str:
        """What the operator reads while posting is stopped: what to check."""
        where = self.config.viber.token_source()
        if exc.status in (2, 8):
            return (
                f"{exc}. The token is read from {where}; once Viber accepts it, posting "
                "resumes by itself (checked every few minutes)"
            )
        return (
            f"{exc}. Posting resumes by itself once Viber accepts the channel again "
            f"(checked every few minutes; the token is read from {where})"
        )

    # -- one step ----------------------------------------------------------

    def sender(self) -> str:
        if self._sender is None:
            # The client checks a configured sender_id is a superadmin.
            self._sender = self.client.sender()
        return self._sender

    def _check_account(self) -> None:
        """Ask Viber now (not a remembered answer) whom posts come from."""
        check = getattr(self.client, "superadmin", None)
        if callable(check) and hasattr(self.client, "get_account_info"):
            self._sender = str(check(self.client.get_account_info()).id)
        else:
            self._sender = self.client.sender()

    def _recheck(self, now: datetime) -> bool:
        """While stopped: check the account every few minutes; True if resumed."""
        if self._last_check is not None and now - self._last_check < RECHECK_EVERY:
            if self._last_nag is None or now - self._last_nag >= NAG_EVERY:
                log.error("posting is stopped: %s", self.stopped_reason)
                self._last_nag = now
            return False
        self._last_check = now
        try:
            self._sender = None
            self._check_account()
        except ViberFatalError as exc:
            self._stop_posting(self._fatal_reason(exc))
            return False
        except SenderError as exc:
            self._stop_posting(str(exc))
            return False
        except ViberError as exc:
            log.warning("posting is stopped; re-checking the account failed: %s", exc)
            return False
        self._resume()
        self.ensure_webhook()
        return True

    def verdict(self, now: datetime) -> Any:
        rows = self.store.pending(now)
        history = self.store.history_since(
            now - history_horizon(self.config.delivery.policy, self._source_policies())
        )
        return next_post(
            [row.candidate() for row in rows],
            history,
            self.config.delivery.policy,
            self._source_policies(),
            now,
            cooldown_until=self.store.channel().cooldown_until(),
        )

    def _source_policies(self) -> dict[str, Any]:
        return {source.name: source.policy for source in self.config.sources}

    def has_due_work(self) -> bool:
        return not isinstance(self.last_verdict, Idle)

    def step(self) -> timedelta | None:
        """Do one thing. Returns None to be called again at once, or how long
        to wait (new items may wake the caller sooner)."""
        now = self.clock()
        if self.stopped_reason is not None and not self._recheck(now):
            self.last_verdict = Idle("posting stopped")
            return RECHECK_EVERY
        verdict = self.verdict(now)
        self.last_verdict = verdict
        if isinstance(verdict, Idle):
            retry_at = self.store.next_attempt()
            if retry_at is not None and retry_at > now:
                return retry_at - now
            return IDLE_WAIT
        if isinstance(verdict, Wait):
            return max(verdict.until - now, timedelta(milliseconds=50))
        if isinstance(verdict, Skip):
            skipped = self.store.mark_skipped(verdict.candidate.id, verdict.reason, now)
            log.info("post %s skipped: %s", verdict.candidate.id, verdict.reason)
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
        now = self.clock()
        try:
            sender = self.sender()
        except ViberFatalError as exc:
            self._stop_posting(self._fatal_reason(exc))
            return
        except SenderError as exc:
            self._stop_posting(str(exc))
            return
        except ViberError as exc:
            log.warning("delivery: cannot read the channel's account yet: %s", exc)
            self._cool_down(now + ACCOUNT_RETRY)
            return
        if not self.store.claim(row.id, now):
            return
        started = self.clock()
        try:
            result = self.client.post(row.payload, sender=sender)
        except ViberAmbiguousError as exc:
            self._ambiguous(row, str(exc))
            return
        except ViberFatalError as exc:
            # Not the post's fault: it goes again, unchanged, once posting resumes.
            self.store.mark_retry(row.id, str(exc), now, self.clock(), refund=True)
            self._stop_posting(self._fatal_reason(exc))
            return
        except WebhookNotSetError as exc:
            if not self._webhook_forced and self.ensure_webhook(force=True):
                self._webhook_forced = True
                self.store.mark_retry(row.id, str(exc), self.clock(), self.clock(), refund=True)
            elif self.webhook_url() is None:
                self._retry_or_fail(row, f"{exc}; set [server] public_url so it can be set")
            else:
                self._retry_or_fail(row, str(exc))
            return
        except (ViberRejectedError, MessageError) as exc:
            reason = f"refused by Viber: {exc}"
            also = self.store.mark_failed(row.id, reason, self.clock())
            self._count("rejected", row)
            log.error("post %s (%s/%s) failed: %s", row.id, row.source, row.item_key, reason)
            if self.alerter is not None:
                self.alerter.alert("post_failed", row.source, f"post {row.id} failed: {reason}")
            self._finish_item(row, ok=False, reason=reason, also=also)
            return
        except RateLimitedError as exc:
            cooldown = self.config.delivery.rate_limit_cooldown
            self._cool_down(self.clock() + cooldown)
            log.warning("Viber says too many requests; slowing down for %s", cooldown)
            self._retry_or_fail(row, str(exc))
            return
        except ViberError as exc:  # not sent, HTTP 5xx, general status: retryable
            self._retry_or_fail(row, str(exc))
            return
        except BaseException as exc:
            # A bug or an interruption mid-request: the post may be out.
            self._ambiguous(row, f"interrupted while sending ({type(exc).__name__}: {exc})")
            raise
        self._webhook_forced = False
        finished = self.clock()
        self.store.mark_posted(row.id, result.message_token, finished)
        self.store.channel().set_last_post_at(finished)
        self._count("ok", row, (finished - started).total_seconds())
        log.info(
            "posted %s (%s/%s) token=%s", row.id, row.source, row.item_key, result.message_token
        )
        self._finish_item(row, ok=True, reason=None)

    def _ambiguous(self, row: OutboxRow, detail: str) -> None:
        """Sent, but no answer: ``unknown`` (hold), or retried (``on_unknown = "retry"``)."""
        self._count("ambiguous", row)
        if self.config.delivery.on_unknown == "retry":
            log.warning(
                "post %s: fate unknown (%s); on_unknown = retry: sending again", row.id, detail
            )
            self._retry_or_fail(row, f"fate unknown, sent again (on_unknown = retry): {detail}")
            return
        self.store.mark_unknown(
            row.id,
            f"sent, but no answer came ({detail}); it may have been posted — check the "
            f"channel, then `viber-publisher retry {row.id}` or `viber-publisher skip {row.id}`",
            self.clock(),
        )
        log.warning(
            "post %s: fate unknown: %s; held until `viber-publisher retry %s` or `skip %s`",
            row.id,
            detail,
            row.id,
            row.id,
        )

    def _cool_down(self, until: datetime) -> None:
        self.store.channel().extend_cooldown(until)

    def _retry_or_fail(self, row: OutboxRow, reason: str) -> None:
        now = self.clock()
        current = self.store.get(row.id)
        attempts = current.attempts if current is not None else row.attempts + 1
        if attempts >= self.config.delivery.max_attempts:
            reason = f"gave up after {attempts} attempts: {reason}"
            also = self.store.mark_failed(row.id, reason, now)
            self._count("failed", row)
            log.error("post %s failed: %s", row.id, reason)
            if self.alerter is not None:
                self.alerter.alert("post_failed", row.source, f"post {row.id} failed: {reason}")
            self._finish_item(row, ok=False, reason=reason, also=also)
            return
        base = self.config.delivery.retry_backoff.total_seconds()
        delay = min(base * (2 ** (attempts - 1)), MAX_RETRY_DELAY.total_seconds())
        delay *= self.rng.uniform(0.8, 1.2)
        next_at = now + timedelta(seconds=delay)
        self.store.mark_retry(row.id, reason, next_at, now)
        log.warning(
            "post %s: %s; retry %d of %d at %s",
            row.id,
            reason,
            attempts,
            self.config.delivery.max_attempts - 1,
            next_at.strftime("%H:%M:%S UTC"),
        )

    def _count(self, result: str, row: OutboxRow, seconds: float | None = None) -> None:
        if self.metrics is None:
            return
        self.metrics.post(result, seconds)
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
        rows = self.store.item_rows(row.group_id)
        if any(r.status not in ("posted", "failed", "skipped") for r in rows):
            return
        all_ok = all(r.status == "posted" for r in rows)
        if not all_ok and reason is None:
            reason = next((r.reason for r in rows if r.reason), "not posted")
        try:
            self.on_done(row.source, list(row.files), all_ok, reason)
        except Exception as exc:  # the post is recorded; a file move must not undo that
            log.error("source %s: moving the item's files failed: %s", row.source, exc)
