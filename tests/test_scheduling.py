"""The scheduler's jittered ticks poll a source when it is due, and only then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from publisher.config import parse_config
from publisher.service.runner import Service

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("next_poll_after", "tick_after", "due"),
    [
        # a plain interval: a tick a little early (jitter) still polls
        (timedelta(minutes=10), timedelta(minutes=10), True),
        (timedelta(minutes=10), timedelta(minutes=9), True),
        (timedelta(minutes=10), timedelta(minutes=11), True),
        # ...but not one far too early
        (timedelta(minutes=10), timedelta(minutes=5), False),
        # back-off or Retry-After pushed the next poll out: ticks are skipped
        (timedelta(minutes=80), timedelta(minutes=10), False),
        (timedelta(minutes=80), timedelta(minutes=30), False),
        (timedelta(minutes=80), timedelta(minutes=79), True),
    ],
)
def test_due(tmp_path: Path, next_poll_after: timedelta, tick_after: timedelta, due: bool) -> None:
    now = [T0]
    config = parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [{"name": "blog", "type": "rss", "url": "https://x/feed", "every": "10m"}],
        }
    )
    service = Service(config, clock=lambda: now[0], serve=False)
    try:
        source = config.source("blog")
        assert service._due(source), "a source never polled is due"
        service.store.record_poll("blog", T0, ok=True, next_poll=T0 + next_poll_after)
        now[0] = T0 + tick_after
        assert service._due(source) is due
    finally:
        service.close()
