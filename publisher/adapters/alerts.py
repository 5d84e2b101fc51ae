"""Alerts to the operator: a source paused, posting stopped, a post failed,
and all clear again.

An outage must not become a flood: at most one alert per (kind, subject) per
``[alerts] min_interval``, and at most ``max_per_hour`` alerts in all. Alerts
held back are counted, and the next one of the same kind and subject that
goes out says how many (``"suppressed": n``).

Every alert is logged. With ``[alerts] webhook_url`` it is also POSTed as JSON
from a background thread (short timeout), so the caller never waits for the
operator's endpoint::

    {"kind": "source_paused", "subject": "blog", "message": "...",
     "time": "2026-03-01T12:00:00+00:00", "service": "viber-publisher",
     "text": "[viber-publisher] source_paused: blog: ...", ...details}

``text`` makes the same body work for Slack-style incoming webhooks
(Slack, Mattermost, Rocket.Chat). A failed delivery is logged as a warning
and dropped; it never raises. Registered secrets (the auth token) are
redacted from every string, and the webhook URL, which often carries a
secret of its own, is never logged in full.

The rate-limit state lives in memory: after a restart, one alert of each
kind and subject may repeat.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from publisher import __version__
from publisher.adapters.metrics import Metrics
from publisher.core.config import AlertsConfig
from publisher.logs import redact

log = logging.getLogger("publisher.adapters.alerts")

KINDS = frozenset({"source_paused", "posting_stopped", "post_failed", "recovered"})
SERVICE = "viber-publisher"
#: How long one webhook request may take, in seconds.
SEND_TIMEOUT = 5.0
#: Alerts waiting for the webhook beyond this many are dropped (and logged).
QUEUE_SIZE = 100
#: Keys the payload always has; ``details`` cannot override them.
CORE_KEYS = ("kind", "subject", "message", "time", "service", "text")

Send = Callable[[str, dict[str, Any]], None]


def webhook_send(url: str, payload: dict[str, Any], timeout: float = SEND_TIMEOUT) -> None:
    """POST ``payload`` as JSON to ``url``; raise on any failure or non-2xx answer."""
    response = httpx.post(
        url,
        json=payload,
        timeout=timeout,
        headers={"User-Agent": f"viber-publisher/{__version__} (alerts)"},
        follow_redirects=False,
    )
    response.raise_for_status()


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def _where(url: str) -> str:
    """The webhook's host, for log lines (its path may hold a secret)."""
    return urlsplit(url).netloc or "the alerts webhook"


class Alerter:
    """Rate-limited alerts; see the module docstring.

    ``clock`` gives the current time (timezone-aware); ``send(url, payload)``
    replaces the webhook POST (it may raise: failures are logged).
    """

    def __init__(
        self,
        config: AlertsConfig,
        clock: Callable[[], datetime],
        send: Send | None = None,
        *,
        max_per_hour: int = 20,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.max_per_hour = max_per_hour
        self.metrics = metrics
        self._send: Send = send if send is not None else webhook_send
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], datetime] = {}
        self._suppressed: dict[tuple[str, str], int] = {}
        self._recent: deque[datetime] = deque()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None

    def alert(
        self, kind: str, subject: str, message: str, details: dict[str, Any] | None = None
    ) -> bool:
        """Log the alert and hand it to the webhook, unless rate-limited.

        Returns True when it went out (logged, and queued for the webhook if
        one is configured), False when it was held back by the rate limit.
        Raises ValueError only for a kind that is not one of :data:`KINDS`.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown alert kind {kind!r}; use one of {sorted(KINDS)}")
        now = self.clock()
        key = (kind, subject)
        with self._lock:
            last = self._last.get(key)
            hour_ago = now - timedelta(hours=1)
            while self._recent and self._recent[0] <= hour_ago:
                self._recent.popleft()
            limited = last is not None and now - last < self.config.min_interval
            capped = len(self._recent) >= self.max_per_hour
            if limited or capped:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                suppressed = -1
            else:
                self._last[key] = now
                self._recent.append(now)
                suppressed = self._suppressed.pop(key, 0)
        if suppressed < 0:
            why = "per-hour cap" if capped and not limited else "min_interval"
            log.debug("alert %s for %s held back (%s)", kind, subject, why)
            self._count(kind, "suppressed")
            return False

        payload = _redacted(dict(details or {}))
        text = f"[{SERVICE}] {kind}: {subject}: {message}"
        payload.update(
            kind=kind,
            subject=redact(subject),
            message=redact(message),
            time=now.isoformat(),
            service=SERVICE,
            text=redact(text),
        )
        if suppressed:
            payload["suppressed"] = suppressed
        level = logging.INFO if kind == "recovered" else logging.WARNING
        log.log(level, "alert %s: %s: %s", kind, subject, message, extra={"alert": kind})
        if self.config.webhook_url is None:
            self._count(kind, "sent")
            return True
        self._enqueue(payload)
        return True

    # -- the webhook worker ------------------------------------------------

    def _enqueue(self, payload: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="alerts-webhook", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.warning(
                "alert %s dropped: %d alerts already wait for %s",
                payload["kind"],
                QUEUE_SIZE,
                _where(self.config.webhook_url or ""),
            )
            self._count(str(payload["kind"]), "failed")

    def _work(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                if payload is None:
                    return
                self._deliver(payload)
            finally:
                self._queue.task_done()

    def _deliver(self, payload: dict[str, Any]) -> None:
        url = self.config.webhook_url
        if url is None:
            return
        kind = str(payload["kind"])
        try:
            self._send(url, payload)
        except Exception as exc:  # never let an alert take the service down
            log.warning(
                "alert %s could not be sent to %s: %s",
                kind,
                _where(url),
                redact(_describe(exc)),
            )
            self._count(kind, "failed")
        else:
            self._count(kind, "sent")

    def _count(self, kind: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.alert(kind, result)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert was delivered or failed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (waiting at most ``timeout``), then stop the worker."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self.flush(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        thread.join(timeout)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
