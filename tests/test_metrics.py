"""Metrics: scrape the rendered text and watch the numbers move."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from helpers import T0, FakeClock
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from publisher import __version__
from publisher.adapters.metrics import Metrics


def scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return scrape(metrics).get((f"viber_publisher_{name}", frozenset(labels.items())))


@pytest.fixture
def metrics(clock: FakeClock) -> Metrics:
    return Metrics(clock=clock)


def test_polls_count_by_result_and_time_successes(metrics: Metrics, clock: FakeClock) -> None:
    assert value(metrics, "polls_total", source="blog", result="ok") is None
    metrics.poll("blog", "ok", seconds=0.3)
    metrics.poll("blog", "not_modified", seconds=0.1)
    metrics.poll("blog", "ok")
    assert value(metrics, "polls_total", source="blog", result="ok") == 2
    assert value(metrics, "polls_total", source="blog", result="not_modified") == 1
    assert value(metrics, "fetch_seconds_count", source="blog") == 2
    assert value(metrics, "fetch_seconds_sum", source="blog") == pytest.approx(0.4)
    assert value(metrics, "fetch_seconds_bucket", source="blog", le="0.25") == 1
    assert value(metrics, "last_poll_success_timestamp_seconds", source="blog") == pytest.approx(
        T0.timestamp()
    )

    clock.now = T0 + timedelta(minutes=10)
    metrics.poll("blog", "error", seconds=20.0)
    assert value(metrics, "polls_total", source="blog", result="error") == 1
    # A failed poll does not move the last success.
    assert value(metrics, "last_poll_success_timestamp_seconds", source="blog") == pytest.approx(
        T0.timestamp()
    )
    metrics.poll("blog", "unchanged")
    assert value(metrics, "last_poll_success_timestamp_seconds", source="blog") == pytest.approx(
        clock.now.timestamp()
    )


def test_items_by_outcome_and_skip_reason(metrics: Metrics) -> None:
    metrics.item("blog", "seen", count=5)
    metrics.item("blog", "queued", count=2)
    metrics.item("blog", "skipped", reason="duplicate")
    metrics.item("blog", "skipped", reason="filtered", count=2)
    metrics.item("blog", "posted")
    metrics.item("blog", "seen", count=0)
    assert value(metrics, "items_total", source="blog", outcome="seen") == 5
    assert value(metrics, "items_total", source="blog", outcome="queued") == 2
    assert value(metrics, "items_total", source="blog", outcome="posted") == 1
    assert value(metrics, "items_total", source="blog", outcome="skipped") == 3
    assert value(metrics, "items_skipped_total", source="blog", reason="duplicate") == 1
    assert value(metrics, "items_skipped_total", source="blog", reason="filtered") == 2


@pytest.mark.parametrize(
    ("call", "name", "labels"),
    [
        (lambda m: m.poll("s", "exploded"), "polls_total", {"source": "s", "result": "other"}),
        (lambda m: m.item("s", "vanished"), "items_total", {"source": "s", "outcome": "other"}),
        (lambda m: m.post("weird"), "posts_total", {"channel": "main", "result": "other"}),
        (
            lambda m: m.item("s", "skipped", reason="Too Old!"),
            "items_skipped_total",
            {"source": "s", "reason": "too_old"},
        ),
        (
            lambda m: m.item("s", "skipped"),
            "items_skipped_total",
            {"source": "s", "reason": "other"},
        ),
    ],
)
def test_unknown_label_values_are_bounded(
    metrics: Metrics, call: object, name: str, labels: dict[str, str]
) -> None:
    call(metrics)  # type: ignore[operator]
    assert value(metrics, name, **labels) == 1


def test_posts_and_last_post(metrics: Metrics, clock: FakeClock) -> None:
    metrics.post("rate_limited", seconds=0.2)
    assert value(metrics, "last_post_timestamp_seconds", channel="main") is None
    clock.now = T0 + timedelta(hours=1)
    metrics.post("ok", seconds=1.5)
    assert value(metrics, "posts_total", channel="main", result="ok") == 1
    assert value(metrics, "posts_total", channel="main", result="rate_limited") == 1
    assert value(metrics, "post_seconds_count", channel="main") == 2
    assert value(metrics, "post_seconds_bucket", channel="main", le="1.0") == 1
    assert value(metrics, "last_post_timestamp_seconds", channel="main") == pytest.approx(
        clock.now.timestamp()
    )
    metrics.post("ok", channel="sport")
    assert value(metrics, "posts_total", channel="sport", result="ok") == 1
    assert value(metrics, "posts_total", channel="main", result="ok") == 1


def test_gauges(metrics: Metrics) -> None:
    metrics.set_outbox_depth(7)
    assert value(metrics, "outbox_depth") == 7
    depth = [3]
    metrics.outbox_depth_from(lambda: depth[0])
    assert value(metrics, "outbox_depth") == 3
    depth[0] = 9
    assert value(metrics, "outbox_depth") == 9

    assert value(metrics, "posting_stopped", channel="main") is None
    metrics.set_posting_stopped(True)
    assert value(metrics, "posting_stopped", channel="main") == 1
    metrics.set_posting_stopped(True, channel="sport")
    metrics.set_posting_stopped(False)
    assert value(metrics, "posting_stopped", channel="main") == 0
    assert value(metrics, "posting_stopped", channel="sport") == 1

    metrics.set_source_paused("blog", True)
    assert value(metrics, "source_paused", source="blog") == 1
    metrics.set_source_paused("blog", False)
    assert value(metrics, "source_paused", source="blog") == 0

    metrics.alert("source_paused", "sent")
    metrics.alert("source_paused", "suppressed")
    assert value(metrics, "alerts_total", kind="source_paused", result="sent") == 1
    assert value(metrics, "alerts_total", kind="source_paused", result="suppressed") == 1
    assert value(metrics, "info", version=__version__) == 1


def test_forget_source_drops_only_its_series(metrics: Metrics) -> None:
    for name in ("old", "new"):
        metrics.poll(name, "ok", seconds=1)
        metrics.item(name, "skipped", reason="filtered")
        metrics.set_source_paused(name, True)
    metrics.forget_source("old")
    text = metrics.render()[0].decode()
    assert 'source="old"' not in text
    assert value(metrics, "polls_total", source="new", result="ok") == 1
    assert value(metrics, "source_paused", source="new") == 1


def test_registries_are_separate_and_not_global(clock: FakeClock) -> None:
    one, two = Metrics(clock=clock), Metrics(clock=clock)
    one.poll("blog", "ok")
    assert value(one, "polls_total", source="blog", result="ok") == 1
    assert value(two, "polls_total", source="blog", result="ok") is None
    assert (
        REGISTRY.get_sample_value("viber_publisher_polls_total", {"source": "blog", "result": "ok"})
        is None
    )


def test_openmetrics_on_request(metrics: Metrics) -> None:
    metrics.poll("blog", "ok")
    body, content_type = metrics.render(
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b'viber_publisher_polls_total{result="ok",source="blog"} 1.0' in body


def test_media_size_gauges_read_at_scrape_nan_when_unread(metrics: Metrics) -> None:
    size = [(2, 300)]

    def read() -> tuple[int, int]:
        if not size:
            raise PermissionError("media folder unreadable")
        return size[0]

    metrics.media_size_from(read)
    assert (value(metrics, "media_files"), value(metrics, "media_bytes")) == (2, 300)
    size[0] = (3, 700)
    assert (value(metrics, "media_files"), value(metrics, "media_bytes")) == (3, 700)
    size.clear()
    assert math.isnan(value(metrics, "media_files") or 0.0)
    metrics.media_size_from(None)  # S3 media: not listed
    assert math.isnan(value(metrics, "media_bytes") or 0.0)
