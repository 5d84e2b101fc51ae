"""What an answer from Viber means for the post: one table, for the service and ``post``.

:func:`outcome_of` turns the exception a channel call raised (or ``None``:
it answered ``status 0``) into an :class:`Outcome`: an :class:`Action`, the
reason a person reads, and whether the attempt counts against
``max_attempts``. The service's deliver stage
(:meth:`publisher.pipeline.deliver.Deliverer.send`) and the one-shot
``viber-publisher post`` (:func:`publisher.cli.post._post_now`) both dispatch
on it, so they cannot drift apart.

A post is marked ``sending`` (committed) *before* the request, so a crash
leaves a trace: on the next start it becomes ``unknown`` and is held for the
operator (``on_unknown = "hold"``) — never silently sent twice. Then:

==============================  ================  ======  =========================================
answer                          action            counts  the service / ``post``
==============================  ================  ======  =========================================
ok (status 0)                   ``POSTED``        yes     ``posted`` with the message token
connection failed (not sent),   ``RETRY``         yes     an outage (``outage``): retried with
HTTP 5xx                        (``outage``)              back-off; when it goes on (a second
                                                          answer in a row, or the post's last
                                                          attempt) the channel is held instead:
                                                          the post keeps its place (attempt
                                                          refunded), readyz red, one alert, Viber
                                                          probed with back-off, posting resumes
                                                          when it answers; never ``failed`` by
                                                          an outage / ``post``: as ``RETRY``
HTTP 429 / other error,         ``RETRY``         yes     retried with exponential back-off and
status 1 or another status                                jitter (:func:`backoff_delay`),
                                                          ``max_attempts`` in all, then ``failed``
                                                          / ``post`` waits the back-off while its
                                                          ``--wait`` lasts, else says when to try
                                                          again
status 12 (too many requests)   ``COOL_DOWN``     yes     as ``RETRY``, and the whole channel
                                                          waits ``rate_limit_cooldown`` first
sent but no answer (read        ``HOLD``          yes     ``unknown`` (the post may be out), held
timeout, dropped, a 200 that                              for the operator (``retry ID`` /
is not Viber's JSON)                                      ``skip ID``); with ``on_unknown =
                                                          "retry"`` it is ``RETRY`` instead
status 3, 4, bot-only codes;    ``FAIL``          yes     ``failed`` at once, Viber's message kept
a message over a limit
status 10 (webhook not set)     ``SET_WEBHOOK``  no      the webhook is set once (``public_url``
                                                          needed), then retried at once; again
                                                          10: ``RETRY``
status 2, 7, 8, 9 (token or     ``STOP``          no      posting stops, the post stays queued;
account); no superadmin                                   health/readyz red, alert; the account is
sender; ``api_url`` answers                               checked again every few minutes and
404 / 405 / a redirect (not                               posting resumes once Viber accepts it
Viber: nothing was posted);                               / ``post`` exits 3 (token, account),
a config error                                            2 (config, ``api_url``)
anything else (a bug, an        ``HOLD``          yes     as "no answer", then re-raised
interruption mid-request)       (``reraise``)
==============================  ================  ======  =========================================

The rows are looked up by the exception's class, most specific first
(``type(exc).__mro__``), so a new subclass inherits its parent's row until
it gets its own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from publisher.core import errors

#: The longest wait between two attempts of one post.
MAX_RETRY_DELAY = timedelta(hours=6)
#: Each back-off is multiplied by a factor drawn from this range.
JITTER = (0.8, 1.2)


class Action(enum.Enum):
    """What happens to the post after one attempt."""

    #: Viber accepted it: record the message token.
    POSTED = "posted"
    #: Try again after the back-off (the attempt counts).
    RETRY = "retry"
    #: Slow the whole channel down for ``rate_limit_cooldown``, then as RETRY.
    COOL_DOWN = "cool down"
    #: It may be out: ``unknown``, held until the operator says retry or skip.
    HOLD = "hold"
    #: Viber refused this post: ``failed``, never sent again unchanged.
    FAIL = "fail"
    #: Not the post's fault (token, account, sender, configuration): stop
    #: posting until it is fixed; the post waits, its attempt refunded.
    STOP = "stop"
    #: Set the webhook, then try again (the attempt refunded).
    SET_WEBHOOK = "set webhook"


@dataclass(frozen=True)
class Outcome:
    action: Action
    #: What a person reads (the post's reason, the log line, the exit line).
    reason: str
    #: Whether the attempt counts against ``max_attempts``.
    counts: bool = True
    #: Whether the request may have reached Viber (the post may be out).
    maybe_sent: bool = False
    #: STOP only: the fix is in the configuration (``post`` exits 2), not at Viber.
    config: bool = False
    #: Not an answer but a bug or an interruption: the caller re-raises it.
    reraise: bool = False
    #: RETRY only: Viber is out of reach or failing (nothing was sent: no
    #: connection, HTTP 5xx), not this post's fault: the service waits the
    #: outage out with the channel held instead of spending the post's attempts.
    outage: bool = False


@dataclass(frozen=True)
class _Row:
    action: Action
    counts: bool = True
    maybe_sent: bool = False
    config: bool = False
    reraise: bool = False
    prefix: str = ""
    #: An outage (for ViberHTTPError: only a 5xx status).
    outage: bool = False


_RETRY = _Row(Action.RETRY)
#: Any other exception: a bug or an interruption mid-request; the post may be out.
_UNEXPECTED = _Row(Action.HOLD, maybe_sent=True, reraise=True, prefix="interrupted while sending")

#: The table, by exception class (a class not listed takes its nearest listed base).
TABLE: Mapping[type[BaseException], _Row] = {
    errors.ViberError: _RETRY,
    errors.ViberTransportError: _RETRY,
    errors.ViberConnectError: _Row(Action.RETRY, outage=True),
    errors.ViberHTTPError: _Row(Action.RETRY, outage=True),
    errors.ViberAmbiguousError: _Row(Action.HOLD, maybe_sent=True),
    errors.WrongAPIURLError: _Row(Action.STOP, counts=False, config=True),
    errors.ViberAPIError: _RETRY,
    errors.ViberGeneralError: _RETRY,
    errors.WebhookRefusedError: _RETRY,
    errors.RateLimitedError: _Row(Action.COOL_DOWN),
    errors.ViberRejectedError: _Row(Action.FAIL, prefix="refused by Viber: "),
    errors.MessageError: _Row(Action.FAIL, prefix="refused: "),
    errors.WebhookNotSetError: _Row(Action.SET_WEBHOOK, counts=False),
    errors.ViberFatalError: _Row(Action.STOP, counts=False),
    errors.SenderError: _Row(Action.STOP, counts=False),
    errors.ConfigError: _Row(Action.STOP, counts=False, config=True),
}


def outcome_of(
    exc: BaseException | None, *, on_unknown: Literal["hold", "retry"] = "hold"
) -> Outcome:
    """What the answer ``exc`` (None: ``status 0``) means for the post.

    ``on_unknown`` is ``[delivery] on_unknown``: with ``"retry"`` a post
    whose fate is unknown is sent again (RETRY, ``maybe_sent``) instead of held.
    """
    if exc is None:
        return Outcome(Action.POSTED, "posted")
    row = next((TABLE[cls] for cls in type(exc).__mro__ if cls in TABLE), _UNEXPECTED)
    if row is _UNEXPECTED:
        reason = f"{row.prefix} ({type(exc).__name__}: {exc})"
    else:
        reason = row.prefix + str(exc)
    if row.action is Action.HOLD and on_unknown == "retry":
        return Outcome(
            Action.RETRY,
            f"fate unknown, sent again (on_unknown = retry): {reason}",
            counts=row.counts,
            maybe_sent=True,
            reraise=row.reraise,
        )
    outage = row.outage and (not isinstance(exc, errors.ViberHTTPError) or exc.http_status >= 500)
    return Outcome(row.action, reason, row.counts, row.maybe_sent, row.config, row.reraise, outage)


def backoff_delay(attempts: int, base: timedelta, jitter: float = 1.0) -> timedelta:
    """How long to wait after the ``attempts``-th attempt failed: ``base``
    doubled each attempt, at most :data:`MAX_RETRY_DELAY`, times ``jitter``
    (drawn from :data:`JITTER` by the caller)."""
    seconds = base.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 64)
    return timedelta(seconds=min(seconds, MAX_RETRY_DELAY.total_seconds()) * jitter)
