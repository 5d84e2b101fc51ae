"""Polls that find nothing new are written together, one transaction per
turn of the service, not one per source (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import feed_server

from publisher.config import parse_config
from publisher.service.runner import POLL_WORKERS, Service, poll_workers

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BODY = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
    b"<link>https://example.org/</link><item><title>Post</title>"
    b"<link>https://example.org/1</link><guid>post-1</guid></item></channel></rss>"
)


@pytest.fixture
def feed_url() -> Iterator[str]:
    with feed_server(BODY, etag='"v1"') as url:
        yield url


@pytest.fixture
def service(tmp_path: Path, feed_url: str) -> Iterator[tuple[Service, list[datetime]]]:
    config = parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [
                {"name": f"s{n}", "type": "rss", "url": f"{feed_url}/{n}"} for n in range(5)
            ],
        }
    )
    now = [T0]
    running = Service(config, clock=lambda: now[0], serve=False)
    try:
        yield running, now
    finally:
        running.close()


def _count_writes(service: Service) -> list[list[str]]:
    """The sources of each write of polls (``record_polls``: one statement
    for them all) and of each poll written alone (``record_poll``)."""
    store = service.parts.store
    record_polls, record_poll = store.record_polls, store.record_poll
    writes: list[list[str]] = []

    def counted_many(polls: Any) -> None:
        writes.append([name for name, _, _ in polls])
        record_polls(polls)

    def counted_one(name: str, *args: Any, **kwargs: Any) -> Any:
        writes.append([name])
        return record_poll(name, *args, **kwargs)

    store.record_polls = counted_many  # type: ignore[method-assign]
    store.record_poll = counted_one  # type: ignore[method-assign]
    return writes


def test_unchanged_polls_are_one_transaction(
    service: tuple[Service, list[datetime]], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, now = service
    # poll_all also writes what it holds every FLUSH_EVERY seconds while polls
    # are still running (a loaded machine reached that): here, only at the end.
    monkeypatch.setattr("publisher.service.runner.FLUSH_EVERY", 60.0)
    assert all(o.result == "ok" for o in running.poll_all())
    now[0] = T0 + timedelta(hours=1)
    writes = _count_writes(running)
    outcomes = running.poll_all()
    assert [o.result for o in outcomes] == ["not_modified"] * 5
    assert [sorted(names) for names in writes] == [[f"s{n}" for n in range(5)]]
    for n in range(5):
        state = running.parts.store.get_source(f"s{n}")
        assert state.last_poll == now[0]
        assert state.last_success == now[0]
        assert state.etag == '"v1"'


def test_a_kept_back_poll_is_written_only_when_flushed(
    service: tuple[Service, list[datetime]],
) -> None:
    running, now = service
    running.poll_all()
    now[0] = T0 + timedelta(hours=1)
    poller = running.parts.poller
    source = running.parts.sources["s0"]
    outcome = poller.poll(source, defer_unchanged=True)
    assert outcome.result == "not_modified"
    assert running.parts.store.get_source("s0").last_poll == T0
    assert poller.flush_unchanged() == []
    assert running.parts.store.get_source("s0").last_poll == now[0]
    # without deferring, the poll is written at once
    now[0] = T0 + timedelta(hours=2)
    poller.poll(source)
    assert running.parts.store.get_source("s0").last_poll == now[0]


def test_poll_all_reads_the_states_once(service: tuple[Service, list[datetime]]) -> None:
    """``poll_all`` reads every source's state in one query and hands each
    poll its own, instead of one ``get_source`` per source."""
    running, now = service
    assert [o.result for o in running.poll_all()] == ["ok"] * 5
    store = running.parts.store
    reads: list[str] = []
    get_source, sources = store.get_source, store.sources

    def counted_get(name: str) -> Any:
        reads.append(name)
        return get_source(name)

    def counted_all() -> Any:
        reads.append("*")
        return sources()

    store.get_source = counted_get  # type: ignore[method-assign]
    store.sources = counted_all  # type: ignore[method-assign]
    now[0] = T0 + timedelta(hours=1)
    # the ETags come from the one read: every feed answers 304
    assert [o.result for o in running.poll_all()] == ["not_modified"] * 5
    assert reads == ["*"]
    store.get_source, store.sources = get_source, sources  # type: ignore[method-assign]
    assert all(s.last_poll == now[0] for s in store.sources())


def test_a_source_polled_alone_still_reads_its_state(
    service: tuple[Service, list[datetime]],
) -> None:
    running, now = service
    source = running.config.sources[0]
    assert running.poll_source(source).result == "ok"
    now[0] = T0 + timedelta(hours=1)
    assert running.poll_source(source).result == "not_modified"


def _sources(*urls: str, **fetch: Any) -> Any:
    return parse_config(
        {
            "viber": {"api_url": "local"},
            "fetch": fetch,
            "sources": [{"name": f"s{n}", "type": "rss", "url": url} for n, url in enumerate(urls)],
        }
    )


def test_poll_threads_are_as_many_as_the_hosts_can_keep_busy() -> None:
    """At most ``max_per_host`` polls of one host run at once: more threads
    than the hosts can keep busy would only wait their turn (issue 14)."""
    one_host = [f"https://blog.example/feed/{n}" for n in range(50)]
    assert poll_workers(_sources(*one_host)) == 2
    assert poll_workers(_sources(*one_host, max_per_host=3)) == 3
    many = [f"https://{n}.example/feed" for n in range(50)]
    assert poll_workers(_sources(*many)) == POLL_WORKERS
    assert poll_workers(_sources("https://a.example/f")) == 1
    # user:password@ and the port: the host is what the fetcher counts
    two = ["https://u:p@a.example/1", "https://A.example/2", "https://a.example:8443/3"]
    assert poll_workers(_sources(*two, max_per_host=1)) == 2
