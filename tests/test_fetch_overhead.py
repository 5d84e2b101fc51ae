"""What a fetch costs besides the request: the watchdog thread is woken only
by a deadline earlier than the one it waits for (not by every request), and
a fetcher loads the CA certificates once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import feed_server, rss

from publisher.adapters import fetch
from publisher.adapters.tls import tls_context
from publisher.adapters.viber.client import ChannelClient


@pytest.fixture(scope="module")
def feed_url() -> Iterator[str]:
    with feed_server(rss(0), etag='"v1"') as url:
        yield url


class _CountingCondition:
    def __init__(self, real: threading.Condition) -> None:
        self._real = real
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        self._real.notify(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __enter__(self) -> bool:
        return self._real.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._real.__exit__(*exc)


def test_requests_with_the_same_timeout_do_not_wake_the_watchdog(feed_url: str) -> None:
    with fetch.Fetcher() as fetcher:
        first = fetcher.fetch_feed(feed_url)
        counting = _CountingCondition(fetcher._watchdog._cond)
        fetcher._watchdog._cond = counting  # type: ignore[assignment]
        for _ in range(20):
            assert fetcher.fetch_feed(feed_url, etag=first.etag).not_modified
        assert counting.notified <= 1


def test_an_earlier_deadline_still_wakes_the_watchdog() -> None:
    watchdog = fetch._Watchdog()
    try:
        late = watchdog.watch(time.monotonic() + 60)
        time.sleep(0.05)  # the thread now waits for the late deadline
        soon = watchdog.watch(time.monotonic() + 0.1)
        started = time.monotonic()
        while not soon.expired and time.monotonic() - started < 5:
            time.sleep(0.01)
        assert soon.expired and time.monotonic() - started < 1
        assert not late.expired
    finally:
        watchdog.close()


def test_the_ca_certificates_are_loaded_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetcher and every channel's client share one TLS context."""
    calls: list[object] = []
    real = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("verify", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    monkeypatch.setattr("httpx._transports.default.create_ssl_context", counting)
    tls_context.cache_clear()
    with fetch.Fetcher(), fetch.Fetcher(), ChannelClient("t" * 40), ChannelClient("u" * 40):
        pass
    assert sum(1 for verify in calls if verify is True) == 1
