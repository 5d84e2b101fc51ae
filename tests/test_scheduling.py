"""When a source is polled next: the pure rules (core.schedule) by table, and
the service following them across a Retry-After, a restart and a reload."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from publisher.adapters.httpserver import HTTPServer
from publisher.config import parse_config
from publisher.core.schedule import after_poll, backoff, due_at
from publisher.service.runner import Service

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(0, 10 * M, id="ok"),
        pytest.param(1, 10 * M, id="first failure: every"),
        pytest.param(2, 20 * M, id="doubles"),
        pytest.param(4, 80 * M, id="doubles again"),
        pytest.param(9, 360 * M, id="capped by max_backoff"),
        pytest.param(500, 360 * M, id="no overflow"),
    ],
)
def test_backoff(failures: int, expected: timedelta) -> None:
    assert backoff(10 * M, failures, timedelta(hours=6)) == expected


@pytest.mark.parametrize(
    ("ok", "previous", "floor", "due", "hold", "paused"),
    [
        pytest.param(True, 0, None, 10 * M, False, False, id="answered: every"),
        pytest.param(True, 3, None, 10 * M, False, False, id="answered after failures"),
        pytest.param(True, 0, 60 * M, 60 * M, True, False, id="max-age is a floor"),
        pytest.param(True, 0, 5 * M, 10 * M, False, False, id="a short floor changes nothing"),
        pytest.param(False, 0, None, 10 * M, False, False, id="first failure"),
        pytest.param(False, 1, None, 20 * M, True, False, id="backs off"),
        pytest.param(False, 0, 60 * M, 60 * M, True, False, id="Retry-After on a failure"),
        pytest.param(False, 4, None, 360 * M, True, True, id="paused: max_backoff"),
        pytest.param(False, 4, 600 * M, 600 * M, True, True, id="floor above max_backoff"),
    ],
)
def test_after_poll(
    ok: bool, previous: int, floor: timedelta | None, due: timedelta, hold: bool, paused: bool
) -> None:
    timing = after_poll(
        T0,
        every=10 * M,
        ok=ok,
        previous_failures=previous,
        floor=floor,
        max_backoff=timedelta(hours=6),
        pause_after=5,
    )
    assert timing.due == T0 + due
    assert (timing.hold is not None) is hold
    assert timing.hold is None or timing.hold == timing.due
    assert timing.paused is paused
    assert timing.failures == (0 if ok else previous + 1)


@pytest.mark.parametrize(
    ("every", "last_poll", "hold", "due"),
    [
        pytest.param(10 * M, None, None, T0, id="never polled: now"),
        pytest.param(10 * M, T0 - 3 * M, None, T0 + 7 * M, id="every after the last poll"),
        pytest.param(10 * M, T0 - 30 * M, None, T0 - 20 * M, id="overdue"),
        pytest.param(10 * M, T0, T0 + 60 * M, T0 + 60 * M, id="held"),
        pytest.param(10 * M, T0, T0 + 5 * M, T0 + 10 * M, id="a hold before every"),
        pytest.param(
            timedelta(seconds=10), T0, None, T0 + timedelta(seconds=10), id="a new every applies"
        ),
    ],
)
def test_due_at(
    every: timedelta, last_poll: datetime | None, hold: datetime | None, due: datetime
) -> None:
    assert due_at(every, last_poll, hold, T0) == due


# --------------------------------------------------------------------------
# the service


def _config(tmp_path: Path, url: str, every: str) -> Any:
    return parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [{"name": "blog", "type": "rss", "url": url, "every": every}],
        }
    )


@pytest.fixture
def busy_feed() -> Iterator[str]:
    """A feed server that answers 503 with ``Retry-After: 3600``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(
            "503 Service Unavailable", [("Retry-After", "3600"), ("Content-Length", "0")]
        )
        return [b""]

    with HTTPServer(app, host="127.0.0.1", port=0) as server:
        yield server.url + "/feed"


def test_retry_after_holds_the_source_for_as_long_as_asked(
    tmp_path: Path, busy_feed: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug: a 503 with Retry-After: 3600 on a 1m source was polled again after 60 s."""
    now = [T0]
    config = _config(tmp_path, busy_feed, "1m")
    service = Service(config, clock=lambda: now[0], serve=False)
    try:
        source = config.source("blog")
        assert service.due(source) == T0, "a source never polled is due at once"
        with caplog.at_level(logging.WARNING):
            outcome = service.poll_source(source)
        assert not outcome.ok
        assert service.due(source) >= T0 + timedelta(hours=1)
        assert "10:00:00" in caplog.text, "the log says when the next try is"
        now[0] = T0 + 2 * M
        assert service.due(source) > now[0], "not polled again after every"
    finally:
        service.close()


def test_a_restart_with_a_shorter_every_applies_it_at_once(tmp_path: Path) -> None:
    """Bug: after a restart with `every` changed from 1m to 10s, the stored
    next poll of the old interval was kept (the source waited ~58 s)."""
    now = [T0]
    first = Service(_config(tmp_path, "https://example.org/feed", "1m"), clock=lambda: now[0])
    first.store.record_poll("blog", T0, ok=True, next_poll=None)
    assert first.due(first.config.source("blog")) >= T0 + M
    first.close()

    config = _config(tmp_path, "https://example.org/feed", "10s")
    again = Service(config, clock=lambda: now[0], serve=False, rng=_NoJitter())
    try:
        assert again.due(config.source("blog")) == T0 + timedelta(seconds=10)
    finally:
        again.close()


def test_a_reload_with_a_new_every_applies_it_at_once(tmp_path: Path) -> None:
    now = [T0]
    service = Service(
        _config(tmp_path, "https://example.org/feed", "1h"),
        clock=lambda: now[0],
        serve=False,
        rng=_NoJitter(),
    )
    try:
        service.store.record_poll("blog", T0, ok=True, next_poll=None)
        assert service.due(service.config.source("blog")) == T0 + timedelta(hours=1)
        service.reload(_config(tmp_path, "https://example.org/feed", "5m"))
        assert service.due(service.config.source("blog")) == T0 + timedelta(minutes=5)
    finally:
        service.close()


class _NoJitter:
    def random(self) -> float:
        return 0.0


def _many(tmp_path: Path, names: Iterable[int]) -> Any:
    return parse_config(
        {
            "viber": {"api_url": "local"},
            "storage": {"path": str(tmp_path / "state.sqlite3"), "media_dir": str(tmp_path / "m")},
            "sources": [
                {"name": f"s{n}", "type": "rss", "url": f"https://example.org/{n}", "every": "10m"}
                for n in names
            ],
        }
    )


def test_a_turn_of_the_main_loop_looks_only_at_the_sources_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: each turn walked every source and asked when it was due; a
    heap of due times makes a turn cost what the due sources cost."""
    now = [T0]
    service = Service(
        _many(tmp_path, range(200)), clock=lambda: now[0], serve=False, rng=_NoJitter()
    )
    try:
        for n in range(200):  # s0 polled 10 min before T0 + 1 s, s1 + 2 s, …
            service.store.record_poll(f"s{n}", T0 - 10 * M + timedelta(seconds=n + 1), ok=True)
        submitted: list[str] = []
        monkeypatch.setattr(service, "_submit", lambda source: submitted.append(source.name))
        assert service._poll_due() == pytest.approx(1.0), "the first turn: s0 in 1 s"
        reads: list[str] = []
        read = service.store.get_source
        monkeypatch.setattr(service.store, "get_source", lambda n: reads.append(n) or read(n))
        asked: list[str] = []
        due = service.due
        monkeypatch.setattr(service, "due", lambda s: asked.append(s.name) or due(s))

        now[0] = T0 + timedelta(seconds=3.5)
        assert service._poll_due() == pytest.approx(0.5)
        assert submitted == ["s0", "s1", "s2"], "the due ones, soonest first"
        assert (reads, asked) == ([], []), "no other source was looked at"
        assert service._poll_due() == pytest.approx(0.5)
        assert submitted == ["s0", "s1", "s2"], "each submitted once"

        # s1 is polled: only its own next time is computed, and it goes on the heap
        service.store.record_poll("s1", now[0], ok=True)
        with service._lock:
            service._due.pop("s1")
            service._polled.add("s1")
        now[0] = T0 + 10 * M + timedelta(seconds=3)
        service._poll_due()
        assert asked == ["s1"]
        assert submitted[3:] == [f"s{n}" for n in range(3, 200)]
        now[0] = T0 + 10 * M + timedelta(seconds=4)
        service._poll_due()
        assert submitted[-1] == "s1", "polled again every 10 min after its last poll"
    finally:
        service.close()


def test_after_a_reload_the_loop_polls_added_and_forgets_removed_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [T0]
    service = Service(_many(tmp_path, range(3)), clock=lambda: now[0], serve=False, rng=_NoJitter())
    try:
        for n in range(3):
            service.store.record_poll(f"s{n}", T0, ok=True)
        submitted: list[str] = []
        monkeypatch.setattr(service, "_submit", lambda source: submitted.append(source.name))
        service._poll_due()
        assert submitted == []
        service.reload(_many(tmp_path, range(1, 5)))  # s0 removed, s3 and s4 added
        service._poll_due()
        assert sorted(submitted) == ["s3", "s4"]
        now[0] = T0 + 10 * M
        service._poll_due()
        assert {"s1", "s2"} <= set(submitted[2:]), "the kept sources go on"
        assert "s0" not in submitted, "s0 was removed"
    finally:
        service.close()
