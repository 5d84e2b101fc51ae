"""Prometheus metrics, in a registry of their own (not the global one), so
tests and several services in one process never clash.

Every metric is named ``viber_publisher_*``::

    polls_total{source,result}          result: ok, not_modified, unchanged, error
    fetch_seconds{source}               histogram: one poll's fetch time
    items_total{source,outcome}         outcome: seen, queued, posted, failed, skipped
    items_skipped_total{source,reason}  why items were skipped: filtered, duplicate, ...
    post_seconds                        histogram: one post call to Viber
    posts_total{result}                 ok, rejected, rate_limited, retry, ambiguous,
                                        fatal, failed
    alerts_total{kind,result}           sent, suppressed, failed
    outbox_depth                        posts waiting (set, or read from a callback)
    media_bytes, media_files            the media folder's size, read at each scrape
                                        (NaN with S3 media: a bucket is not listed)
    last_poll_success_timestamp_seconds{source}
    last_post_timestamp_seconds
    posting_stopped                     1 while posting is stopped (token refused...)
    source_paused{source}               1 while a source is paused after failures
    info{version}                       always 1

Label values that are not in the documented sets become ``other`` (reasons
are reduced to ``[a-z0-9_]``), so a caller's typo can never blow up the
number of series. :meth:`Metrics.render` gives the body and content type of
``GET /metrics``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from publisher import __version__

PREFIX = "viber_publisher"

POLL_RESULTS = frozenset({"ok", "not_modified", "unchanged", "error"})
#: Results of a poll that count as "the source answered".
POLL_SUCCESS = frozenset({"ok", "not_modified", "unchanged"})
ITEM_OUTCOMES = frozenset({"seen", "queued", "posted", "failed", "skipped"})
POST_RESULTS = frozenset(
    {"ok", "rejected", "rate_limited", "retry", "ambiguous", "fatal", "failed"}
)
ALERT_RESULTS = frozenset({"sent", "suppressed", "failed"})
OTHER = "other"

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
POST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)

_REASON = re.compile(r"[^a-z0-9_]+")


def _pick(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


def _reason(value: str) -> str:
    reason = _REASON.sub("_", value.strip().lower()).strip("_")[:32]
    return reason or OTHER


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Metrics:
    """All of the service's metrics. Methods are cheap and thread-safe."""

    def __init__(
        self,
        clock: Callable[[], datetime] = _utc_now,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls_total = Counter(
            f"{PREFIX}_polls", "Polls of a source, by result.", ["source", "result"], registry=r
        )
        self.fetch_seconds = Histogram(
            f"{PREFIX}_fetch_seconds",
            "Time to fetch a source once.",
            ["source"],
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.items_total = Counter(
            f"{PREFIX}_items",
            "Items of a source, by what became of them.",
            ["source", "outcome"],
            registry=r,
        )
        self.items_skipped_total = Counter(
            f"{PREFIX}_items_skipped",
            "Items skipped, by reason (these are also counted as outcome=skipped).",
            ["source", "reason"],
            registry=r,
        )
        self.post_seconds = Histogram(
            f"{PREFIX}_post_seconds",
            "Time of one post call to the channel.",
            ["channel"],
            buckets=POST_BUCKETS,
            registry=r,
        )
        self.posts_total = Counter(
            f"{PREFIX}_posts",
            "Post calls to a channel, by result.",
            ["channel", "result"],
            registry=r,
        )
        self.alerts_total = Counter(
            f"{PREFIX}_alerts", "Alerts, by kind and result.", ["kind", "result"], registry=r
        )
        self.outbox_depth = Gauge(
            f"{PREFIX}_outbox_depth", "Posts waiting in the outbox.", registry=r
        )
        self.media_bytes = Gauge(
            f"{PREFIX}_media_bytes", "Bytes of the stored media files (the folder).", registry=r
        )
        self.media_files = Gauge(
            f"{PREFIX}_media_files", "Stored media files (the folder).", registry=r
        )
        self.last_poll_success = Gauge(
            f"{PREFIX}_last_poll_success_timestamp_seconds",
            "When a source last answered a poll (Unix time).",
            ["source"],
            registry=r,
        )
        self.last_post = Gauge(
            f"{PREFIX}_last_post_timestamp_seconds",
            "When the last post went out to a channel (Unix time).",
            ["channel"],
            registry=r,
        )
        self.posting_stopped = Gauge(
            f"{PREFIX}_posting_stopped",
            "1 while posting to a channel is stopped and needs the operator.",
            ["channel"],
            registry=r,
        )
        self.source_paused = Gauge(
            f"{PREFIX}_source_paused",
            "1 while a source is paused after repeated failures.",
            ["source"],
            registry=r,
        )
        self.info = Gauge(f"{PREFIX}_info", "The running version.", ["version"], registry=r)
        self.info.labels(version=__version__).set(1)

    # -- sources ---------------------------------------------------------

    def poll(self, source: str, result: str, seconds: float | None = None) -> None:
        """One poll of ``source`` ended with ``result``, its fetch took ``seconds``."""
        result = _pick(result, POLL_RESULTS)
        self.polls_total.labels(source=source, result=result).inc()
        if seconds is not None:
            self.fetch_seconds.labels(source=source).observe(max(seconds, 0.0))
        if result in POLL_SUCCESS:
            self.last_poll_success.labels(source=source).set(self.clock().timestamp())

    def item(self, source: str, outcome: str, reason: str | None = None, count: int = 1) -> None:
        """``count`` items of ``source`` reached ``outcome``; skipped ones say why."""
        if count <= 0:
            return
        outcome = _pick(outcome, ITEM_OUTCOMES)
        self.items_total.labels(source=source, outcome=outcome).inc(count)
        if outcome == "skipped":
            self.items_skipped_total.labels(source=source, reason=_reason(reason or "")).inc(count)

    def set_source_paused(self, source: str, paused: bool) -> None:
        self.source_paused.labels(source=source).set(1 if paused else 0)

    def forget_source(self, source: str) -> None:
        """Drop every series of a source that is no longer configured."""
        for metric in (
            self.polls_total,
            self.fetch_seconds,
            self.items_total,
            self.items_skipped_total,
            self.last_poll_success,
            self.source_paused,
        ):
            metric.remove_by_labels({"source": source})

    # -- posting ---------------------------------------------------------

    def post(self, result: str, seconds: float | None = None, channel: str = "main") -> None:
        """One post call to ``channel`` ended with ``result`` after ``seconds``."""
        result = _pick(result, POST_RESULTS)
        self.posts_total.labels(channel=channel, result=result).inc()
        if seconds is not None:
            self.post_seconds.labels(channel=channel).observe(max(seconds, 0.0))
        if result == "ok":
            self.last_post.labels(channel=channel).set(self.clock().timestamp())

    def set_outbox_depth(self, depth: int) -> None:
        self.outbox_depth.set(depth)

    def outbox_depth_from(self, read: Callable[[], float]) -> None:
        """Read the outbox depth at every scrape (e.g. a COUNT query)."""
        self.outbox_depth.set_function(read)

    def media_size_from(self, read: Callable[[], tuple[int, int]] | None) -> None:
        """Read ``(files, bytes)`` of the media folder at every scrape; NaN
        while it cannot be read (a scrape never fails because of it), and
        with ``read=None`` (S3 media, which are not listed)."""

        def part(index: int) -> Callable[[], float]:
            def value() -> float:
                if read is None:
                    return float("nan")
                try:
                    return float(read()[index])
                except OSError:
                    return float("nan")

            return value

        self.media_files.set_function(part(0))
        self.media_bytes.set_function(part(1))

    def set_posting_stopped(self, stopped: bool, channel: str = "main") -> None:
        self.posting_stopped.labels(channel=channel).set(1 if stopped else 0)

    def alert(self, kind: str, result: str) -> None:
        self.alerts_total.labels(kind=_reason(kind), result=_pick(result, ALERT_RESULTS)).inc()

    # -- exposition ------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type.

        Negotiated from ``accept`` (the request's Accept header) by the client
        library: the classic text format (0.0.4) unless the scraper asks for
        OpenMetrics or a newer text format.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
